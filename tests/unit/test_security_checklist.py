"""Items of the security checklist (docs/security.md) that no other test covered: Unicode confusables in
usernames, NoSQL-style injection strings in ids, deeply nested JSON, path traversal in id routes.
The real handlers run on the in-memory store."""

from __future__ import annotations

import pytest

from tests.unit import oauth_support as s
from tests.unit.oauth_support import basic
from tests.unit.test_governor_users import PASSWORD, call, user_rows
from tests.unit.test_governor_users import admin_fixture as admin  # noqa: F401 (fixture)
from tests.unit.test_governor_users import env_fixture as env  # noqa: F401 (fixture)

CONFUSABLES = [
    "\u0430lice",  # Cyrillic а (U+0430) for a
    "\uff41lice",  # fullwidth ａ
    "alic\u0435",  # Cyrillic е
    "al\u0131ce",  # dotless ı
    "ali\u200bce",  # zero-width space
    "alice\u0301",  # a combining accent
    "\u212balvin",  # Kelvin sign K, which NFKC folds to K
]


@pytest.mark.parametrize("username", CONFUSABLES)
def test_unicode_confusable_usernames_are_refused(admin, username):  # noqa: F811
    answer = call("gov_user_create", token=admin, body={"username": username, "password": PASSWORD})
    assert answer.status == 400, answer.body
    assert user_rows() == []


def test_a_confusable_of_an_existing_user_is_neither_created_nor_signs_in_as_it(admin):  # noqa: F811
    assert call("gov_user_create", token=admin, body={"username": "alice", "password": PASSWORD}).status == 201
    assert call("gov_user_create", token=admin, body={"username": "\u0430lice", "password": PASSWORD}).status == 400
    assert call("gov_user_create", token=admin, body={"username": "ALICE", "password": PASSWORD}).status == 409
    assert [row["username"] for row in user_rows() if row["entity"] == "user"] == ["alice"]


INJECTIONS = ['{"$ne": null}', '{"$gt": ""}', "' OR '1'='1", "a\" OR \"\"=\"", "CLIENT#x", "x#CLIENT",
              "*", "%", "\u0000", "../../etc/passwd", "${jndi:ldap://x}"]


@pytest.fixture
def oauth(monkeypatch):
    yield from s.environment(monkeypatch)


@pytest.mark.parametrize("client_id", INJECTIONS)
def test_injection_strings_as_client_ids_are_just_unknown_clients(oauth, client_id):
    s.add_client("real", secret="real-secret")
    answer = s.call("token", {"grant_type": "client_credentials"}, headers={"Authorization": basic(client_id, "x")})
    assert (answer.status, answer.error) == (401, "invalid_client")
    answer = s.call("token", {"grant_type": "client_credentials", "client_id": client_id, "client_secret": "x"})
    assert (answer.status, answer.error) == (401, "invalid_client")


@pytest.mark.parametrize("value", INJECTIONS)
def test_injection_strings_as_tokens_are_inactive(oauth, value):
    s.add_client("rs", secret="rs-secret")
    answer = s.call("introspect", {"token": value}, headers={"Authorization": basic("rs", "rs-secret")})
    assert answer.status == 200 and answer.json() == {"active": False}


@pytest.mark.parametrize("userid", ['{"$ne":null}', "..%2F..%2Fclient", "0" * 31 + "*", "CLIENT%23real"])
def test_injection_and_traversal_strings_as_user_ids_are_404(admin, userid):  # noqa: F811
    assert call("gov_user_get", token=admin, userid=userid).status == 404
    assert call("gov_user_delete", token=admin, userid=userid).status == 404


def test_deeply_nested_json_is_a_400_not_a_crash(admin):  # noqa: F811
    deep = b'{"username": ' + b"[" * 3000 + b"]" * 3000 + b', "password": "x"}'  # under the size limit
    assert len(deep) < 8 * 1024
    answer = call("gov_user_create", token=admin, body=deep)
    assert answer.status == 400, answer.body
    assert user_rows() == []


def test_a_jku_or_embedded_jwk_header_is_never_followed(env):  # noqa: F811
    """RFC 8725 §3.10 / RFC 9700: a token naming its own key (jku, x5u, jwk) is verified against our
    published keys only; a token signed by the attacker's key it points to is refused."""
    import time

    from latchkey import rfc9068, services
    from latchkey.crypto import jws, keys
    from latchkey.crypto.b64 import b64url_encode

    ring_kid = next(iter(services.key_ring().verification_keys()))
    attacker = keys.generate("ES256")
    now = int(time.time())
    claims = {"iss": s.ISSUER, "sub": "admin", "client_id": "x", "aud": s.ISSUER, "iat": now, "exp": now + 60,
              "jti": "j", "scope": "gov.user.oauth.app:write"}
    token = jws.sign(claims, key=attacker, kid=ring_kid, alg="ES256", typ="at+jwt")
    head, payload, signature = token.split(".")
    import json

    header = {"alg": "ES256", "kid": ring_kid, "typ": "at+jwt", "jku": "https://evil.example/jwks",
              "jwk": keys.public_jwk(attacker.public_key(), kid=ring_kid, alg="ES256")}
    forged = f"{b64url_encode(json.dumps(header).encode())}.{payload}.{signature}"
    for candidate in (token, forged):
        with pytest.raises(jws.TokenInvalid):
            rfc9068.verify(services.key_ring(), candidate, issuer=s.ISSUER)


def test_oversized_headers_are_refused_in_the_protocols_format_not_a_crash(env):  # noqa: F811
    """API Gateway limits header sizes before a function runs; behind it, an absurd Authorization header
    is still an ordinary client error."""
    huge = "Basic " + "A" * 60000
    answer = s.call("token", {"grant_type": "client_credentials"}, headers={"Authorization": huge})
    assert answer.status in (400, 401) and answer.json()["error"] in ("invalid_request", "invalid_client")
    bearer = s.call("introspect", {"token": "x"}, headers={"Authorization": "Bearer " + "a." * 30000})
    assert bearer.status == 401 and bearer.json()["error"] == "invalid_token"
