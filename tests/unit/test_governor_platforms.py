"""Third-party login platform admin (``latchkey.platform_admin`` and the ``functions/gov_platform_*``
handlers) on the in-memory store: create and replace (201/204), validation, the sealed client secret, the
list order, delete, and the bearer guard (read vs write scope)."""

from __future__ import annotations

import importlib.util
import json
import time
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag

from devstack.gateway import build_event
from devstack.template import ROOT
from latchkey import apps, clock, platform_admin, services
from latchkey.platforms import DEFAULT_CLAIM_MAPPING, Platform, secret_context
from latchkey.store import PK
from tests.helpers import LambdaContext, memory_services
from tests.unit.gov_apps_support import Answer, token

READ, WRITE = platform_admin.SCOPE_PLATFORM_READ, platform_admin.SCOPE_PLATFORM_WRITE
ROUTES = {
    "gov_platform_put": ("PUT", "/api/oauth/platform/id/{platformId}"),
    "gov_platform_get": ("GET", "/api/oauth/platform/id/{platformId}"),
    "gov_platform_list": ("GET", "/api/oauth/platform"),
    "gov_platform_delete": ("DELETE", "/api/oauth/platform/id/{platformId}"),
}
SECRET = "upstream-s3cret-value-0123456789"
DISCOVERY = "https://sso.example.org/.well-known/openid-configuration"
OIDC = {"display_name": "Corp SSO", "type": "oidc", "client_id": "latchkey", "client_secret": SECRET,
        "discovery_url": DISCOVERY}
OAUTH2 = {"display_name": "Forge", "type": "oauth2", "client_id": "lk-forge", "client_secret": "forge-secret-42",
          "token_endpoint_auth_method": "client_secret_post", "scopes": ["read:user", "user:email"],
          "authorization_endpoint": "https://forge.example/login/oauth/authorize",
          "token_endpoint": "https://forge.example/login/oauth/access_token",
          "userinfo_endpoint": "https://api.forge.example/user",
          "claim_mapping": {"sub": "id", "preferred_username": "login", "name": "name", "email": "email",
                            "picture": "owner.avatar_url"},
          "allow_signup": True}
_handlers: dict[str, Any] = {}


