"""Driving the hosted authorization flow like a browser, for tests at every level.

- :func:`flow_stack`: for a fixture to ``yield from``: Latchkey's services on the in-memory store (or a
  given store) with the issuer set to a local gateway (``devstack.gateway``) serving every route of
  ``template.yaml`` in-process.
- :class:`Agent`: a user agent over real HTTP with a cookie jar; it never follows redirects on its own
  (tests assert each hop), and :meth:`Agent.authorize` walks the whole flow.
- :func:`add_user` / :func:`add_app`: a user with a password, an app registered for the code flow.
- :func:`pkce_pair`: an S256 verifier and challenge.
- :class:`FrozenClock`: ``latchkey.clock.now`` frozen, moved only by :meth:`FrozenClock.advance`.

Signing keys come from a pool shared by every test of the process (RSA key generation is most of a
flow test's set-up otherwise); each test still gets a fresh store and key set.
"""

from __future__ import annotations

import base64
import hashlib
import html.parser
import json
import secrets
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from tests.helpers import TEST_KEK, free_port

FORM = "application/x-www-form-urlencoded"
_KEY_POOL: dict[str, list[Any]] = {}


def _pool_signing_keys(monkeypatch) -> None:
    """Hand out previously generated keys, in order, to this test's key rotation."""
    from latchkey.crypto import keys as keylib

    generate, calls = keylib.generate, {}

    def pooled(alg: str):
        index = calls[alg] = calls.get(alg, -1) + 1
        pool = _KEY_POOL.setdefault(alg, [])
        while len(pool) <= index:
            pool.append(generate(alg))
        return pool[index]

    monkeypatch.setattr(keylib, "generate", pooled)


class FrozenClock:
    """``latchkey.clock.now`` frozen at ``start`` (the real time by default), moved only by :meth:`advance`."""

    def __init__(self, monkeypatch, start: int | None = None) -> None:
        import time

        from latchkey import clock

        self.value = int(time.time()) if start is None else start
        monkeypatch.setattr(clock, "now", lambda: self.value)

    def advance(self, seconds: int) -> int:
        self.value += seconds
        return self.value


def flow_stack(monkeypatch, *, store=None, password_cost: int = 10):
    """Yield the running gateway's base URL (which is also the issuer)."""
    from devstack.gateway import Gateway
    from latchkey import services, signing

    gateway = Gateway(port=free_port())
    for name, value in {"STORE": "memory", "LOCAL_KEK": TEST_KEK, "ISSUER": gateway.url,
                        "PASSWORD_HASH_COST": str(password_cost), "METRICS_DISABLED": "true"}.items():
        monkeypatch.setenv(name, value)
    for name in ("TABLE_NAME", "DYNAMODB_ENDPOINT", "KMS_KEY_ID"):
        monkeypatch.delenv(name, raising=False)
    services.reset()
    if store is not None:
        services.override(item_store=store)
    _pool_signing_keys(monkeypatch)
    signing.rotate(services.key_store(), services.envelope(), services.settings().signing_algs,
                   services.rotation_policy())
    gateway.start()
    try:
        yield gateway.url
    finally:
        gateway.stop()
        services.reset()


def add_user(username: str = "alice", password: str = "correct horse battery", **profile: Any):
    """Create an active user (through the user store, with a cheap test hash cost)."""
    import uuid

    from latchkey import clock, services
    from latchkey.crypto.passwords import hash_password
    from latchkey.users import User

    now = clock.now()
    user = User(user_id=uuid.uuid4().hex, username=username,
                password_hash=hash_password(password, log2_n=services.settings().password_hash_cost),
                created_at=now, updated_at=now, **profile)
    services.user_store().create(user)
    return user


