"""Invoking the registration functions (RFC 7591 / RFC 7592) with their events/ samples, in-process on the
in-memory store (shared by tests/unit/test_rfc7591_registration.py and test_rfc7592_management.py)."""

from __future__ import annotations

import copy
import importlib.util
import json
from dataclasses import dataclass
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from devstack.template import ROOT
from latchkey import rfc9068, services
from tests.helpers import LambdaContext, memory_services

ISSUER = "https://auth.example.com"
APP_WRITE = "gov.user.oauth.app:write"
DIRECTORIES = ("register", "register_read", "register_update", "register_delete")


_modules: dict[str, Any] = {}


def handler(directory: str):
    if directory not in _modules:
        path = ROOT / "functions" / directory / "app.py"
        spec = importlib.util.spec_from_file_location(f"latchkey_registration_{directory}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _modules[directory] = module
    return _modules[directory].handler


def sample(directory: str) -> dict[str, Any]:
    return json.loads((ROOT / "events" / f"{directory}.json").read_text(encoding="utf-8"))


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any
    raw: dict[str, Any]


def invoke(directory: str, *, body: Any = None, token: str | None = None, client_id: str | None = None,
           raw_body: str | None = None, headers: dict[str, str] | None = None,
           keep_authorization: bool = False) -> Answer:
    """Call the function with its sample, replacing the body, the Bearer token and the path's client id."""
    event = copy.deepcopy(sample(directory))
    if not keep_authorization:
        event["headers"].pop("authorization", None)
    if token is not None:
        event["headers"]["authorization"] = f"Bearer {token}"
    if body is not None or raw_body is not None:
        text = raw_body if raw_body is not None else json.dumps(body)
        event["body"] = text
        event["headers"]["content-length"] = str(len(text.encode("utf-8")))
    event["headers"].update(headers or {})
    if client_id is not None:
        path = f"/api/oauth/register/{client_id}"
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
        event["pathParameters"] = {"client_id": client_id}
    result = handler(directory)(event, LambdaContext())
    assert result["headers"]["X-Request-Id"] == event["requestContext"]["requestId"]
    text = result.get("body") or ""
    return Answer(result["statusCode"], result["headers"], json.loads(text) if text else None, result)


# --- openapi.yaml schemas ---------------------------------------------------------------------------
_OPENAPI_URI = "urn:latchkey:openapi"
_registry = Registry().with_resource(_OPENAPI_URI, Resource.from_contents(
    yaml.safe_load((ROOT / "openapi.yaml").read_text(encoding="utf-8")), default_specification=DRAFT202012))


def check(schema_name: str, instance: Any) -> None:
    jsonschema.Draft202012Validator({"$ref": f"{_OPENAPI_URI}#/components/schemas/{schema_name}"},
                                    registry=_registry).validate(instance)


def assert_oauth_error(answer: Answer, status: int, error: str) -> None:
    assert (answer.status, answer.body["error"]) == (status, error), answer.body
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["Content-Type"] == "application/json"
    check("OAuthError", answer.body)
    if status in (401, 403):
        assert answer.headers["WWW-Authenticate"].startswith("Bearer ")
        assert f'error="{error}"' in answer.headers["WWW-Authenticate"]


def initial_access_token(scopes=(APP_WRITE,), **overrides: Any) -> str:
    args: dict[str, Any] = dict(issuer=ISSUER, alg="ES256", client_id="dev-admin", subject="dev-admin",
                                audience=ISSUER, scopes=scopes, ttl=300)
    return rfc9068.issue(services.key_ring(), **{**args, **overrides}).token


def registration_environment(monkeypatch):
    """For a fixture to ``yield from``: memory store, a local kek, the example issuer and fresh keys;
    ``CLIENT_REGISTRATION`` at its default until the test calls ``configure(monkeypatch, mode)``."""
    for _ in memory_services(monkeypatch):
        yield monkeypatch


def configure(monkeypatch, mode: str) -> None:
    """Switch ``CLIENT_REGISTRATION`` keeping the stored state (only the settings are re-read)."""
    monkeypatch.setenv("CLIENT_REGISTRATION", mode)
    from latchkey.config import get_settings

    get_settings.cache_clear()
    services.override(settings=get_settings())


def stored_item(client_id: str) -> dict[str, Any] | None:
    return services.item_store().get(f"CLIENT#{client_id}", "CLIENT")


WEB_APP = {
    "client_name": "Example Reporting Tool",
    "client_uri": "https://tools.example.com",
    "redirect_uris": ["https://tools.example.com/callback"],
    "grant_types": ["authorization_code", "refresh_token"],
    "scope": "openid profile",
}


def open_registration(monkeypatch, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """Register a client with ``CLIENT_REGISTRATION=open``; the client information response."""
    configure(monkeypatch, "open")
    answer = invoke("register", body=metadata if metadata is not None else WEB_APP)
    assert answer.status == 201, answer.body
    return answer.body


__all__ = ["APP_WRITE", "ISSUER", "WEB_APP", "Answer", "assert_oauth_error", "check", "configure",
           "initial_access_token", "invoke", "open_registration", "registration_environment", "sample", "stored_item"]