def _handler(directory: str):
    if directory not in _handlers:
        spec = importlib.util.spec_from_file_location(f"gov_platforms_test_{directory}",
                                                      ROOT / "functions" / directory / "app.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _handlers[directory] = module.handler
    return _handlers[directory]


def call(directory: str, *, platform_id: str | None = None, token: str | None = None, body: Any = None,
         content_type: str | None = "application/json") -> Answer:
    """Invoke a gov_platform_* handler with an API Gateway v2 event built the way the local gateway builds it."""
    method, template_path = ROUTES[directory]
    params = {"platformId": platform_id} if platform_id is not None else {}
    sent = [("host", "auth.example.com"), ("user-agent", "pytest")]
    if token is not None:
        sent.append(("authorization", f"Bearer {token}"))
    data = b""
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
        if content_type:
            sent.append(("content-type", content_type))
    event = build_event(method=method, raw_path=template_path.replace("{platformId}", platform_id or ""),
                        raw_query="", headers=sent, body=data, route_key=f"{method} {template_path}",
                        path_parameters=params, source_ip="203.0.113.10")
    return Answer(_handler(directory)(event, LambdaContext()))


@pytest.fixture(name="env")
def env_fixture(monkeypatch):
    """The in-memory store with signing keys and the dev-admin client."""
    for _ in memory_services(monkeypatch, admin_client=True):
        yield monkeypatch


@pytest.fixture(name="admin")
def admin_fixture(env) -> str:
    return token((READ, WRITE))


def put(admin, platform_id: str = "corp", /, **fields) -> Answer:
    """PUT ``fields`` (which may hold a ``platform_id`` member: the parameters are positional-only)."""
    return call("gov_platform_put", platform_id=platform_id, token=admin, body=fields)


def rows() -> list[dict[str, Any]]:
    return [i for i in services.item_store()._items.values() if i[PK].startswith("PLATFORM#")]


def stored(platform_id: str) -> Platform:
    return services.platform_store().get(platform_id)


def error(answer: Answer, status: int, code: str, message: str) -> None:
    assert answer.status == status, answer.body
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.json() == {"message": message, "code": code, "request_id": answer.headers["X-Request-Id"]}


# --- the lifecycle ------------------------------------------------------------------------------------
def test_create_get_list_replace_delete_an_oidc_platform(admin, env):
    start = int(time.time())
    env.setattr(clock, "now", lambda: start)
    created = put(admin, **OIDC)
    assert created.status == 201 and created.headers["Cache-Control"] == "no-store"
    platform = created.json()
    assert platform == {"platform_id": "corp", "display_name": "Corp SSO", "type": "oidc", "client_id": "latchkey",
                        "token_endpoint_auth_method": "client_secret_basic", "scopes": ["openid", "email", "profile"],
                        "discovery_url": DISCOVERY, "claim_mapping": DEFAULT_CLAIM_MAPPING, "allow_signup": False,
                        "enabled": True, "has_client_secret": True, "created_at": start, "updated_at": start}

    got = call("gov_platform_get", platform_id="corp", token=admin)
    assert got.status == 200 and got.headers["Cache-Control"] == "no-store"
    assert got.json() == platform
    listed = call("gov_platform_list", token=admin)
    assert listed.status == 200 and listed.json() == {"platforms": [platform]}

    env.setattr(clock, "now", lambda: start + 7)
    replaced = put(admin, **{**OIDC, "display_name": "Corp", "allow_signup": True, "enabled": False,
                             "scopes": ["openid", "email"]})
    assert (replaced.status, replaced.body) == (204, b"")
    after = call("gov_platform_get", platform_id="corp", token=admin).json()
    assert after == {**platform, "display_name": "Corp", "allow_signup": True, "enabled": False,
                     "scopes": ["openid", "email"], "updated_at": start + 7}

    deleted = call("gov_platform_delete", platform_id="corp", token=admin)
    assert (deleted.status, deleted.body) == (204, b"")
    assert rows() == []
    error(call("gov_platform_get", platform_id="corp", token=admin), 404, "not_found",
          "No platform exists with that platform id.")
    error(call("gov_platform_delete", platform_id="corp", token=admin), 404, "not_found",
          "No platform exists with that platform id.")
    assert call("gov_platform_list", token=admin).json() == {"platforms": []}


def test_create_an_oauth2_platform(admin, env):
    env.setattr(clock, "now", lambda: 1767225600)
    created = put(admin, "forge", **OAUTH2)
    assert created.status == 201
    assert created.json() == {
        "platform_id": "forge", "display_name": "Forge", "type": "oauth2", "client_id": "lk-forge",
        "token_endpoint_auth_method": "client_secret_post", "scopes": ["read:user", "user:email"],
        "authorization_endpoint": "https://forge.example/login/oauth/authorize",
        "token_endpoint": "https://forge.example/login/oauth/access_token",
        "userinfo_endpoint": "https://api.forge.example/user", "claim_mapping": OAUTH2["claim_mapping"],
        "allow_signup": True, "enabled": True, "has_client_secret": True, "created_at": 1767225600,
        "updated_at": 1767225600}
    assert stored("forge").secret(services.envelope()) == "forge-secret-42"


def test_a_loopback_upstream_may_be_plain_http(admin):
    answer = put(admin, "local", **{**OIDC, "discovery_url": "http://127.0.0.1:9090/.well-known/openid-configuration"})
    assert answer.status == 201, answer.body
    assert answer.json()["discovery_url"] == "http://127.0.0.1:9090/.well-known/openid-configuration"


def test_replacing_with_another_type_drops_the_old_endpoints(admin):
    put(admin, **OIDC)
    assert put(admin, **{k: v for k, v in OAUTH2.items() if k != "client_secret"}).status == 204
    platform = call("gov_platform_get", platform_id="corp", token=admin).json()
    assert platform["type"] == "oauth2" and "discovery_url" not in platform
    assert platform["token_endpoint"] == OAUTH2["token_endpoint"] and platform["has_client_secret"] is True
    assert stored("corp").secret(services.envelope()) == SECRET  # kept: the replace sent none


def test_the_list_is_ordered_by_platform_id(admin):
    for platform_id in ("zeta", "alpha", "mid-1", "mid_0", "0first"):
        assert put(admin, platform_id, **OIDC).status == 201
    listed = call("gov_platform_list", token=admin)
    assert listed.status == 200
    assert [p["platform_id"] for p in listed.json()["platforms"]] == ["0first", "alpha", "mid-1", "mid_0", "zeta"]
    assert all(p["has_client_secret"] is True and "client_secret" not in p for p in listed.json()["platforms"])


# --- the client secret --------------------------------------------------------------------------------
def test_the_secret_is_stored_sealed_and_never_answered(admin, env, capfd):
    created = put(admin, **OIDC)
    assert created.status == 201
    [row] = rows()
    assert SECRET not in json.dumps(row) and "client_secret" not in row
    assert set(row["sealed_secret"]) == {"kek", "edk", "iv", "ct"} and row["sealed_secret"]["kek"] == "local"
    assert stored("corp").secret(services.envelope()) == SECRET
    with pytest.raises(InvalidTag):  # bound to the platform id: the sealed value cannot move to another row
        services.envelope().open(row["sealed_secret"], secret_context("other"))
    answers = [created, call("gov_platform_get", platform_id="corp", token=admin),
               call("gov_platform_list", token=admin),
               put(admin, **{**OIDC, "client_secret": SECRET + "x", "colour": "blue"})]
    for answer in answers:
        assert SECRET not in answer.body.decode() and "sealed_secret" not in answer.body.decode()
    out, err = capfd.readouterr()
    assert SECRET not in out + err


def test_a_replace_keeps_the_secret_when_omitted_and_replaces_it_when_given(admin, env):
    put(admin, **OIDC)
    first = stored("corp").sealed_secret
    without = {k: v for k, v in OIDC.items() if k != "client_secret"}
    assert put(admin, **{**without, "client_id": "latchkey-2"}).status == 204
    assert stored("corp").sealed_secret == first and stored("corp").client_id == "latchkey-2"
    assert put(admin, **{**without, "client_secret": None}).status == 204
    assert stored("corp").secret(services.envelope()) == SECRET
    assert put(admin, **{**OIDC, "client_secret": "a-new-secret"}).status == 204
    assert stored("corp").sealed_secret != first
    assert stored("corp").secret(services.envelope()) == "a-new-secret"
    assert "a-new-secret" not in json.dumps(rows())


def test_a_new_platform_needs_a_secret(admin):
    for body in ({k: v for k, v in OIDC.items() if k != "client_secret"}, {**OIDC, "client_secret": None}):
        error(put(admin, **body), 400, "invalid_request",
              "client_secret: a new platform needs the client secret Latchkey is given at the upstream")
    assert rows() == []


# --- validation ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("body", "message"), [
    ({**OIDC, "discovery_url": None}, "body: an oidc platform needs discovery_url"),
    ({k: v for k, v in OIDC.items() if k != "discovery_url"}, "body: an oidc platform needs discovery_url"),
    ({**OIDC, "discovery_url": "http://sso.example.org/.well-known/openid-configuration"},
     "body: discovery_url must be https (http only on a loopback address)"),
    ({**OIDC, "discovery_url": "https://sso.example.org/x#frag"},
     "body: discovery_url must be an absolute URL without a fragment"),
    ({**OIDC, "scopes": ["email"]}, "body: an oidc platform must ask for the openid scope"),
    ({**OAUTH2, "token_endpoint": "http://forge.example/token"},
     "body: token_endpoint must be https (http only on a loopback address)"),
    ({k: v for k, v in OAUTH2.items() if k != "userinfo_endpoint"}, "body: an oauth2 platform needs userinfo_endpoint"),
    ({**OAUTH2, "claim_mapping": {"email": "email"}},
     "body: an oauth2 platform's claim_mapping must say which field is the user id (sub)"),
    ({**OIDC, "claim_mapping": {"sub": "sub", "role": "groups"}},
     "claim_mapping may only map sub, email, email_verified, name, given_name, family_name, preferred_username, "
     "picture, profile"),
    ({**OIDC, "claim_mapping": {"sub": "a b"}},
     "claim_mapping values are upstream field names (dots for nested fields)"),
    ({**OIDC, "colour": "blue"}, "colour: unknown field"),
    ({**OIDC, "platform_id": "corp"}, "platform_id: unknown field"),
    ({**OIDC, "has_client_secret": True}, "has_client_secret: unknown field"),
    ({**OIDC, "type": "saml"}, "type: Input should be 'oidc' or 'oauth2'"),
    ({k: v for k, v in OIDC.items() if k != "client_id"}, "client_id: Field required"),
    ({**OIDC, "client_id": 42}, "client_id: Input should be a valid string"),
    ({**OIDC, "allow_signup": "yes"}, "allow_signup: Input should be a valid boolean"),
    ({**OIDC, "display_name": ""}, "display_name: String should have at least 1 character"),
    ({**OIDC, "display_name": "  "}, "display_name must be printable text"),
    ({**OIDC, "token_endpoint_auth_method": "private_key_jwt"},
     "token_endpoint_auth_method must be client_secret_basic or client_secret_post"),
    ({**OIDC, "scopes": ["openid", "a b"]}, "scopes must be scope tokens"),
    ({**OIDC, "client_secret": "x" * 4097}, "client_secret: String should have at most 4096 characters"),
])
def test_invalid_bodies_are_400_naming_the_field_and_write_nothing(admin, body, message):
    error(put(admin, **body), 400, "invalid_request", message)
    assert rows() == []


