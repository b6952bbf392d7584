"""governor's consent API, ``POST /api/oauth/auth/code`` (WIRE §2): a signed-in user's token with
``gov.user.oauth.authorize`` consents for an app and gets the code, which the app redeems at the token
endpoint (RFC 6749 §4.1.3, RFC 7636)."""

from __future__ import annotations

import jwt
import pytest

from latchkey.events import EventName
from tests.flow_support import Agent, basic, pkce_pair
from tests.unit.grant_support import AUTHORIZE, READ, add_app, add_user, call, events, sign_in, stack
from tests.unit.oauth_support import add_client

PATH = "/api/oauth/auth/code"


@pytest.fixture
def env(monkeypatch):
    yield from stack(monkeypatch)


@pytest.fixture
def world(env):
    base, store = env
    alice = add_user()
    account = add_app(name="Account", scope=f"{AUTHORIZE} {READ}")
    shop = add_app(name="Shop", scope="orders:read")
    spa = add_app(name="SPA", public=True)
    token = sign_in(base, *account, scope=f"openid {AUTHORIZE} {READ}")["access_token"]
    return {"base": base, "store": store, "alice": alice, "account": account, "shop": shop, "spa": spa,
            "token": token}


def _request(world, token: str | None = None, **body):
    return call(world["base"], "POST", PATH, token=world["token"] if token is None else token, body=body)


def _redeem(world, app, code: str, verifier: str | None, **extra):
    client_id, secret = app
    form = {"grant_type": "authorization_code", "code": code, **extra}
    if verifier is not None:
        form["code_verifier"] = verifier
    if secret is None:
        form["client_id"] = client_id
    return Agent(world["base"]).token(form, authorization=basic(client_id, secret) if secret else None)


# --- the happy path -----------------------------------------------------------------------------------
def test_code_is_issued_and_redeemed_with_the_right_verifier(world):
    verifier, challenge = pkce_pair()
    answer = _request(world, client_id=world["shop"][0], scope="openid profile orders:read", nonce="n-42",
                      code_challenge=challenge, code_challenge_method="S256")
    assert answer.status == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert set(body) == {"code"} and body["code"].startswith("lk_ac_")

    redeemed = _redeem(world, world["shop"], body["code"], verifier)
    assert redeemed.status == 200, redeemed.text
    tokens = redeemed.json()
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert (claims["sub"], claims["client_id"]) == (world["alice"].user_id, world["shop"][0])
    assert tokens["scope"] == "openid orders:read profile"
    id_token = jwt.decode(tokens["id_token"], options={"verify_signature": False})
    assert (id_token["nonce"], id_token["aud"]) == ("n-42", world["shop"][0])
    info = call(world["base"], "GET", "/api/oauth/userinfo", token=tokens["access_token"])
    assert info.json()["sub"] == world["alice"].user_id and info.json()["preferred_username"] == "alice"


def test_the_consent_is_recorded_as_a_connection(world):
    _, challenge = pkce_pair()
    assert _request(world, client_id=world["shop"][0], scope="openid orders:read", code_challenge=challenge,
                    code_challenge_method="S256").status == 200
    connection = call(world["base"], "GET", f"/api/oauth/connection/id/{world['shop'][0]}", token=world["token"])
    assert connection.status == 200
    assert connection.json()["scope"] == "openid orders:read"


def test_the_code_is_usable_exactly_once(world):
    verifier, challenge = pkce_pair()
    code = _request(world, client_id=world["shop"][0], scope="openid", code_challenge=challenge,
                    code_challenge_method="S256").json()["code"]
    first = _redeem(world, world["shop"], code, verifier)
    assert first.status == 200
    second = _redeem(world, world["shop"], code, verifier)
    assert second.status == 400 and second.json()["error"] == "invalid_grant"
    # RFC 6749 §4.1.2: the replay revokes what the first use issued
    info = call(world["base"], "GET", "/api/oauth/userinfo", token=first.json()["access_token"])
    assert info.status == 401


def test_the_wrong_verifier_is_invalid_grant(world):
    _, challenge = pkce_pair()
    code = _request(world, client_id=world["shop"][0], scope="openid", code_challenge=challenge,
                    code_challenge_method="S256").json()["code"]
    other, _ = pkce_pair()
    answer = _redeem(world, world["shop"], code, other)
    assert answer.status == 400 and answer.json()["error"] == "invalid_grant"


def test_a_confidential_client_may_skip_pkce(world):
    code = _request(world, client_id=world["shop"][0], scope="openid").json()["code"]
    assert _redeem(world, world["shop"], code, None).status == 200


def test_a_public_client_with_pkce(world):
    verifier, challenge = pkce_pair()
    answer = _request(world, client_id=world["spa"][0], scope="openid", code_challenge=challenge,
                      code_challenge_method="S256")
    assert answer.status == 200, answer.text
    redeemed = _redeem(world, world["spa"], answer.json()["code"], verifier)
    assert redeemed.status == 200, redeemed.text


