"""The local stack's site: what Vercel and Supabase Storage serve around the Flask app.

- `/api/*`: the Flask app (Vercel's rewrite to `api/index.py`);
- `PUT /_local/storage/<key>?expires=…&max_bytes=…&signature=…`: an upload to folder storage
  through the signed URL that `FolderStorage.upload_url` made (Supabase Storage's presigned
  PUT, locally): checked (signature, expiry, size) before a byte is stored, written
  atomically, answered like S3 (200 with an ETag);
- anything else: the static files of `public/` (index.html for a folder), as Vercel serves
  them at the site's root, when that folder exists; else the Flask app (a JSON 404).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from werkzeug.exceptions import NotFound
from werkzeug.utils import send_from_directory
from werkzeug.wrappers import Request, Response

from lib.errors import LeadImportError
from lib.storage import UPLOAD_PATH, FolderStorage, Storage

PUBLIC = Path(__file__).resolve().parent.parent.parent / "public"
_CHUNK = 1024 * 1024


class Site:
    """A WSGI app: the uploads and static files above, then `api`."""

    def __init__(self, api: Any, storage: Storage, public: Path = PUBLIC) -> None:
        self.api = api
        self.storage = storage
        self.public = public

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if path.startswith(UPLOAD_PATH):
            response = self._upload(Request(environ), urllib.parse.unquote(path[len(UPLOAD_PATH) :]))
            return response(environ, start_response)
        if not path.startswith("/api/") and environ.get("REQUEST_METHOD") in ("GET", "HEAD") and self.public.is_dir():
            name = path.lstrip("/")
            if not name or name.endswith("/") or (self.public / name).is_dir():
                name = name.rstrip("/") + "/index.html" if name else "index.html"
            try:
                static = send_from_directory(self.public, name, environ)
            except NotFound:
                pass
            else:
                return static(environ, start_response)
        return self.api(environ, start_response)

    def _upload(self, request: Request, key: str) -> Response:
        if request.method != "PUT":
            return _error(405, "method_not_allowed", "upload the file's bytes with PUT")
        if not isinstance(self.storage, FolderStorage):
            return _error(404, "not_found", "uploads go to the configured bucket, not to this server")
        try:
            bound = self.storage.check_upload(key, request.args, request.content_length)
            with tempfile.SpooledTemporaryFile(max_size=8 * _CHUNK) as data:
                digest = hashlib.md5(usedforsecurity=False)
                size = 0
                # werkzeug ends the stream at the Content-Length, which is within the bound.
                while chunk := request.stream.read(_CHUNK):
                    size += len(chunk)
                    if size > bound:
                        break
                    digest.update(chunk)
                    data.write(chunk)
                if size != request.content_length:
                    return _error(400, "incomplete_upload", "the body is not as long as its Content-Length")
                data.seek(0)
                self.storage.put(key, data)  # type: ignore[arg-type]
        except LeadImportError as exc:
            return _error(exc.status, exc.code, exc.message)
        return Response(status=200, headers={"ETag": f'"{digest.hexdigest()}"'})


def _error(status: int, code: str, message: str) -> Response:
    return Response(json.dumps({"error": code, "message": message}), status=status, mimetype="application/json")
