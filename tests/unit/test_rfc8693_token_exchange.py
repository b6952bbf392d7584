"""Token exchange (RFC 8693) at ``POST /api/oauth/token``: real user tokens from the code flow (through the
local gateway) exchanged by another app under its ``token_exchange_policy``; the permission-bypass cases,
each with its exact error; and revocation reaching the exchanged token."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest

from latchkey import apps, clock, revocation, rfc9068, services
from latchkey.events import OUTBOX_ENTITY, EventName
from latchkey.rfc8693 import ACCESS_TOKEN, GRANT_TYPE, ID_TOKEN, JWT, REFRESH_TOKEN
from latchkey.store import ENTITY, Check, Put
from tests.flow_support import Agent, add_app, add_user, basic
from tests.unit import grant_support as g
from tests.unit import oauth_support as s

API = "https://api.example.com"
GAMES = "https://games.example.com"
USER_SCOPE = "openid profile offline_access games:read games:admin"


@pytest.fixture
def env(monkeypatch):
    """(base URL = issuer, the recording store); signing keys from tests.flow_support's shared pool."""
    yield from g.stack(monkeypatch)


@pytest.fixture
def base(env):
    return env[0]


@pytest.fixture
def store(env):
    return env[1]


@pytest.fixture
def alice(base):
    return add_user("alice", g.PASSWORD, name="Alice Liddell")


@pytest.fixture
def frontend(base):
    """The app alice signs in to (client B)."""
    return add_app(name="Frontend", scope="games:read games:admin")


@pytest.fixture
def user_tokens(base, alice, frontend):
    client_id, secret = frontend
    return g.sign_in(base, client_id, secret, scope=USER_SCOPE)


def exchanger(policy: dict | None = None, *, scope: str = "games:read",
              grant_types: tuple[str, ...] = (GRANT_TYPE, "client_credentials"), public: bool = False,
              client_id: str | None = None) -> tuple[str, str | None]:
    """A confidential service app (client A) allowed to exchange tokens under ``policy``."""
    data = {"name": "Service", "grant_types": list(grant_types), "scope": scope,
            "token_endpoint_auth_method": "none" if public else "client_secret_basic"}
    if policy is not None:
        data["token_exchange_policy"] = policy
    credentials = apps.create(data, client_id=client_id)
    return credentials.client_id, credentials.key


def policy(*subject_clients: str, audiences: tuple[str, ...] = (API,), delegation: bool = False) -> dict:
    return {"subject_clients": list(subject_clients), "audiences": list(audiences), "delegation": delegation}


def exchange(base: str, app: tuple[str, str | None], subject_token: str, subject_token_type: str = ACCESS_TOKEN,
             **form: str):
    client_id, secret = app
    body = {"grant_type": GRANT_TYPE, "subject_token": subject_token, "subject_token_type": subject_token_type,
            **form}
    if secret is None:
        body["client_id"] = client_id
    return Agent(base).token(body, authorization=basic(client_id, secret) if secret else None)


def ok(answer) -> dict:
    assert answer.status == 200, answer.text
    return answer.json()


def error(answer) -> tuple[int, str]:
    return answer.status, answer.json()["error"]


def claims(base: str, token: str, audience: str | list[str] | None = None) -> dict:
    return rfc9068.verify(services.key_ring(), token, issuer=base, audience=audience)


def as_answer(answer) -> s.Answer:
    """A flow response in the shape :func:`tests.unit.oauth_support.check_openapi` reads."""
    return s.Answer(answer.status, {k.title(): v for k, v in answer.headers.items()}, answer.text)


def client_token(base: str, app: tuple[str, str | None], **form: str) -> str:
    client_id, secret = app
    answer = Agent(base).token({"grant_type": "client_credentials", **form}, authorization=basic(client_id, secret))
    return ok(answer)["access_token"]


