"""Client authentication (RFC 6749 §2.3, RFC 7523 private_key_jwt, ``none``), positive and negative, at the
token endpoint: exact status, error code and ``WWW-Authenticate``."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest

from latchkey import services
from latchkey.rfc6749 import client_auth, grants
from latchkey.store import ENTITY, PK, SK, TTL_ATTRIBUTE, Put
from tests.unit import oauth_support as s
from tests.unit.oauth_support import ISSUER, JWT_BEARER, TOKEN_URL, basic, call

CC = {"grant_type": "client_credentials"}
BASIC_CHALLENGE = 'Basic realm="latchkey"'


@pytest.fixture
def store(monkeypatch):
    client_auth._jwks_cache.clear()
    yield from s.environment(monkeypatch)
    client_auth._jwks_cache.clear()


def refused(answer, status=401, error="invalid_client", challenge=None):
    assert (answer.status, answer.error) == (status, error), answer.body
    assert answer.headers.get("WWW-Authenticate") == challenge
    s.assert_no_store(answer)
    if error == "invalid_client":
        assert answer.json()["error_description"] == "Client authentication failed."  # never says why


# --- client_secret_basic ----------------------------------------------------------------------------
def test_basic_ok(store):
    _client, secret = s.add_client("app1")
    answer = call("token", CC, headers={"Authorization": basic("app1", secret)})
    assert answer.status == 200, answer.body


def test_basic_decodes_form_urlencoded_id_and_secret(store):
    """RFC 6749 §2.3.1: id and secret are form-urlencoded before base64 (so ':' and '+' survive)."""
    _client, secret = s.add_client("svc:1 é", secret="p@ss:w rd+%/=")
    answer = call("token", CC, headers={"Authorization": basic("svc:1 é", secret)})
    assert answer.status == 200, answer.body
    raw = "Basic " + base64.b64encode(b"svc%3A1+%C3%A9:p%40ss%3Aw+rd%2B%25%2F%3D").decode()
    assert call("token", CC, headers={"Authorization": raw}).status == 200


def test_basic_scheme_is_case_insensitive(store):
    _client, secret = s.add_client("app1")
    header = basic("app1", secret).replace("Basic", "bAsIc")
    assert call("token", CC, headers={"Authorization": header}).status == 200


def test_basic_with_a_matching_client_id_parameter_is_fine_and_a_different_one_is_not(store):
    _client, secret = s.add_client("app1")
    auth = {"Authorization": basic("app1", secret)}
    assert call("token", {**CC, "client_id": "app1"}, headers=auth).status == 200
    refused(call("token", {**CC, "client_id": "app2"}, headers=auth), 400, "invalid_request")


def test_basic_bad_secret_is_401_with_a_basic_challenge(store):
    _client, secret = s.add_client("app1")
    answer = call("token", CC, headers={"Authorization": basic("app1", secret + "x")})
    refused(answer, challenge=BASIC_CHALLENGE)
    s.check_openapi("token", answer)
    assert store.events() == []


def test_basic_unknown_client_is_401_with_a_basic_challenge(store):
    refused(call("token", CC, headers={"Authorization": basic("ghost", "boo")}), challenge=BASIC_CHALLENGE)


def test_basic_for_an_overlong_client_id_is_401(store):
    refused(call("token", CC, headers={"Authorization": basic("x" * 300, "boo")}), challenge=BASIC_CHALLENGE)


@pytest.mark.parametrize("header", [
    "Basic !!!not-base64!!!",
    "Basic " + base64.b64encode(b"no-colon-here").decode(),
    "Basic " + base64.b64encode(b":secret-without-id").decode(),
    "Basic " + base64.b64encode(b"id-without-secret:").decode(),
    "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
    "Basic " + base64.b64encode(b"bad%ZZ%C3%28:secret").decode(),
    "Basic",
])
def test_malformed_basic_header_is_invalid_request(store, header):
    refused(call("token", CC, headers={"Authorization": header}), 400, "invalid_request")


def test_another_authorization_scheme_is_invalid_client(store):
    refused(call("token", CC, headers={"Authorization": "Digest username=app1"}))


# --- client_secret_post -----------------------------------------------------------------------------
def test_post_ok(store):
    _client, secret = s.add_client("poster", method="client_secret_post")
    answer = call("token", {**CC, "client_id": "poster", "client_secret": secret})
    assert answer.status == 200, answer.body


def test_post_bad_secret_is_401_without_a_challenge(store):
    _client, secret = s.add_client("poster", method="client_secret_post")
    refused(call("token", {**CC, "client_id": "poster", "client_secret": secret[:-1]}))


def test_post_unknown_client_is_401(store):
    refused(call("token", {**CC, "client_id": "ghost", "client_secret": "boo"}))


def test_post_without_client_id_is_invalid_request(store):
    refused(call("token", {**CC, "client_secret": "boo"}), 400, "invalid_request")


def test_basic_and_post_together_are_invalid_request(store):
    _client, secret = s.add_client("app1")
    answer = call("token", {**CC, "client_id": "app1", "client_secret": secret},
                  headers={"Authorization": basic("app1", secret)})
    refused(answer, 400, "invalid_request")
    assert answer.json()["error_description"] == "The request uses more than one client authentication method."
    s.check_openapi("token", answer)


def test_secret_and_assertion_together_are_invalid_request(store):
    refused(call("token", {**CC, "client_id": "a", "client_secret": "b", "client_assertion_type": JWT_BEARER,
                           "client_assertion": "x.y.z"}), 400, "invalid_request")


# --- the registered method is enforced ----------------------------------------------------------------
def test_a_basic_client_may_not_use_post(store):
    _client, secret = s.add_client("app1", method="client_secret_basic")
    refused(call("token", {**CC, "client_id": "app1", "client_secret": secret}))


def test_a_post_client_may_not_use_basic(store):
    _client, secret = s.add_client("poster", method="client_secret_post")
    refused(call("token", CC, headers={"Authorization": basic("poster", secret)}), challenge=BASIC_CHALLENGE)


def test_a_confidential_client_sending_no_secret_is_401(store):
    s.add_client("app1")
    refused(call("token", {**CC, "client_id": "app1"}))


def test_no_client_authentication_at_all_is_401(store):
    refused(call("token", CC))


def test_a_public_client_may_not_present_a_secret(store):
    s.add_client("spa", method="none")
    refused(call("token", CC, headers={"Authorization": basic("spa", "made-up")}), challenge=BASIC_CHALLENGE)


# --- none -----------------------------------------------------------------------------------------------
def test_none_authenticates_a_public_client_by_its_id(store, monkeypatch):
    def issue(request):
        return grants.TokenResponse(access_token=f"for-{request.client.client_id}", expires_in=60)

    grant = grants.Grant("urn:test:public", issue, public_clients=True)
    monkeypatch.setitem(grants._registry, grant.grant_type, grant)
    s.add_client("spa", method="none", grant_types=("urn:test:public",))
    answer = call("token", {"grant_type": "urn:test:public", "client_id": "spa"})
    assert answer.status == 200, answer.body
    assert answer.json()["access_token"] == "for-spa"
    refused(call("token", {"grant_type": "urn:test:public", "client_id": "other-spa"}))


# --- private_key_jwt --------------------------------------------------------------------------------------
@pytest.fixture(params=["ES256", "RS256"])
def jwt_client(request, store):
    alg = request.param
    private, jwk = s.key_pair(alg)
    client, _ = s.add_client("signer", method="private_key_jwt", jwks={"keys": [jwk]})
    return client, private, alg, jwk["kid"]


def jwt_form(token, **extra):
    return {**CC, "client_assertion_type": JWT_BEARER, "client_assertion": token, **extra}


def test_private_key_jwt_ok(jwt_client, store):
    client, private, alg, kid = jwt_client
    answer = call("token", jwt_form(s.assertion("signer", private, alg, kid)))
    assert answer.status == 200, answer.body
    jti_rows = store.rows("client_assertion_jti")
    assert len(jti_rows) == 1 and jti_rows[0][PK].startswith("JTI#signer#")
    assert jti_rows[0][TTL_ATTRIBUTE] > time.time()


@pytest.mark.parametrize("audience", [ISSUER, TOKEN_URL, [TOKEN_URL, "https://other.example"]])
def test_private_key_jwt_audience_may_be_the_issuer_or_the_token_endpoint(jwt_client, audience):
    client, private, alg, kid = jwt_client
    answer = call("token", jwt_form(s.assertion("signer", private, alg, kid, audience=audience)))
    assert answer.status == 200, answer.body


def test_private_key_jwt_without_kid_tries_the_registered_keys(jwt_client):
    client, private, alg, _kid = jwt_client
    answer = call("token", jwt_form(s.assertion("signer", private, alg, None)))
    assert answer.status == 200, answer.body


def test_private_key_jwt_with_a_matching_client_id_parameter(jwt_client):
    client, private, alg, kid = jwt_client
    assert call("token", jwt_form(s.assertion("signer", private, alg, kid), client_id="signer")).status == 200
    refused(call("token", jwt_form(s.assertion("signer", private, alg, kid), client_id="other")))


@pytest.mark.parametrize("audience", ["https://auth.example.com/other", "https://evil.example", ["x", "y"]])
def test_private_key_jwt_wrong_audience(jwt_client, audience):
    client, private, alg, kid = jwt_client
    refused(call("token", jwt_form(s.assertion("signer", private, alg, kid, audience=audience))))


def test_private_key_jwt_expired(jwt_client):
    client, private, alg, kid = jwt_client
    now = int(time.time())
    token = s.assertion("signer", private, alg, kid, iat=now - 600, exp=now - 120)
    refused(call("token", jwt_form(token)))


def test_private_key_jwt_exp_too_far_ahead(jwt_client):
    client, private, alg, kid = jwt_client
    refused(call("token", jwt_form(s.assertion("signer", private, alg, kid, lifetime=3600))))


@pytest.mark.parametrize("claim", ["exp", "jti", "aud", "iss", "sub"])
def test_private_key_jwt_missing_claim(jwt_client, claim):
    client, private, alg, kid = jwt_client
    refused(call("token", jwt_form(s.assertion("signer", private, alg, kid, **{claim: None}))))


def test_private_key_jwt_iss_must_be_the_client(jwt_client):
    client, private, alg, kid = jwt_client
    refused(call("token", jwt_form(s.assertion("signer", private, alg, kid, iss="someone-else"))))


def test_private_key_jwt_issued_in_the_future(jwt_client):
    client, private, alg, kid = jwt_client
    now = int(time.time())
    refused(call("token", jwt_form(s.assertion("signer", private, alg, kid, iat=now + 120,
                                                          exp=now + 200))))


def test_private_key_jwt_replayed_jti(jwt_client):
    client, private, alg, kid = jwt_client
    token = s.assertion("signer", private, alg, kid)
    assert call("token", jwt_form(token)).status == 200
    refused(call("token", jwt_form(token)))
    again = s.assertion("signer", private, alg, kid, jti=jwt.decode(token, options={"verify_signature": False})["jti"])
    refused(call("token", jwt_form(again)))  # a new assertion reusing the jti


def test_a_jti_whose_row_expired_may_be_used_again(jwt_client, store):
    """DynamoDB deletes expired rows late: the condition, not the row's presence, decides."""
    client, private, alg, kid = jwt_client
    store.write(Put({PK: "JTI#signer#old", SK: "JTI", ENTITY: "client_assertion_jti",
                     TTL_ATTRIBUTE: int(time.time()) - 1}))
    assert call("token", jwt_form(s.assertion("signer", private, alg, kid, jti="old"))).status == 200


