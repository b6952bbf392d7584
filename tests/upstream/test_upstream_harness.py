"""The upstream providers on their own, without Latchkey: node-oidc-provider answers discovery and JWKS and
runs a whole code flow (PKCE required, RS256 id_token with the account's claims, access_denied on cancel,
the "wrong signature" mode); the plain OAuth 2.0 provider runs its flow (single-use codes, PKCE, Basic
auth, nested userinfo, the down switch)."""

from __future__ import annotations

import base64
import json
import urllib.parse

import jwt
import pytest

from tests.flow_support import basic, pkce_pair
from tests.helpers import http, http_form
from tests.upstream.fixtures import UpstreamBrowser, oidc_sign_in, start_oidc_provider
from tests.upstream.oauth2_provider import OAuth2Provider

pytestmark = pytest.mark.integration

REDIRECT = "http://127.0.0.1:9/cb"  # never followed: the flow stops at the redirect


@pytest.fixture(scope="module")
def node():
    provider = start_oidc_provider([REDIRECT])
    yield provider
    provider.stop()


def auth_url(issuer: str, challenge: str | None, **extra: str) -> str:
    query = {"client_id": "latchkey", "response_type": "code", "redirect_uri": REDIRECT,
             "scope": "openid email profile", "state": "st-1", "nonce": "n-1", **extra}
    if challenge:
        query.update(code_challenge=challenge, code_challenge_method="S256")
    return f"{issuer}/auth?{urllib.parse.urlencode(query)}"


def test_discovery_and_jwks(node):
    document = http("GET", node.discovery_url).json()
    assert document["issuer"] == node.issuer
    assert document["authorization_endpoint"] == f"{node.issuer}/auth"
    assert "S256" in document["code_challenge_methods_supported"]
    keys = http("GET", document["jwks_uri"]).json()["keys"]
    assert [(k["kty"], k["alg"], k["kid"]) for k in keys] == [("RSA", "RS256", "upstream-rs256")]
    assert not {"d", "p", "q"} & set(keys[0])


def test_a_code_flow_with_the_dev_pages(node):
    verifier, challenge = pkce_pair()
    landed = oidc_sign_in(UpstreamBrowser(), auth_url(node.issuer, challenge), "ursula")
    assert landed.startswith(REDIRECT + "?")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(landed).query))
    assert query["state"] == "st-1" and query["iss"] == node.issuer

    token = http_form(f"{node.issuer}/token", {"grant_type": "authorization_code", "code": query["code"],
                                                "redirect_uri": REDIRECT, "code_verifier": verifier},
                      {"Authorization": basic(node.client_id, node.client_secret)})
    assert token.status == 200, token.body
    tokens = token.json()
    jwks = jwt.PyJWKSet.from_dict(http("GET", f"{node.issuer}/jwks").json())
    claims = jwt.decode(tokens["id_token"], jwks.keys[0].key, algorithms=["RS256"], audience="latchkey",
                        issuer=node.issuer)
    assert {k: claims[k] for k in ("sub", "email", "email_verified", "name", "preferred_username", "nonce")} == {
        "sub": "ursula", "email": "ursula@upstream.test", "email_verified": True, "name": "Ursula Upstream",
        "preferred_username": "ursula", "nonce": "n-1"}
    userinfo = http("GET", f"{node.issuer}/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert userinfo.status == 200 and userinfo.json()["sub"] == "ursula"

    again = http_form(f"{node.issuer}/token", {"grant_type": "authorization_code", "code": query["code"],
                                                "redirect_uri": REDIRECT, "code_verifier": verifier},
                      {"Authorization": basic(node.client_id, node.client_secret)})
    assert again.status == 400 and again.json()["error"] == "invalid_grant"


def test_any_other_login_is_a_generated_account(node):
    verifier, challenge = pkce_pair()
    landed = oidc_sign_in(UpstreamBrowser(), auth_url(node.issuer, challenge), "fresh-42")
    code = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(landed).query))["code"]
    tokens = http_form(f"{node.issuer}/token", {"grant_type": "authorization_code", "code": code,
                                                 "redirect_uri": REDIRECT, "code_verifier": verifier},
                       {"Authorization": basic(node.client_id, node.client_secret)}).json()
    claims = jwt.decode(tokens["id_token"], options={"verify_signature": False})
    assert (claims["sub"], claims["email"], claims["preferred_username"]) == (
        "fresh-42", "fresh-42@upstream.test", "fresh-42")