def add_app(*, public: bool = False, redirect_uris: tuple[str, ...] = ("https://app.example/cb",),
            scope: str = "", grant_types: tuple[str, ...] = ("authorization_code", "refresh_token"),
            **metadata: Any) -> tuple[str, str | None]:
    """Register an app for the code flow; (client_id, secret or None)."""
    from latchkey import apps

    data = {"name": metadata.pop("name", "Example App"), "redirect_uris": list(redirect_uris),
            "grant_types": list(grant_types), "response_types": ["code"], "scope": scope,
            "token_endpoint_auth_method": "none" if public else "client_secret_basic", **metadata}
    credentials = apps.create(data)
    return credentials.client_id, credentials.key


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def basic(client_id: str, secret: str) -> str:
    raw = f"{urllib.parse.quote(client_id, safe='')}:{urllib.parse.quote(secret, safe='')}"
    return "Basic " + base64.b64encode(raw.encode()).decode()


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    set_cookies: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def location(self) -> str:
        return self.headers["location"]

    def query(self) -> dict[str, str]:
        """The query of the redirect target."""
        return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.location).query))

    def form(self) -> dict[str, str]:
        """The named inputs of the page's first form (hidden fields included)."""
        parser = _FormParser()
        parser.feed(self.text)
        return parser.fields


class _FormParser(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}
        self._forms = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form":
            self._forms += 1
        elif tag == "input" and self._forms == 1 and values.get("name") and values.get("type") != "submit":
            self.fields[values["name"] or ""] = values.get("value") or ""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Agent:
    """A browser-like HTTP client: cookies kept per name, redirects returned, not followed."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.cookies: dict[str, str] = {}
        self._opener = urllib.request.build_opener(_NoRedirect)

    def request(self, method: str, url: str, *, form: dict[str, str] | None = None,
                headers: dict[str, str] | None = None, body: bytes | None = None) -> Response:
        url = url if url.startswith("http") else self.base + url
        sent = dict(headers or {})
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            sent.setdefault("Content-Type", FORM)
        if self.cookies and url.startswith(self.base):
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        request = urllib.request.Request(url, data=body, headers=sent, method=method)
        try:
            with self._opener.open(request, timeout=30) as answer:
                status, raw_headers, data = answer.status, answer.headers, answer.read()
        except urllib.error.HTTPError as error:
            status, raw_headers, data = error.code, error.headers, error.read()
        set_cookies = raw_headers.get_all("Set-Cookie") or []
        for cookie in set_cookies:
            name, _, rest = cookie.partition("=")
            value = rest.split(";", 1)[0]
            if "max-age=0" in cookie.lower() or not value:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return Response(status, {k.lower(): v for k, v in raw_headers.items()}, data, set_cookies)

    def get(self, url: str, **kwargs: Any) -> Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, form: dict[str, str], **kwargs: Any) -> Response:
        return self.request("POST", url, form=form, **kwargs)

    def authorize_url(self, client_id: str, **params: str) -> str:
        query = {"client_id": client_id, "response_type": "code", **params}
        return f"{self.base}/api/oauth/authorize?{urllib.parse.urlencode(query)}"

    def login(self, page: Response, username: str, password: str) -> Response:
        """Submit the login form on ``page`` (a login page response)."""
        form = page.form()
        form.update(username=username, password=password)
        return self.post("/api/oauth/login", form)

    def consent(self, page: Response, decision: str = "allow") -> Response:
        form = page.form()
        form["decision"] = decision
        return self.post("/api/oauth/consent", form)

    def authorize(self, client_id: str, username: str, password: str, **params: str) -> dict[str, str]:
        """The whole flow: authorize → login (if asked) → consent (if asked) → the app's redirect query."""
        answer = self.get(self.authorize_url(client_id, **params))
        for _ in range(4):
            assert answer.status == 302, (answer.status, answer.text[:500])
            target = answer.location
            if target.startswith(f"{self.base}/api/oauth/login"):
                answer = self.login(self.get(target), username, password)
            elif target.startswith(f"{self.base}/api/oauth/consent"):
                answer = self.consent(self.get(target))
            else:
                return answer.query()
        raise AssertionError("the flow did not end at the app")

    def token(self, form: dict[str, str], *, authorization: str | None = None) -> Response:
        headers = {"Authorization": authorization} if authorization else {}
        return self.request("POST", "/api/oauth/token", form=form, headers=headers)
