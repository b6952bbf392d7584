"""Shared set-up for the token, client authentication, revocation and introspection unit tests.

The handlers run exactly as Lambda runs them (``functions/<dir>/app.py``'s ``handler`` with an API
Gateway v2 event) on the in-memory store; every write goes through :class:`RecordingStore`, so a test can
see which rows were committed together.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, urlencode

import jwt

from devstack.template import ROOT
from latchkey import services
from latchkey.clients import Client
from latchkey.crypto import keys as keylib
from latchkey.crypto.secrets import keyed_hash
from latchkey.events import OUTBOX_ENTITY
from latchkey.store import ENTITY, Operation
from latchkey.store.memory import MemoryItemStore
from tests.helpers import LambdaContext, memory_services

ISSUER = "https://auth.example.com"
TOKEN_URL = f"{ISSUER}/api/oauth/token"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
FORM = "application/x-www-form-urlencoded"
PATHS = {"token": "/api/oauth/token", "revoke": "/api/oauth/revoke", "introspect": "/api/oauth/introspect"}


class RecordingStore(MemoryItemStore):
    """The in-memory store, remembering the operations of every ``write`` (one list per transaction)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[Operation, ...]] = []

    def write(self, *operations: Operation) -> None:
        super().write(*operations)
        self.writes.append(operations)

    def rows(self, entity: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(item) for item in self._items.values() if item.get(ENTITY) == entity]

    def events(self) -> list[dict[str, Any]]:
        """The outbox messages, decoded."""
        return [json.loads(row["message"]) for row in self.rows(OUTBOX_ENTITY)]


def environment(monkeypatch: Any) -> Iterator[RecordingStore]:
    """Memory store, a local key-encryption key, the test issuer, and a bootstrapped key set."""
    yield from memory_services(monkeypatch, store=RecordingStore())


# --- clients --------------------------------------------------------------------------------------
def add_client(client_id: str | None = None, *, method: str = "client_secret_basic", secret: str | None = None,
               scope: str = "read write", grant_types: Sequence[str] = ("client_credentials",),
               jwks: dict[str, Any] | None = None, jwks_uri: str | None = None,
               access_token_ttl: int | None = None) -> tuple[Client, str | None]:
    """Store a client; returns it and its secret (None for private_key_jwt and public clients)."""
    client_id = client_id or uuid.uuid4().hex
    if method in ("client_secret_basic", "client_secret_post"):
        secret = secret or f"secret-{uuid.uuid4().hex}"
    secret_hash = keyed_hash(services.secret_hash_key(), secret) if secret else None
    now = int(time.time())
    client = Client(client_id=client_id, name=f"Test {client_id}", grant_types=tuple(grant_types), scope=scope,
                    token_endpoint_auth_method=method, jwks=jwks, jwks_uri=jwks_uri,
                    access_token_ttl=access_token_ttl, secret_hash=secret_hash, created_at=now, updated_at=now)
    services.client_store().create(client)
    return client, secret


def key_pair(alg: str, kid: str | None = None) -> tuple[Any, dict[str, Any]]:
    """A private key and its public JWK (with ``kid`` and ``alg``)."""
    private = keylib.generate(alg)
    jwk = keylib.public_jwk(private.public_key(), kid=kid or keylib.thumbprint(private.public_key()), alg=alg)
    return private, jwk


def assertion(client_id: str, private: Any, alg: str, kid: str | None, *, audience: Any = TOKEN_URL,
              lifetime: int = 60, jti: str | None = "random", **overrides: Any) -> str:
    """An RFC 7523 client assertion; ``overrides`` replace or (with None) drop claims."""
    now = int(time.time())
    claims: dict[str, Any] = {"iss": client_id, "sub": client_id, "aud": audience, "iat": now,
                              "exp": now + lifetime, "jti": uuid.uuid4().hex if jti == "random" else jti}
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    headers = {"kid": kid} if kid else {}
    return jwt.encode(claims, private, algorithm=alg, headers=headers)


def basic(client_id: str, secret: str) -> str:
    """RFC 6749 §2.3.1: each part form-urlencoded, then Basic."""
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