def test_an_invalid_replace_changes_nothing(admin):
    put(admin, **OIDC)
    before = rows()
    error(put(admin, **{**OIDC, "discovery_url": "ftp://sso.example.org/"}), 400, "invalid_request",
          "body: discovery_url must be https (http only on a loopback address)")
    assert rows() == before


@pytest.mark.parametrize(("body", "content_type", "message"), [
    (b"[1, 2]", "application/json", "The request body must be a JSON object."),
    (b"{", "application/json", "The request body is not valid JSON."),
    (b"display_name=x", "application/x-www-form-urlencoded", "The request must be application/json."),
])
def test_a_body_that_is_not_a_json_object_is_400(admin, body, content_type, message):
    answer = call("gov_platform_put", platform_id="corp", token=admin, body=body, content_type=content_type)
    error(answer, 400, "invalid_request", message)


@pytest.mark.parametrize("platform_id", ["Corp", "-corp", "_corp", "corp.sso", "c" * 65, "corp%20sso", "córp"])
def test_a_malformed_platform_id_is_400_on_put_and_404_otherwise(admin, platform_id):
    error(put(admin, platform_id, **OIDC), 400, "invalid_request", platform_admin.BAD_ID)
    assert rows() == []
    for directory in ("gov_platform_get", "gov_platform_delete"):
        error(call(directory, platform_id=platform_id, token=admin), 404, "not_found",
              "No platform exists with that platform id.")


