"""Shared by the userinfo, connection and auth-code tests: real user tokens from the hosted flow.

:func:`stack` runs :func:`tests.flow_support.flow_stack` on a :class:`tests.unit.oauth_support.RecordingStore`
(so a test can read the outbox); :func:`sign_in` walks authorize → login → consent with PKCE and
exchanges the code at ``/api/oauth/token``; :func:`call` sends a request with a bearer token.
"""

from __future__ import annotations

import json
from typing import Any

from latchkey.events import EventName
from tests.flow_support import Agent, Response, add_app, add_user, basic, flow_stack, pkce_pair
from tests.unit.oauth_support import RecordingStore

PASSWORD = "correct horse battery"
REDIRECT = "https://app.example/cb"
READ, WRITE = "gov.user.oauth.connection:read", "gov.user.oauth.connection:write"
AUTHORIZE = "gov.user.oauth.authorize"
GOV_SCOPES = f"{READ} {WRITE} {AUTHORIZE}"


def stack(monkeypatch):
    """For a fixture to ``yield from``: (base URL, the recording store)."""
    store = RecordingStore()
    for base in flow_stack(monkeypatch, store=store):
        yield base, store


def sign_in(base: str, client_id: str, secret: str | None, *, scope: str, username: str = "alice",
            password: str = PASSWORD) -> dict[str, Any]:
    """The token response for ``username`` after the code flow with ``client_id`` (PKCE S256)."""
    agent = Agent(base)
    verifier, challenge = pkce_pair()
    query = agent.authorize(client_id, username, password, scope=scope, redirect_uri=REDIRECT, state="st",
                            code_challenge=challenge, code_challenge_method="S256")
    assert "code" in query, query
    form = {"grant_type": "authorization_code", "code": query["code"], "redirect_uri": REDIRECT,
            "code_verifier": verifier}
    if secret is None:
        form["client_id"] = client_id
    answer = agent.token(form, authorization=basic(client_id, secret) if secret else None)
    assert answer.status == 200, answer.text
    return answer.json()


def call(base: str, method: str, path: str, *, token: str | None = None, form: dict[str, str] | None = None,
         body: Any = None, headers: dict[str, str] | None = None) -> Response:
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode("utf-8")
        sent["Content-Type"] = "application/json"
    return Agent(base).request(method, path, form=form, headers=sent, body=data)


def refresh(base: str, client_id: str, secret: str | None, refresh_token: str) -> Response:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if secret is None:
        form["client_id"] = client_id
    return Agent(base).token(form, authorization=basic(client_id, secret) if secret else None)


def introspect(base: str, client_id: str, secret: str, token: str) -> dict[str, Any]:
    answer = Agent(base).request("POST", "/api/oauth/introspect", form={"token": token},
                                 headers={"Authorization": basic(client_id, secret)})
    assert answer.status == 200, answer.text
    return answer.json()


def events(store: RecordingStore, name: EventName | str) -> list[dict[str, Any]]:
    return [e for e in store.events() if e["name"] == str(name)]


__all__ = ["GOV_SCOPES", "PASSWORD", "READ", "REDIRECT", "WRITE", "add_app", "add_user", "call", "events",
           "introspect", "refresh", "sign_in", "stack"]
