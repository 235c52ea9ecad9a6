"""Scratch databases for tests and benchmarks: created on a Postgres server, dropped after.

The one place that creates and drops databases by name: tests/conftest.py copies its test
databases from migrated templates, the benchmarks (bench/) start from empty ones, or from
the embedded server of a temporary data folder when they are given no server.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from lib.local.stack import embedded_server, stop_embedded_server

_counter = itertools.count()


def database_url(server_url: str, name: str) -> str:
    """The URL of database `name` on the server of `server_url`."""
    return psycopg.conninfo.make_conninfo(server_url, dbname=name)


def database_name(url: str) -> str:
    return str(psycopg.conninfo.conninfo_to_dict(url)["dbname"])


def unique_name(prefix: str) -> str:
    """A database name no other process (nor an earlier call here) uses: prefix, pid, counter."""
    return f"{prefix}_{os.getpid()}_{next(_counter)}"


def create_database(server_url: str, name: str, *, template: str | None = None, strategy: str | None = None) -> str:
    """Create database `name` (empty, or a copy of `template` with CREATE DATABASE's
    `strategy`: "wal_log" or "file_copy"); its URL."""
    query = sql.SQL("create database {}").format(sql.Identifier(name))
    if template is not None:
        query += sql.SQL(" template {}").format(sql.Identifier(template))
    if strategy is not None:
        query += sql.SQL(" strategy {}").format(sql.Identifier(strategy))
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(query)
    return database_url(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    """Drop database `name` if it exists, closing its connections."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


@contextmanager
def scratch_database(
    server_url: str, prefix: str, *, template: str | None = None, strategy: str | None = None
) -> Iterator[str]:
    """A new database (see create_database) for the block; dropped after it."""
    name = unique_name(prefix)
    try:
        yield create_database(server_url, name, template=template, strategy=strategy)
    finally:
        drop_database(server_url, name)


@contextmanager
def embedded_database(data_dir: Path) -> Iterator[str]:
    """The embedded server of `data_dir` (lib.local.stack) for the block; stopped after it."""
    try:
        yield embedded_server(data_dir).get_uri()
    finally:
        stop_embedded_server(data_dir)


@contextmanager
def run_database(server_url: str | None, data_dir: Path, prefix: str) -> Iterator[str]:
    """A database for one benchmark run: a scratch database on `server_url` when given,
    else the embedded server of `data_dir` (a local stack on that data folder reuses it)."""
    if server_url:
        with scratch_database(server_url, prefix) as url:
            yield url
    else:
        with embedded_database(data_dir) as url:
            yield url