def test_private_key_jwt_signed_by_an_unregistered_key(jwt_client):
    client, _private, alg, kid = jwt_client
    stranger, _jwk = s.key_pair(alg)
    refused(call("token", jwt_form(s.assertion("signer", stranger, alg, kid))))
    refused(call("token", jwt_form(s.assertion("signer", stranger, alg, None))))


def test_private_key_jwt_unknown_kid(jwt_client):
    client, private, alg, _kid = jwt_client
    refused(call("token", jwt_form(s.assertion("signer", private, alg, "no-such-kid"))))


def test_private_key_jwt_alg_none_is_refused(store):
    _private, jwk = s.key_pair("ES256")
    s.add_client("signer", method="private_key_jwt", jwks={"keys": [jwk]})
    now = int(time.time())
    claims = {"iss": "signer", "sub": "signer", "aud": TOKEN_URL, "exp": now + 60, "jti": uuid.uuid4().hex}
    token = jwt.encode(claims, None, algorithm="none", headers={"kid": jwk["kid"]})
    refused(call("token", jwt_form(token)))


def test_private_key_jwt_hmac_with_the_public_key_is_refused(store):
    """RFC 8725 §2.1: no algorithm confusion — an HS256 MAC keyed with the public JWK does not verify."""
    _private, jwk = s.key_pair("ES256")
    s.add_client("signer", method="private_key_jwt", jwks={"keys": [jwk]})
    now = int(time.time())
    claims = {"iss": "signer", "sub": "signer", "aud": TOKEN_URL, "exp": now + 60, "jti": uuid.uuid4().hex}
    token = jwt.encode(claims, json.dumps(jwk).encode() * 2, algorithm="HS256", headers={"kid": jwk["kid"]})
    refused(call("token", jwt_form(token)))