# --- happy paths -------------------------------------------------------------------------------------------
def test_a_users_access_token_for_another_audience(base, store, alice, frontend, user_tokens):
    service = exchanger(policy(frontend[0]))
    writes_before = len(store.writes)
    answer = exchange(base, service, user_tokens["access_token"], audience=API)
    body = ok(answer)
    assert body["issued_token_type"] == ACCESS_TOKEN
    assert body["token_type"] == "Bearer"
    assert "refresh_token" not in body and "id_token" not in body
    s.check_openapi("token", as_answer(answer))
    assert answer.headers["cache-control"] == "no-store"
    original = claims(base, user_tokens["access_token"])
    issued = claims(base, body["access_token"], audience=API)
    assert jwt.get_unverified_header(body["access_token"])["typ"] == "at+jwt"
    assert (issued["sub"], issued["client_id"], issued["aud"]) == (alice.user_id, service[0], API)
    assert issued["grant_id"] == original["grant_id"]
    assert issued["grant_client_id"] == frontend[0]
    assert issued["auth_time"] == original["auth_time"] and issued["sid"] == original["sid"]
    # the subject's scopes the service may hold (games:admin is not among the service's scopes)
    assert issued["scope"] == body["scope"] == "games:read offline_access openid profile"
    assert "act" not in issued
    assert issued["exp"] <= original["exp"]
    # one write: the oauthTokenGenerated outbox row (and, when the service app's record came from the
    # instance's cache, the check that it is unchanged)
    assert len(store.writes) == writes_before + 1
    only, *guard = store.writes[-1]
    assert isinstance(only, Put) and only.item[ENTITY] == OUTBOX_ENTITY
    assert all(isinstance(g, Check) and g.pk == f"CLIENT#{service[0]}" for g in guard)
    event = store.events()[-1]
    assert event["name"] == EventName.OAUTH_TOKEN_GENERATED.value
    assert (event["clientId"], event["userId"], event["payload"]["oauth"]["responseType"]) == (
        service[0], alice.user_id, "token")
    assert event["sessionId"] == original["sid"]
    # the exchanged token is active at introspection, for the new client and audience
    described = g.introspect(base, service[0], service[1], body["access_token"])
    assert described["active"] is True
    assert (described["client_id"], described["sub"], described["aud"]) == (service[0], alice.user_id, API)


def test_resource_becomes_the_audience_and_both_together(base, frontend, user_tokens):
    service = exchanger(policy(frontend[0], audiences=(API, GAMES)))
    one = ok(exchange(base, service, user_tokens["access_token"], resource=GAMES))
    assert claims(base, one["access_token"], audience=GAMES)["aud"] == GAMES
    both = ok(exchange(base, service, user_tokens["access_token"], resource=GAMES, audience=API))
    assert claims(base, both["access_token"], audience=API)["aud"] == [GAMES, API]


def test_without_audience_the_issuer_when_the_policy_allows_it(base, frontend, user_tokens):
    service = exchanger(policy(frontend[0], audiences=(base,)))
    body = ok(exchange(base, service, user_tokens["access_token"]))
    assert claims(base, body["access_token"], audience=base)["aud"] == base


def test_a_refresh_token_subject(base, alice, frontend, user_tokens):
    service = exchanger(policy(frontend[0]))
    body = ok(exchange(base, service, user_tokens["refresh_token"], REFRESH_TOKEN, audience=API))
    assert body["issued_token_type"] == ACCESS_TOKEN
    issued = claims(base, body["access_token"], audience=API)
    original = claims(base, user_tokens["access_token"])
    assert (issued["sub"], issued["client_id"], issued["grant_id"], issued["grant_client_id"]) == (
        alice.user_id, service[0], original["grant_id"], frontend[0])
    assert issued["scope"] == "games:read offline_access openid profile"
    # the exchange does not consume the refresh token: its app can still refresh with it
    assert g.refresh(base, frontend[0], frontend[1], user_tokens["refresh_token"]).status == 200


