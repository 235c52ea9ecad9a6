"""The OpenAPI 3.1 document (lib/routes/openapi.py): valid against the 3.1 schema, served at
/api/openapi.json, and exactly the frontend's routes: every Flask route of the frontend is a
path of the document (with the same methods) and every path of the document is a route."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from lib.app import create_app
from lib.config import Settings
from lib.local.stack import LocalStack
from lib.routes.openapi import DOCUMENT

# The blueprints that are not the frontend's: QStash's slices and failure callback, the cron.
NOT_FRONTEND = {"slices", "cron"}
ROOT = Path(__file__).resolve().parent.parent


def frontend_routes(tmp_path: Path) -> set[tuple[str, str]]:
    """(OpenAPI path, method) of every route of the app outside the QStash and cron blueprints."""
    env = {"SUPABASE_JWT_SECRET": "not-used", "LOCAL_DATA_DIR": str(tmp_path), "DATABASE_URL": "postgresql://x/y"}
    app = create_app(Settings.from_env(env))
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] in NOT_FRONTEND:
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        routes |= {(path, m.lower()) for m in rule.methods or () if m not in ("HEAD", "OPTIONS")}
    return routes


def documented() -> set[tuple[str, str]]:
    return {(path, method) for path, item in DOCUMENT["paths"].items() for method in item if method != "parameters"}


def test_every_frontend_route_is_documented_and_every_documented_path_is_a_route(tmp_path: Path) -> None:
    routes = frontend_routes(tmp_path)
    assert routes == documented(), {"undocumented": routes - documented(), "not routes": documented() - routes}
    assert len(routes) == 22  # the 14 of the contract plus rows, sheet, members, config and mappings


def test_the_document_is_valid_openapi_3_1() -> None:
    validate(DOCUMENT, cls=OpenAPIV31SpecValidator)  # the 3.1 meta-schema and the 3.1 schema dialect
    for schema in DOCUMENT["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


def test_the_document_is_served_without_a_token_and_linked_from_the_readme(stack: LocalStack) -> None:
    r = httpx.get(stack.app_url + "/api/openapi.json", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == DOCUMENT
    assert "/api/openapi.json" in (ROOT / "README.md").read_text()


def test_every_error_a_route_documents_has_the_error_shape() -> None:
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (path, method, status)