def test_private_key_jwt_key_of_the_wrong_type_for_the_alg(store):
    rsa_private, _ = s.key_pair("RS256")
    _ec_private, ec_jwk = s.key_pair("ES256")
    s.add_client("signer", method="private_key_jwt", jwks={"keys": [ec_jwk]})
    refused(call("token", jwt_form(s.assertion("signer", rsa_private, "RS256", None))))


@pytest.mark.parametrize("form", [
    {"client_assertion_type": JWT_BEARER},
    {"client_assertion": "a.b.c"},
])
def test_private_key_jwt_needs_both_parameters(store, form):
    refused(call("token", {**CC, **form}), 400, "invalid_request")


def test_private_key_jwt_wrong_assertion_type(jwt_client):
    client, private, alg, kid = jwt_client
    form = jwt_form(s.assertion("signer", private, alg, kid),
                    client_assertion_type="urn:ietf:params:oauth:client-assertion-type:saml2-bearer")
    refused(call("token", form))


@pytest.mark.parametrize("token", ["not-a-jwt", "a.b.c", "eyJhbGciOiJFUzI1NiJ9.e30.sig"])
def test_private_key_jwt_garbage_assertion(store, token):
    refused(call("token", jwt_form(token)))


def test_a_secret_client_may_not_use_private_key_jwt(store):
    private, jwk = s.key_pair("ES256")
    s.add_client("app1", jwks={"keys": [jwk]})  # client_secret_basic, even with keys registered
    refused(call("token", jwt_form(s.assertion("app1", private, "ES256", jwk["kid"]))))