def test_an_id_token_subject_grants_openid_at_most(base, alice, frontend, user_tokens):
    service = exchanger(policy(frontend[0]))
    body = ok(exchange(base, service, user_tokens["id_token"], ID_TOKEN, audience=API))
    issued = claims(base, body["access_token"], audience=API)
    assert issued["scope"] == "" and "scope" not in body
    assert (issued["sub"], issued["client_id"], issued["grant_client_id"]) == (alice.user_id, service[0],
                                                                               frontend[0])
    assert issued["grant_id"] == claims(base, user_tokens["access_token"])["grant_id"]
    with_openid = ok(exchange(base, service, user_tokens["id_token"], ID_TOKEN, audience=API, scope="openid"))
    assert with_openid["scope"] == "openid"
    assert error(exchange(base, service, user_tokens["id_token"], ID_TOKEN, audience=API, scope="profile")) == (
        400, "invalid_scope")


@pytest.mark.parametrize("kind", ["access_token", "id_token"])
def test_the_jwt_type_takes_either_kind_and_jwt_can_be_requested(base, frontend, user_tokens, kind):
    service = exchanger(policy(frontend[0]))
    body = ok(exchange(base, service, user_tokens[kind], JWT, audience=API, requested_token_type=JWT))
    assert body["issued_token_type"] == JWT
    assert body["token_type"] == "Bearer"
    assert claims(base, body["access_token"], audience=API)["client_id"] == service[0]


def test_requested_token_type_access_token_is_the_default(base, frontend, user_tokens):
    service = exchanger(policy(frontend[0]))
    body = ok(exchange(base, service, user_tokens["access_token"], audience=API, requested_token_type=ACCESS_TOKEN))
    assert body["issued_token_type"] == ACCESS_TOKEN


def test_scope_narrows(base, frontend, user_tokens):
    service = exchanger(policy(frontend[0]))
    body = ok(exchange(base, service, user_tokens["access_token"], audience=API, scope="games:read"))
    assert body["scope"] == "games:read"
    assert claims(base, body["access_token"], audience=API)["scope"] == "games:read"


def test_a_client_credentials_subject_has_no_user(base, store):
    machine = exchanger(None, grant_types=("client_credentials",), scope="read write", client_id="machine")
    service = exchanger(policy("machine"), scope="read")
    body = ok(exchange(base, service, client_token(base, machine), audience=API))
    issued = claims(base, body["access_token"], audience=API)
    assert (issued["sub"], issued["client_id"], issued["scope"]) == ("machine", service[0], "read")
    assert "grant_id" not in issued and "grant_client_id" not in issued
    assert store.events()[-1]["userId"] == ""


def test_the_access_token_lifetime_is_capped_like_client_credentials(base, frontend, user_tokens):
    service_id, secret = exchanger(policy(frontend[0]))
    apps.update(service_id, {"name": "Service", "access_token_ttl": 120})
    body = ok(exchange(base, (service_id, secret), user_tokens["access_token"], audience=API))
    assert 115 <= body["expires_in"] <= 120


# --- delegation (act, §4.1) ------------------------------------------------------------------------------
def test_delegation_adds_act_and_nests_the_prior_actor(base, alice, frontend, user_tokens):
    service_id, secret = exchanger(None, client_id="svc")
    apps.update("svc", {"name": "Service", "token_exchange_policy": policy(frontend[0], "svc", delegation=True)})
    service = (service_id, secret)
    actor = client_token(base, service)
    body = ok(exchange(base, service, user_tokens["access_token"], audience=API, actor_token=actor,
                       actor_token_type=ACCESS_TOKEN))
    first = claims(base, body["access_token"], audience=API)
    assert first["sub"] == alice.user_id
    assert first["act"] == {"sub": "svc", "client_id": "svc"}

    # the delegated token exchanged again with an actor: the earlier actor nests inside the new one
    again = ok(exchange(base, service, body["access_token"], audience=API, actor_token=actor,
                        actor_token_type=JWT))
    second = claims(base, again["access_token"], audience=API)
    assert second["act"] == {"sub": "svc", "client_id": "svc", "act": {"sub": "svc", "client_id": "svc"}}
    assert second["grant_client_id"] == frontend[0]

    # without an actor (impersonation) a delegated token keeps its act: it never turns into the user's own
    plain = ok(exchange(base, service, body["access_token"], audience=API))
    assert claims(base, plain["access_token"], audience=API)["act"] == {"sub": "svc", "client_id": "svc"}


