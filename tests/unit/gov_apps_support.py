"""Shared by the governor app tests (test_governor_apps.py, test_logo.py): invoking the gov_app_* handlers
with API Gateway v2 events built like the local gateway builds them, admin tokens, and the fixtures."""

from __future__ import annotations

import base64
import importlib.util
import json
from typing import Any
from urllib.parse import urlencode

import pytest

from devstack.gateway import build_event
from devstack.template import ROOT
from latchkey import apps, rfc9068, services
from latchkey.store import PK
from tests.helpers import LambdaContext, memory_services

ISSUER = "https://auth.example.com"
READ, WRITE = apps.SCOPE_APP_READ, apps.SCOPE_APP_WRITE
ROUTES = {
    "gov_app_get": ("GET", "/api/oauth/app/id/{clientid}"),
    "gov_app_image_get": ("GET", "/api/oauth/app/id/{clientid}/image"),
    "gov_app_list": ("GET", "/api/oauth/app"),
    "gov_app_ids": ("GET", "/api/oauth/app/ids"),
    "gov_app_create": ("POST", "/api/oauth/app"),
    "gov_app_update": ("PUT", "/api/oauth/app/id/{clientid}"),
    "gov_app_image_update": ("PUT", "/api/oauth/app/id/{clientid}/image"),
    "gov_app_rotate": ("PUT", "/api/oauth/app/id/{clientid}/rotate"),
    "gov_app_delete": ("DELETE", "/api/oauth/app/id/{clientid}"),
}
_modules: dict[str, Any] = {}


def _handler(directory: str):
    if directory not in _modules:
        path = ROOT / "functions" / directory / "app.py"
        spec = importlib.util.spec_from_file_location(f"gov_apps_test_{directory}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _modules[directory] = module.handler
    return _modules[directory]


class Answer:
    def __init__(self, result: dict[str, Any]) -> None:
        self.status = result["statusCode"]
        self.headers = result.get("headers") or {}
        raw = result.get("body") or ""
        self.body = base64.b64decode(raw) if result.get("isBase64Encoded") else raw.encode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)


def call(directory: str, *, clientid: str | None = None, token: str | None = None, query: dict | None = None,
         body: Any = None, content_type: str | None = "application/json", headers: dict | None = None,
         raw_query: str | None = None) -> Answer:
    """Invoke a handler with an API Gateway v2 event built the way the local gateway builds it."""
    method, template_path = ROUTES[directory]
    params = {"clientid": clientid} if clientid is not None else {}
    path = template_path.replace("{clientid}", clientid or "")
    sent = [("host", "auth.example.com"), ("user-agent", "pytest")]
    if token is not None:
        sent.append(("authorization", f"Bearer {token}"))
    data = b""
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
        if content_type:
            sent.append(("content-type", content_type))
    sent += list((headers or {}).items())
    event = build_event(method=method, raw_path=path, raw_query=raw_query or urlencode(query or {}),
                        headers=sent, body=data, route_key=f"{method} {template_path}", path_parameters=params,
                        source_ip="203.0.113.10")
    return Answer(_handler(directory)(event, LambdaContext()))


def token(scopes=(READ, WRITE), *, issuer=ISSUER, ttl=300, now=None) -> str:
    return rfc9068.issue(services.key_ring(), issuer=issuer, alg="ES256", client_id="dev-admin", subject="dev-admin",
                         audience=issuer, scopes=list(scopes), ttl=ttl, now=now).token


@pytest.fixture(name="env")
def env_fixture(monkeypatch):
    """The in-memory store with signing keys; services start over before and after."""
    for _ in memory_services(monkeypatch):
        yield monkeypatch


@pytest.fixture(name="admin")
def admin_fixture(env) -> str:
    """An access token with both app scopes."""
    return token()


def create(admin, **fields) -> dict[str, Any]:
    body = {"name": "Example", "url": "https://example.com", "redirect_uri": "https://example.com/cb", **fields}
    answer = call("gov_app_create", token=admin, body=body)
    assert answer.status == 201, answer.body
    return answer.json()


def stored_hash(client_id: str) -> str | None:
    return services.client_store().get(client_id).secret_hash


def all_items() -> list[dict[str, Any]]:
    return [i for i in services.item_store()._items.values() if i[PK].startswith("CLIENT#")]