def test_a_private_key_jwt_client_may_not_use_a_secret(store):
    _private, jwk = s.key_pair("ES256")
    s.add_client("signer", method="private_key_jwt", jwks={"keys": [jwk]})
    refused(call("token", CC, headers={"Authorization": basic("signer", "guess")}), challenge=BASIC_CHALLENGE)


# --- jwks_uri ------------------------------------------------------------------------------------------------
class JwksServer:
    def __init__(self) -> None:
        self.document: dict = {"keys": []}
        self.hits = 0
        self.status = 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                outer.hits += 1
                body = json.dumps(outer.document).encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/jwk-set+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/jwks"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def jwks_server():
    server = JwksServer()
    yield server
    server.close()


def test_jwks_uri_is_fetched_once_and_cached(store, jwks_server):
    private, jwk = s.key_pair("ES256")
    jwks_server.document = {"keys": [jwk]}
    s.add_client("remote", method="private_key_jwt", jwks_uri=jwks_server.url)
    for _ in range(2):
        answer = call("token", jwt_form(s.assertion("remote", private, "ES256", jwk["kid"])))
        assert answer.status == 200, answer.body
    assert jwks_server.hits == 1


def test_jwks_uri_is_refetched_for_an_unknown_kid(store, jwks_server, monkeypatch):
    old, old_jwk = s.key_pair("ES256")
    new, new_jwk = s.key_pair("ES256")
    jwks_server.document = {"keys": [old_jwk]}
    s.add_client("remote", method="private_key_jwt", jwks_uri=jwks_server.url)
    assert call("token", jwt_form(s.assertion("remote", old, "ES256", old_jwk["kid"]))).status == 200
    jwks_server.document = {"keys": [old_jwk, new_jwk]}  # the client rotated
    monkeypatch.setattr(client_auth, "JWKS_URI_MIN_REFRESH", 0)
    assert call("token", jwt_form(s.assertion("remote", new, "ES256", new_jwk["kid"]))).status == 200
    assert jwks_server.hits == 2


def test_jwks_uri_failure_is_invalid_client(store, jwks_server):
    private, jwk = s.key_pair("ES256")
    jwks_server.status = 500
    s.add_client("remote", method="private_key_jwt", jwks_uri=jwks_server.url)
    refused(call("token", jwt_form(s.assertion("remote", private, "ES256", jwk["kid"]))))


def test_fetch_jwks_refuses_other_schemes():
    with pytest.raises(ValueError):
        client_auth.fetch_jwks("file:///etc/passwd")


# --- timing: an unknown client costs a hash too --------------------------------------------------------
def test_unknown_client_with_a_secret_still_hashes(store, monkeypatch):
    calls = []
    real = client_auth.keyed_hash
    monkeypatch.setattr(client_auth, "keyed_hash", lambda key, value: calls.append(value) or real(key, value))
    call("token", CC, headers={"Authorization": basic("ghost", "boo")})
    assert calls == ["boo"]
    assert services.client_store().get("ghost") is None