def test_pkce_is_required(node):
    refused = UpstreamBrowser().get(auth_url(node.issuer, None))
    assert refused.status in (302, 303)
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(refused.location).query))
    assert query["error"] == "invalid_request" and "PKCE" in query["error_description"]


def test_cancel_on_consent_is_access_denied(node):
    _, challenge = pkce_pair()
    landed = oidc_sign_in(UpstreamBrowser(), auth_url(node.issuer, challenge), "ursula", deny=True)
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(landed).query))
    assert (query["error"], query["state"]) == ("access_denied", "st-1")


def test_bad_jwks_mode_breaks_every_signature():
    provider = start_oidc_provider([REDIRECT], bad_jwks=True)
    try:
        verifier, challenge = pkce_pair()
        landed = oidc_sign_in(UpstreamBrowser(), auth_url(provider.issuer, challenge), "ursula")
        code = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(landed).query))["code"]
        tokens = http_form(f"{provider.issuer}/token", {"grant_type": "authorization_code", "code": code,
                                                         "redirect_uri": REDIRECT, "code_verifier": verifier},
                           {"Authorization": basic(provider.client_id, provider.client_secret)}).json()
        keys = http("GET", f"{provider.issuer}/jwks").json()["keys"]
        header = json.loads(base64.urlsafe_b64decode(tokens["id_token"].split(".")[0] + "=="))
        assert [k["kid"] for k in keys] == [header["kid"]]  # same kid, other key
        with pytest.raises(jwt.InvalidSignatureError):
            jwt.decode(tokens["id_token"], jwt.PyJWK(keys[0]).key, algorithms=["RS256"], audience="latchkey")
    finally:
        provider.stop()


def test_plain_oauth2_provider():
    browser = UpstreamBrowser()
    with OAuth2Provider(redirect_uris=(REDIRECT,)) as upstream:
        verifier, challenge = pkce_pair()
        authorize = browser.get(f"{upstream.authorization_endpoint}?" + urllib.parse.urlencode({
            "client_id": "latchkey", "response_type": "code", "redirect_uri": REDIRECT, "state": "s",
            "code_challenge": challenge, "code_challenge_method": "S256"}))
        assert authorize.status == 302
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(authorize.location).query))
        assert query["state"] == "s"
        form = {"grant_type": "authorization_code", "code": query["code"], "redirect_uri": REDIRECT,
                "code_verifier": verifier}
        assert http_form(upstream.token_endpoint, form).status == 401  # no client authentication
        wrong_secret = {"Authorization": basic("latchkey", "nope")}
        assert http_form(upstream.token_endpoint, form, wrong_secret).status == 401
        auth = {"Authorization": basic(upstream.client_id, upstream.client_secret)}
        bad_pkce = http_form(upstream.token_endpoint, {**form, "code_verifier": "x" * 43}, auth)
        assert bad_pkce.status == 400  # and the code is spent
        authorize = browser.get(f"{upstream.authorization_endpoint}?" + urllib.parse.urlencode({
            "client_id": "latchkey", "response_type": "code", "redirect_uri": REDIRECT, "state": "s",
            "code_challenge": challenge, "code_challenge_method": "S256"}))
        code = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(authorize.location).query))["code"]
        token = http_form(upstream.token_endpoint, {**form, "code": code}, auth)
        assert token.status == 200 and token.json()["token_type"] == "Bearer"
        assert http_form(upstream.token_endpoint, {**form, "code": code}, auth).json()["error"] == "invalid_grant"
        me = http("GET", upstream.userinfo_endpoint,
                  headers={"Authorization": f"Bearer {token.json()['access_token']}"})
        assert me.json() == {"id": 12345, "profile": {"login": "octo", "email": "octo@plain.test",
                                                      "name": "Octo Cat"}}
        assert http("GET", upstream.userinfo_endpoint, headers={"Authorization": "Bearer nope"}).status == 401

        denied = browser.get(f"{upstream.authorization_endpoint}?" + urllib.parse.urlencode({
            "client_id": "latchkey", "response_type": "code", "redirect_uri": REDIRECT, "state": "s",
            "decision": "deny"}))
        assert dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(denied.location).query))["error"] == (
            "access_denied")
        assert http("GET", f"{upstream.authorization_endpoint}?client_id=latchkey&redirect_uri=http://evil/cb"
                    ).status == 400
        upstream.down = True
        assert http("GET", upstream.userinfo_endpoint).status == 503
        assert len(upstream.calls("/token")) == 5