def test_the_longest_platform_id_is_accepted(admin):
    assert put(admin, "c" * 64, **OIDC).status == 201


def test_a_concurrent_create_is_409(admin, env):
    put(admin, **OIDC)
    env.setattr(services.platform_store(), "get", lambda platform_id: None)  # the read misses it
    error(put(admin, **{**OIDC, "display_name": "Other"}), 409, "conflict", platform_admin.CONCURRENT)
    assert [r["display_name"] for r in rows()] == ["Corp SSO"]  # the first create stands


def test_a_replace_racing_a_delete_is_409(admin, env):
    put(admin, **OIDC)
    existing = stored("corp")
    call("gov_platform_delete", platform_id="corp", token=admin)
    env.setattr(services.platform_store(), "get", lambda platform_id: existing)  # read before the delete
    error(put(admin, **OIDC), 409, "conflict", platform_admin.CONCURRENT)
    assert rows() == []


# --- the bearer guard ---------------------------------------------------------------------------------
def _requests(platform_id: str = "corp"):
    return [("gov_platform_put", {"platform_id": platform_id, "body": OIDC}),
            ("gov_platform_get", {"platform_id": platform_id}),
            ("gov_platform_list", {}),
            ("gov_platform_delete", {"platform_id": platform_id})]


def test_every_route_needs_a_token(env):
    for directory, kwargs in _requests():
        answer = call(directory, **kwargs)
        error(answer, 401, "invalid_token", "An access token is required.")
        assert answer.headers["WWW-Authenticate"].startswith('Bearer realm="latchkey", error="invalid_token"')
    assert rows() == []


def test_read_routes_need_the_read_scope_and_write_routes_the_write_scope(admin):
    put(admin, **OIDC)
    reader, writer = token((READ,)), token((WRITE,))
    app_admin = token((apps.SCOPE_APP_READ, apps.SCOPE_APP_WRITE, "gov.user.oauth.user:read",
                       "gov.user.oauth.user:write"))
    assert call("gov_platform_get", platform_id="corp", token=reader).status == 200
    assert call("gov_platform_list", token=reader).status == 200
    for directory, kwargs in _requests():
        needed = WRITE if directory in ("gov_platform_put", "gov_platform_delete") else READ
        for holder in (app_admin, writer if needed == READ else reader):
            answer = call(directory, token=holder, **kwargs)
            error(answer, 403, "insufficient_scope", f"The access token lacks the scope {needed}.")
            assert answer.headers["WWW-Authenticate"] == \
                f'Bearer realm="latchkey", error="insufficient_scope", scope="{needed}"'
    assert call("gov_platform_get", platform_id="corp", token=reader).json()["display_name"] == "Corp SSO"
    assert put(writer, **{**OIDC, "display_name": "Written"}).status == 204
    assert call("gov_platform_delete", platform_id="corp", token=writer).status == 204


def test_admin_scopes_include_the_platform_scopes():
    assert {READ, WRITE} <= set(apps.ADMIN_SCOPES.split())
