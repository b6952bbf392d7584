"""A plain OAuth 2.0 upstream (no OpenID Connect) for Latchkey's third-party login tests, in-process.

:class:`OAuth2Provider` serves, on 127.0.0.1 in a thread:

- ``GET /authorize``: checks ``client_id``, ``redirect_uri`` and ``response_type=code``, then answers at
  once (no login page) with ``302 <redirect_uri>?code=…&state=…`` as the user :attr:`OAuth2Provider.login`
  (or ``?login=<name>`` in the query), or with ``error=access_denied`` when :attr:`OAuth2Provider.decision`
  is ``"deny"`` (or ``?decision=deny``). A ``code_challenge`` (S256 or plain) is remembered and checked.
- ``POST /token``: ``grant_type=authorization_code`` with the client authenticated by HTTP Basic
  (``client_secret_basic``; ``client_secret_post`` also accepted); a code works once; answers
  ``{"access_token", "token_type": "Bearer", "expires_in", "scope"}``.
- ``GET /userinfo``: with the bearer token, the user as nested JSON, GitHub style:
  ``{"id": 12345, "profile": {"login": "octo", "email": "…", "name": "…"}}`` — so a claim mapping with
  dots (``profile.email``) and a numeric subject are exercised.
- :attr:`OAuth2Provider.down`: while true every endpoint answers ``503``; :meth:`OAuth2Provider.stop`
  closes the port altogether.

Every request is recorded in :attr:`OAuth2Provider.requests` (method, path, query/form, headers).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import urllib.parse
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

USERS: dict[str, dict[str, Any]] = {
    "octo": {"id": 12345, "profile": {"login": "octo", "email": "octo@plain.test", "name": "Octo Cat"}},
    "hubot": {"id": 67890, "profile": {"login": "hubot", "email": "hubot@plain.test", "name": "Hubot"}},
}
CODE_TTL = 60


def user_for(login: str) -> dict[str, Any]:
    """A fixed user, or one derived from any other login (a stable numeric id)."""
    if login in USERS:
        return USERS[login]
    return {"id": 100000 + zlib.crc32(login.encode()) % 900000,
            "profile": {"login": login, "email": f"{login}@plain.test", "name": f"Plain {login}"}}


@dataclass
class Recorded:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    login: str
    scope: str
    challenge: str | None
    method: str
    expires: float


@dataclass
class OAuth2Provider:
    client_id: str = "latchkey"
    client_secret: str = "latchkey-plain-secret"
    redirect_uris: tuple[str, ...] = ()  # empty: any http(s) redirect URI is accepted
    login: str = "octo"
    decision: str = "allow"
    down: bool = False
    port: int = 0
    requests: list[Recorded] = field(default_factory=list)
    _codes: dict[str, _Grant] = field(default_factory=dict)
    _tokens: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    # --- lifecycle --------------------------------------------------------------------------------------
    def start(self) -> OAuth2Provider:
        provider = self

        class Handler(_Handler):
            upstream = provider

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="oauth2-upstream", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> OAuth2Provider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- addresses ---------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def authorization_endpoint(self) -> str:
        return f"{self.url}/authorize"

    @property
    def token_endpoint(self) -> str:
        return f"{self.url}/token"

    @property
    def userinfo_endpoint(self) -> str:
        return f"{self.url}/userinfo"

    def calls(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == path]

    # --- the endpoints -----------------------------------------------------------------------------------
    def authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str], dict[str, Any] | str]:
        redirect_uri = query.get("redirect_uri", "")
        if query.get("client_id") != self.client_id:
            return 400, {}, "unknown client_id"
        if not redirect_uri.startswith(("http://", "https://")) or (
                self.redirect_uris and redirect_uri not in self.redirect_uris):
            return 400, {}, "redirect_uri not registered"
        answer: dict[str, str] = {}
        if query.get("response_type") != "code":
            answer["error"] = "unsupported_response_type"
        elif query.get("decision", self.decision) == "deny":
            answer.update(error="access_denied", error_description="The user denied the request")
        else:
            code = secrets.token_urlsafe(24)
            challenge = query.get("code_challenge")
            method = query.get("code_challenge_method", "plain")
            with self._lock:
                self._codes[code] = _Grant(self.client_id, redirect_uri, query.get("login", self.login),
                                           query.get("scope", ""), challenge, method, time.monotonic() + CODE_TTL)
            answer["code"] = code
        if "state" in query:
            answer["state"] = query["state"]
        separator = "&" if urllib.parse.urlsplit(redirect_uri).query else "?"
        return 302, {"Location": redirect_uri + separator + urllib.parse.urlencode(answer)}, ""

    def token(self, form: dict[str, str], headers: dict[str, str]) -> tuple[int, dict[str, str], dict[str, Any]]:
        client_id, secret = form.get("client_id"), form.get("client_secret")
        authorization = headers.get("authorization", "")
        if authorization.lower().startswith("basic "):
            try:
                raw = base64.b64decode(authorization[6:], validate=True).decode()
            except ValueError:
                raw = ""
            user, _, password = raw.partition(":")
            client_id, secret = urllib.parse.unquote(user), urllib.parse.unquote(password)
        if client_id != self.client_id or not secrets.compare_digest(secret or "", self.client_secret):
            return 401, {"WWW-Authenticate": 'Basic realm="upstream"'}, {"error": "invalid_client"}
        if form.get("grant_type") != "authorization_code":
            return 400, {}, {"error": "unsupported_grant_type"}
        with self._lock:
            grant = self._codes.pop(form.get("code", ""), None)  # single use
        if grant is None or grant.expires < time.monotonic() or grant.client_id != client_id:
            return 400, {}, {"error": "invalid_grant", "error_description": "unknown, used or expired code"}
        if form.get("redirect_uri") != grant.redirect_uri:
            return 400, {}, {"error": "invalid_grant", "error_description": "redirect_uri mismatch"}
        if grant.challenge is not None:
            verifier = form.get("code_verifier", "")
            if grant.method == "S256":
                verifier = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if not secrets.compare_digest(verifier, grant.challenge):
                return 400, {}, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = grant.login
        return 200, {}, {"access_token": token, "token_type": "Bearer", "expires_in": 3600, "scope": grant.scope}

    def userinfo(self, headers: dict[str, str]) -> tuple[int, dict[str, str], dict[str, Any]]:
        authorization = headers.get("authorization", "")
        login = self._tokens.get(authorization[7:]) if authorization.lower().startswith("bearer ") else None
        if login is None:
            return 401, {"WWW-Authenticate": 'Bearer error="invalid_token"'}, {"message": "Bad credentials"}
        return 200, {}, user_for(login)


class _Handler(BaseHTTPRequestHandler):
    upstream: OAuth2Provider
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def _answer(self, status: int, headers: dict[str, str], body: dict[str, Any] | str) -> None:
        data = (json.dumps(body) if isinstance(body, dict) else body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if isinstance(body, dict) else "text/plain")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        parts = urllib.parse.urlsplit(self.path)
        params = dict(urllib.parse.parse_qsl(parts.query))
        headers = {k.lower(): v for k, v in self.headers.items()}
        if method == "POST":
            length = int(self.headers.get("Content-Length") or 0)
            params.update(urllib.parse.parse_qsl(self.rfile.read(length).decode("utf-8", "replace")))
        upstream = self.upstream
        upstream.requests.append(Recorded(method, parts.path, params, headers))
        if upstream.down:
            self._answer(503, {}, "upstream is down")
        elif (method, parts.path) == ("GET", "/authorize"):
            self._answer(*upstream.authorize(params))
        elif (method, parts.path) == ("POST", "/token"):
            self._answer(*upstream.token(params, headers))
        elif (method, parts.path) == ("GET", "/userinfo"):
            self._answer(*upstream.userinfo(headers))
        else:
            self._answer(404, {}, "not found")

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")