def test_impersonation_has_no_act(base, frontend, user_tokens):
    service = exchanger(policy(frontend[0], delegation=True))
    body = ok(exchange(base, service, user_tokens["access_token"], audience=API))
    assert "act" not in claims(base, body["access_token"], audience=API)


# --- the permission-bypass class ---------------------------------------------------------------------------
def test_a_client_without_policy_is_refused_even_for_its_own_token(base, store):
    service = exchanger(None)
    own = client_token(base, service)
    before = len(store.events())
    assert error(exchange(base, service, own, audience=API)) == (400, "unauthorized_client")
    # refused before the tokens are looked at: a garbage token gets the same answer
    assert error(exchange(base, service, "garbage", audience=API)) == (400, "unauthorized_client")
    assert len(store.events()) == before


def test_a_client_not_registered_for_the_grant_is_unauthorized(base, frontend, user_tokens):
    service = exchanger(policy(frontend[0]), grant_types=("client_credentials",))
    answer = exchange(base, service, user_tokens["access_token"], audience=API)
    assert error(answer) == (400, "unauthorized_client")
    s.check_openapi("token", as_answer(answer))


def test_a_public_client_cannot_use_the_grant(base, frontend, user_tokens):
    public = exchanger(policy(frontend[0]), grant_types=(GRANT_TYPE,), public=True)
    assert public[1] is None
    assert error(exchange(base, public, user_tokens["access_token"], audience=API)) == (400, "unauthorized_client")


def test_its_own_tokens_only_when_it_lists_itself(base):
    service_id, secret = exchanger(None, client_id="svc")
    apps.update("svc", {"name": "Service", "token_exchange_policy": policy("someone-else")})
    own = client_token(base, (service_id, secret))
    assert error(exchange(base, (service_id, secret), own, audience=API)) == (400, "invalid_request")
    apps.update("svc", {"name": "Service", "token_exchange_policy": policy("svc")})
    assert exchange(base, (service_id, secret), own, audience=API).status == 200


def test_client_a_cannot_exchange_client_b_tokens_unless_b_is_listed(base, store, frontend, user_tokens):
    other, _ = add_app(name="Other")
    service = exchanger(policy(other))
    before = len(store.events())
    for kind, token_type in (("access_token", ACCESS_TOKEN), ("refresh_token", REFRESH_TOKEN),
                             ("id_token", ID_TOKEN), ("access_token", JWT)):
        answer = exchange(base, service, user_tokens[kind], token_type, audience=API)
        assert error(answer) == (400, "invalid_request"), kind
        assert answer.json()["error_description"] == "The subject_token is not acceptable."
    assert len(store.events()) == before


@pytest.mark.parametrize("target", [{"audience": "https://evil.example"}, {"resource": "https://evil.example"},
                                    {}, {"audience": API, "resource": "https://evil.example"}])
def test_an_audience_outside_the_policy_is_invalid_target(base, frontend, user_tokens, target):
    service = exchanger(policy(frontend[0]))
    answer = exchange(base, service, user_tokens["access_token"], **target)
    assert error(answer) == (400, "invalid_target")
    s.check_openapi("token", as_answer(answer))


def test_a_malformed_resource_is_invalid_target(base, frontend, user_tokens):
    service = exchanger(policy(frontend[0], audiences=("/relative",)))
    assert error(exchange(base, service, user_tokens["access_token"], resource="/relative")) == (400, "invalid_target")