# --- HTTP -----------------------------------------------------------------------------------------
def event(endpoint: str, form: dict[str, str] | str | None = None, *, headers: dict[str, str] | None = None,
          content_type: str | None = FORM, method: str = "POST") -> dict[str, Any]:
    """An API Gateway HTTP API (v2) event for ``POST`` to one of :data:`PATHS`."""
    path = PATHS[endpoint]
    body = form if isinstance(form, str) else urlencode(form or {})
    all_headers = {"host": "auth.example.com", "user-agent": "tests", "x-forwarded-for": "203.0.113.9"}
    if content_type:
        all_headers["content-type"] = content_type
    all_headers.update({k.lower(): v for k, v in (headers or {}).items()})
    request_id = base64.b64encode(uuid.uuid4().bytes[:10]).decode("ascii")
    return {
        "version": "2.0", "routeKey": f"{method} {path}", "rawPath": path, "rawQueryString": "",
        "headers": all_headers,
        "requestContext": {"accountId": "123456789012", "apiId": "test", "domainName": "auth.example.com",
                           "domainPrefix": "auth", "requestId": request_id, "routeKey": f"{method} {path}",
                           "stage": "$default", "time": "01/Jan/2026:00:00:00 +0000", "timeEpoch": 0,
                           "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                                    "sourceIp": "203.0.113.9", "userAgent": "tests"}},
        "body": body, "isBase64Encoded": False,
    }


_handlers: dict[str, Any] = {}


def handler(directory: str) -> Any:
    if directory not in _handlers:
        path = ROOT / "functions" / directory / "app.py"
        spec = importlib.util.spec_from_file_location(f"latchkey_oauth_tests_{directory}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _handlers[directory] = module.handler
    return _handlers[directory]


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: str

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error(self) -> str | None:
        return self.json().get("error") if self.body else None


def call(endpoint: str, form: dict[str, str] | str | None = None, **kwargs: Any) -> Answer:
    result = handler(endpoint)(event(endpoint, form, **kwargs), LambdaContext())
    return Answer(result["statusCode"], result.get("headers") or {}, result.get("body") or "")


def token(client_id: str, secret: str, **form: str) -> dict[str, Any]:
    """A client_credentials token response for a client_secret_basic client (must succeed)."""
    form = {"grant_type": "client_credentials", **form}
    answer = call("token", form, headers={"Authorization": basic(client_id, secret)})
    assert answer.status == 200, answer.body
    return answer.json()


def assert_no_store(answer: Answer) -> None:
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["Pragma"] == "no-cache"


# --- openapi.yaml ---------------------------------------------------------------------------------
def check_openapi(endpoint: str, answer: Answer) -> None:
    """The answer's JSON body matches what openapi.yaml documents for the route and status."""
    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    doc = _openapi_doc()
    uri = "urn:latchkey:openapi"
    registry = Registry().with_resource(uri, Resource.from_contents(doc, default_specification=DRAFT202012))
    response = doc["paths"][PATHS[endpoint]]["post"]["responses"][str(answer.status)]
    while "$ref" in response:
        response = doc["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    for name, spec in response.get("headers", {}).items():
        if "$ref" in spec:
            spec = doc["components"]["headers"][spec["$ref"].rsplit("/", 1)[1]]
        if spec.get("required"):
            assert name in answer.headers, name
        if name in answer.headers:
            jsonschema.Draft202012Validator(spec["schema"]).validate(answer.headers[name])
    if "content" not in response:
        assert answer.body == ""
        return
    pointer = "/".join(["#/paths", PATHS[endpoint].replace("/", "~1"), "post/responses", str(answer.status),
                        "content/application~1json/schema"])
    schema = response["content"]["application/json"]["schema"]
    ref = schema["$ref"] if "$ref" in schema else pointer
    jsonschema.Draft202012Validator({"$ref": uri + ref}, registry=registry).validate(answer.json())


_doc_cache: dict[str, Any] = {}


def _openapi_doc() -> dict[str, Any]:
    import yaml

    if "doc" not in _doc_cache:
        _doc_cache["doc"] = yaml.safe_load((ROOT / "openapi.yaml").read_text(encoding="utf-8"))
    return _doc_cache["doc"]