def test_an_oauth_request_authorized_event_is_written(world):
    store = world["store"]
    before = len(events(store, EventName.OAUTH_REQUEST_AUTHORIZED))
    _, challenge = pkce_pair()
    assert _request(world, client_id=world["shop"][0], scope="openid", code_challenge=challenge,
                    code_challenge_method="S256").status == 200
    written = events(store, EventName.OAUTH_REQUEST_AUTHORIZED)
    assert len(written) == before + 1
    event = written[-1]
    assert (event["clientId"], event["userId"]) == (world["shop"][0], world["alice"].user_id)
    assert event["payload"]["oauth"]["responseType"] == "code"
    claims = jwt.decode(world["token"], options={"verify_signature": False})
    assert event["sessionId"] == claims["sid"]


# --- bad requests (nothing is written) ----------------------------------------------------------------
def _assert_400(answer, code: str) -> None:
    assert answer.status == 400, answer.text
    body = answer.json()
    assert body["code"] == code and set(body) == {"message", "code", "request_id"}


def test_a_public_client_without_code_challenge_is_400(world):
    before = len(world["store"].events())
    _assert_400(_request(world, client_id=world["spa"][0], scope="openid"), "invalid_request")
    assert len(world["store"].events()) == before


def test_an_unknown_client_is_400(world):
    _assert_400(_request(world, client_id="0" * 32, scope="openid"), "invalid_request")
    _assert_400(_request(world, scope="openid"), "invalid_request")


def test_a_scope_the_app_may_not_ask_for_is_invalid_scope(world):
    _, challenge = pkce_pair()
    answer = _request(world, client_id=world["shop"][0], scope="openid orders:write", code_challenge=challenge,
                      code_challenge_method="S256")
    _assert_400(answer, "invalid_scope")


@pytest.mark.parametrize("body", [{"client_id": "x", "extra": "1"}, {"client_id": 5}, {"client_id": None}])
def test_unknown_fields_and_non_strings_are_400(world, body):
    _assert_400(call(world["base"], "POST", PATH, token=world["token"], body=body), "invalid_request")


def test_a_body_that_is_not_json_is_400(world):
    answer = Agent(world["base"]).request("POST", PATH, body=b"client_id=x", headers={
        "Authorization": f"Bearer {world['token']}", "Content-Type": "application/x-www-form-urlencoded"})
    _assert_400(answer, "invalid_request")


def test_a_plain_challenge_method_is_400(world):
    _, challenge = pkce_pair()
    _assert_400(_request(world, client_id=world["shop"][0], code_challenge=challenge, code_challenge_method="plain"),
                "invalid_request")


# --- guards -------------------------------------------------------------------------------------------
def test_without_a_token_is_401(world):
    answer = call(world["base"], "POST", PATH, body={"client_id": world["shop"][0]})
    assert answer.status == 401
    assert answer.headers["www-authenticate"].startswith('Bearer realm="latchkey", error="invalid_token"')
    assert answer.json()["code"] == "invalid_token"


def test_a_token_without_the_authorize_scope_is_403(world):
    token = sign_in(world["base"], *world["account"], scope=f"openid {READ}")["access_token"]
    answer = _request(world, token, client_id=world["shop"][0], scope="openid")
    assert answer.status == 403
    assert answer.headers["www-authenticate"] == \
        f'Bearer realm="latchkey", error="insufficient_scope", scope="{AUTHORIZE}"'
    assert answer.json()["code"] == "insufficient_scope"


def test_a_clients_own_token_is_403(world):
    client, secret = add_client(scope=AUTHORIZE)
    issued = call(world["base"], "POST", "/api/oauth/token", form={"grant_type": "client_credentials"},
                  headers={"Authorization": basic(client.client_id, secret)})
    assert issued.status == 200, issued.text
    before = len(world["store"].events())
    answer = _request(world, issued.json()["access_token"], client_id=world["shop"][0], scope="openid")
    assert answer.status == 403
    assert answer.json()["code"] == "forbidden"
    assert len(world["store"].events()) == before  # nothing announced


def test_a_clients_token_is_403_even_when_its_id_names_a_user(world):
    """A client token's ``sub`` is the client id; it must never be taken for the user with that id."""
    client, secret = add_client(client_id=world["alice"].user_id, scope=AUTHORIZE)
    issued = call(world["base"], "POST", "/api/oauth/token", form={"grant_type": "client_credentials"},
                  headers={"Authorization": basic(client.client_id, secret)})
    assert jwt.decode(issued.json()["access_token"], options={"verify_signature": False})["sub"] == \
        world["alice"].user_id
    answer = _request(world, issued.json()["access_token"], client_id=world["shop"][0], scope="openid")
    assert answer.status == 403
    assert answer.json()["code"] == "forbidden"


def test_a_disabled_user_cannot_authorize(world):
    from latchkey import revocation

    revocation.revoke_user(world["alice"], status="disabled")
    answer = _request(world, client_id=world["shop"][0], scope="openid")
    assert answer.status == 401