@pytest.mark.parametrize("scope", ["games:read games:write", "games:admin", "email", "games:read  openid", "x\\y"])
def test_widening_scope_is_invalid_scope(base, frontend, user_tokens, scope):
    service = exchanger(policy(frontend[0]), scope="games:read games:write")
    answer = exchange(base, service, user_tokens["access_token"], audience=API, scope=scope)
    assert error(answer) == (400, "invalid_scope")


def test_a_revoked_subject_token_is_invalid_request(base, frontend, user_tokens):
    service = exchanger(policy(frontend[0]))
    revoked = Agent(base).request("POST", "/api/oauth/revoke", form={"token": user_tokens["access_token"]},
                                  headers={"Authorization": basic(*frontend)})
    assert revoked.status == 200
    answer = exchange(base, service, user_tokens["access_token"], audience=API)
    assert error(answer) == (400, "invalid_request")
    assert answer.json()["error_description"] == "The subject_token is invalid."


def test_an_expired_subject_token_is_invalid_request(base, alice, frontend, user_tokens):
    service = exchanger(policy(frontend[0]))
    original = claims(base, user_tokens["access_token"])
    settings = services.settings()
    expired = rfc9068.issue(services.key_ring(), issuer=base, alg=settings.access_token_alg,
                            client_id=frontend[0], subject=alice.user_id, audience=base, scopes=["games:read"],
                            ttl=60, extra={"grant_id": original["grant_id"]}, now=int(time.time()) - 120)
    assert error(exchange(base, service, expired.token, audience=API)) == (400, "invalid_request")


def test_a_forged_subject_token_is_invalid_request(base, alice, frontend):
    service = exchanger(policy(frontend[0]))
    private, jwk = s.key_pair("ES256", kid="forged")
    now = int(time.time())
    forged = jwt.encode({"iss": base, "sub": alice.user_id, "aud": base, "exp": now + 600, "iat": now,
                         "jti": uuid.uuid4().hex, "client_id": frontend[0], "scope": "games:read"},
                        private, algorithm="ES256", headers={"kid": "forged", "typ": "at+jwt"})
    assert error(exchange(base, service, forged, audience=API)) == (400, "invalid_request")


@pytest.mark.parametrize(("value", "token_type"), [
    ("garbage", ACCESS_TOKEN), ("a.b.c", JWT), ("lk_rt_notatoken", REFRESH_TOKEN), ("x" * 9000, ACCESS_TOKEN),
    ("garbage", ID_TOKEN),
])
def test_garbage_subject_tokens_are_invalid_request(base, frontend, value, token_type):
    service = exchanger(policy(frontend[0]))
    assert error(exchange(base, service, value, token_type, audience=API)) == (400, "invalid_request")


@pytest.mark.parametrize(("kind", "declared"), [
    ("access_token", ID_TOKEN), ("id_token", ACCESS_TOKEN), ("refresh_token", ACCESS_TOKEN),
    ("access_token", REFRESH_TOKEN), ("refresh_token", JWT), ("id_token", REFRESH_TOKEN),
])
def test_a_token_of_another_type_than_declared_is_invalid_request(base, frontend, user_tokens, kind, declared):
    service = exchanger(policy(frontend[0]))
    assert error(exchange(base, service, user_tokens[kind], declared, audience=API)) == (400, "invalid_request")


def test_a_rotated_refresh_token_is_invalid_request(base, frontend, user_tokens):
    service = exchanger(policy(frontend[0]))
    assert g.refresh(base, frontend[0], frontend[1], user_tokens["refresh_token"]).status == 200
    answer = exchange(base, service, user_tokens["refresh_token"], REFRESH_TOKEN, audience=API)
    assert error(answer) == (400, "invalid_request")


