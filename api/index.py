"""Vercel entrypoint: every /api/* route is rewritten here (vercel.json) to one Flask app."""

from lib.app import create_app

app = create_app()