@pytest.mark.parametrize("form", [
    {"subject_token_type": "urn:ietf:params:oauth:token-type:saml2"},
    {"requested_token_type": REFRESH_TOKEN},
    {"requested_token_type": ID_TOKEN},
    {"actor_token": "x"},
    {"actor_token_type": ACCESS_TOKEN},
])
def test_unsupported_or_unpaired_parameters_are_invalid_request(base, frontend, user_tokens, form):
    service = exchanger(policy(frontend[0], delegation=True))
    body = {"audience": API, **form}
    token_type = body.pop("subject_token_type", ACCESS_TOKEN)
    answer = exchange(base, service, user_tokens["access_token"], token_type, **body)
    assert error(answer) == (400, "invalid_request")
    s.check_openapi("token", as_answer(answer))


@pytest.mark.parametrize("missing", ["subject_token", "subject_token_type"])
def test_a_missing_subject_parameter_is_invalid_request(base, frontend, user_tokens, missing):
    service_id, secret = exchanger(policy(frontend[0]))
    form = {"grant_type": GRANT_TYPE, "subject_token": user_tokens["access_token"],
            "subject_token_type": ACCESS_TOKEN, "audience": API}
    del form[missing]
    answer = Agent(base).token(form, authorization=basic(service_id, secret))
    assert error(answer) == (400, "invalid_request")


def test_an_actor_token_without_delegation_is_invalid_request(base, store, frontend, user_tokens):
    service = exchanger(policy(frontend[0], delegation=False))
    actor = client_token(base, service)
    before = len(store.events())
    answer = exchange(base, service, user_tokens["access_token"], audience=API, actor_token=actor,
                      actor_token_type=ACCESS_TOKEN)
    assert error(answer) == (400, "invalid_request")
    assert len(store.events()) == before


def test_an_actor_token_of_another_client_is_invalid_request(base, frontend, user_tokens):
    service = exchanger(policy(frontend[0], delegation=True))
    # the user's own token (issued to the frontend) cannot make the service an actor
    answer = exchange(base, service, user_tokens["access_token"], audience=API,
                      actor_token=user_tokens["access_token"], actor_token_type=ACCESS_TOKEN)
    assert error(answer) == (400, "invalid_request")
    assert answer.json()["error_description"] == "The actor_token is invalid."


def test_an_invalid_actor_token_is_invalid_request(base, frontend, user_tokens):
    service = exchanger(policy(frontend[0], delegation=True))
    for actor, actor_type in (("garbage", ACCESS_TOKEN), (user_tokens["id_token"], JWT),
                              (user_tokens["refresh_token"], ACCESS_TOKEN)):
        answer = exchange(base, service, user_tokens["access_token"], audience=API, actor_token=actor,
                          actor_token_type=actor_type)
        assert error(answer) == (400, "invalid_request")
    answer = exchange(base, service, user_tokens["access_token"], audience=API, actor_token="x",
                      actor_token_type=ID_TOKEN)
    assert error(answer) == (400, "invalid_request")


# --- dynamic registration cannot grant a policy -------------------------------------------------------------
def test_dynamic_registration_cannot_set_a_token_exchange_policy(base, frontend, user_tokens):
    admin, admin_secret = s.add_client("registrar", scope="gov.user.oauth.app:write")
    initial = client_token(base, (admin.client_id, admin_secret))
    sneaky = {"client_name": "Sneaky", "grant_types": [GRANT_TYPE], "token_endpoint_auth_method": "client_secret_basic",
              "token_exchange_policy": policy(frontend[0], delegation=True)}
    answer = g.call(base, "POST", "/api/oauth/register", token=initial, body=sneaky)
    assert answer.status == 201, answer.text
    registered = answer.json()
    assert "token_exchange_policy" not in registered
    client_id = registered["client_id"]
    assert services.client_store().get(client_id).token_exchange_policy is None
    sneak = (client_id, registered["client_secret"])
    assert error(exchange(base, sneak, user_tokens["access_token"], audience=API)) == (400, "unauthorized_client")

    # nor through an RFC 7592 update of its own registration
    update = {**sneaky, "client_id": client_id}
    answer = g.call(base, "PUT", f"/api/oauth/register/{client_id}", token=registered["registration_access_token"],
                    body=update)
    assert answer.status == 200, answer.text
    assert services.client_store().get(client_id).token_exchange_policy is None
    assert error(exchange(base, sneak, user_tokens["access_token"], audience=API)) == (400, "unauthorized_client")


# --- revocation reaches the exchanged token -----------------------------------------------------------------
def test_revoking_the_user_kills_the_exchanged_token(base, alice, frontend, user_tokens):
    service = exchanger(policy(frontend[0]))
    exchanged = ok(exchange(base, service, user_tokens["access_token"], audience=API))["access_token"]
    assert g.introspect(base, service[0], service[1], exchanged)["active"] is True
    revocation.revoke_user(services.user_store().get(alice.user_id))
    assert g.introspect(base, service[0], service[1], exchanged) == {"active": False}
    assert error(exchange(base, service, user_tokens["access_token"], audience=API)) == (400, "invalid_request")


@pytest.mark.parametrize("subject", ["access_token", "refresh_token", "id_token"])
def test_deleting_the_original_connection_kills_the_exchanged_token(base, alice, frontend, user_tokens, subject):
    service = exchanger(policy(frontend[0]))
    token_type = {"access_token": ACCESS_TOKEN, "refresh_token": REFRESH_TOKEN, "id_token": ID_TOKEN}[subject]
    exchanged = ok(exchange(base, service, user_tokens[subject], token_type, audience=API))["access_token"]
    assert g.introspect(base, service[0], service[1], exchanged)["active"] is True
    assert revocation.revoke_connection(alice.user_id, frontend[0])
    assert g.introspect(base, service[0], service[1], exchanged) == {"active": False}
    assert error(exchange(base, service, user_tokens[subject], token_type, audience=API)) == (400, "invalid_request")


def test_an_id_token_from_before_a_new_connection_is_refused(base, alice, frontend, user_tokens, monkeypatch):
    """After the connection was deleted and made again, an older ID Token does not stand for the new one."""
    service = exchanger(policy(frontend[0]))
    assert revocation.revoke_connection(alice.user_id, frontend[0])
    later = clock.now() + 5
    monkeypatch.setattr(clock, "now", lambda: later)  # the new consent is given later
    g.sign_in(base, frontend[0], frontend[1], scope=USER_SCOPE)
    assert error(exchange(base, service, user_tokens["id_token"], ID_TOKEN, audience=API)) == (400, "invalid_request")


def test_deleting_the_exchanging_app_kills_the_exchanged_token(base, frontend, user_tokens):
    service = exchanger(policy(frontend[0]))
    exchanged = ok(exchange(base, service, user_tokens["access_token"], audience=API))["access_token"]
    assert g.introspect(base, frontend[0], frontend[1], exchanged)["active"] is True
    apps.delete(service[0])
    assert g.introspect(base, frontend[0], frontend[1], exchanged) == {"active": False}


def test_revoking_the_exchanged_token_leaves_the_original(base, frontend, user_tokens):
    service = exchanger(policy(frontend[0]))
    exchanged = ok(exchange(base, service, user_tokens["access_token"], audience=API))["access_token"]
    revoked = Agent(base).request("POST", "/api/oauth/revoke", form={"token": exchanged},
                                  headers={"Authorization": basic(*service)})
    assert revoked.status == 200
    assert g.introspect(base, service[0], service[1], exchanged) == {"active": False}
    assert g.introspect(base, frontend[0], frontend[1], user_tokens["access_token"])["active"] is True


# --- metadata ------------------------------------------------------------------------------------------------
def test_the_grant_is_advertised(base):
    document = Agent(base).get("/.well-known/oauth-authorization-server").json()
    assert GRANT_TYPE in document["grant_types_supported"]
