"""Machinery of the fuzz suite (issue 9, "Hostile input").

- :data:`OPERATIONS`: every operation of ``openapi.yaml`` as schemathesis loads it, by label
  (``"GET /api/oauth/app"``); :func:`case_strategy` draws positive and negative cases of one.
- :class:`FuzzStack` / :func:`fuzz_stack`: the local gateway (``devstack.gateway``, every route of
  ``template.yaml`` in-process) on the in-memory store, via :func:`tests.flow_support.flow_stack`, with
  :class:`Seeds`: the devstack seeds, an admin token, a service client (HTTP Basic), a signed-in user with
  a user token, an id_token and a session cookie, a pending authorization request, an app, a user, a
  platform and a registered client for the routes' path parameters. :meth:`Seeds.apply` puts some or all
  of them into a generated case (so the authenticated routes are reached past the auth check), and
  :meth:`Seeds.after` re-creates what a successful request may have deleted or changed.
- :func:`hostile` draws extra hostile input for any case: unknown or repeated query parameters, odd
  headers, credentials and cookies, raw bodies of any bytes and content type (JSON nested past the
  recursion limit, bodies over 64 KiB), repeated form fields, one parameter set to a hostile value.
- :func:`check` is what every response must pass: no 5xx; no stack trace, file path or exception text
  anywhere in it; an error in the shape of the route's own protocol (:data:`PROTOCOLS`, the same mapping
  ``tests/unit/test_routes_in_step.py`` checks); and, through schemathesis, a documented status code,
  content type, headers and body schema.
- :data:`REQUESTS`: how many requests the suite made (``test_openapi_fuzz.py`` asserts the total).
"""

from __future__ import annotations

import base64
import collections
import io
import json
import logging
import re
import secrets
import time
import traceback
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import requests
import schemathesis
import yaml
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from devstack.gateway import compile_routes, select
from devstack.template import ROOT, routes
from latchkey.http.render import Protocol
from latchkey.http.request import MAX_BODY
from tests.flow_support import FORM, Agent, add_app, add_user, basic, flow_stack, pkce_pair
from tests.unit.test_routes_in_step import _protocol

OPENAPI = ROOT / "openapi.yaml"
SCHEMA = schemathesis.openapi.from_path(OPENAPI)
OPERATIONS = {op.label: op for op in (result.ok() for result in SCHEMA.get_all_operations())}
RAW_SPEC = yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))

# The protocol of each route, read from its handler's create_app(Protocol.X) as test_routes_in_step does.
PROTOCOLS: dict[tuple[str, str], Protocol] = {(r.method, r.path): _protocol(r) for r in routes()}
ROUTE_TABLE = compile_routes(routes())  # the gateway's route selection (functions load lazily, never here)

ERROR_MEMBERS = {Protocol.OAUTH: ("error", "error_description"), Protocol.GOVERNOR: ("message", "code"),
                 Protocol.TETRATE: ("error", "errorMessage"), Protocol.CONNECT: ("code", "message")}
SCHEMATHESIS_CHECKS = [status_code_conformance, content_type_conformance,
                       response_headers_conformance, response_schema_conformance]
# What a leaked stack trace, source path or exception looks like (ignored when the request itself sent it).
LEAKS = [re.compile(p) for p in (
    r"Traceback \(most recent call last\)", r'File "[^"\n]{1,300}", line \d+', r"site-packages",
    r"(?:/[\w.-]+)+/[\w-]+\.py\b", r"\b[A-Z]\w*(?:Error|Exception): ", r"object at 0x[0-9a-fA-F]{6,}",
    r"<class '[\w.]+'>", r"/work/main", r"layers/latchkey",
)]

PASSWORD = "correct horse battery"
REDIRECT = "https://app.example/cb"
PLATFORM_ID = "fuzz-sso"
GOV_SCOPES = "gov.user.oauth.connection:read gov.user.oauth.connection:write gov.user.oauth.authorize"
USER_SCOPE = f"openid profile email offline_access {GOV_SCOPES}"
SERVICE_SCOPE = "fuzz.read fuzz.write"
TOKEN_MAX_AGE = 120  # seconds before a seeded token is replaced (tokens live ACCESS_TOKEN_TTL)
PENDING_MAX_AGE = 300  # a pending authorization request lives AUTHORIZATION_REQUEST_TTL (600 s)


def _png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGBA", (3, 2), (200, 30, 30, 255)).save(out, format="PNG")
    return out.getvalue()


PNG = _png()


# --- counting ---------------------------------------------------------------------------------------------
@dataclass
class RequestCounter:
    by_operation: collections.Counter[str] = field(default_factory=collections.Counter)
    statuses: dict[str, collections.Counter[int]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.by_operation.values())

    def add(self, label: str, status: int | None) -> None:
        self.by_operation[label] += 1
        self.statuses.setdefault(label, collections.Counter())[status or 0] += 1


REQUESTS = RequestCounter()
COMPLETED: set[str] = set()  # operations whose fuzz test ran to the end in this process


# --- the server's error log ------------------------------------------------------------------------------
class ErrorLog(logging.Handler):
    """The latest ERROR records of the ``latchkey`` logger (a 500's stack goes there, never to the client)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: collections.deque[str] = collections.deque(maxlen=5)

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info))
        self.records.append(text)


# --- the stack and its seeds -------------------------------------------------------------------------------
def _sign_in(base: str, client_id: str, secret: str | None, username: str) -> tuple[dict[str, Any], Agent]:
    """The code flow with PKCE (like tests.unit.grant_support.sign_in), keeping the signed-in agent."""
    agent = Agent(base)
    verifier, challenge = pkce_pair()
    query = agent.authorize(client_id, username, PASSWORD, scope=USER_SCOPE, redirect_uri=REDIRECT, state="st",
                            nonce="n-fuzz", code_challenge=challenge, code_challenge_method="S256")
    assert "code" in query, query
    form = {"grant_type": "authorization_code", "code": query["code"], "redirect_uri": REDIRECT,
            "code_verifier": verifier}
    answer = agent.token(form, authorization=basic(client_id, secret) if secret else None)
    assert answer.status == 200, answer.text
    return answer.json(), agent


@dataclass
class Seeds:
    """Live values for the authenticated routes and the path parameters; refreshed when stale or used up."""

    base: str
    admin: tuple[str, str] = ("dev-admin", "dev-admin-secret")  # devstack.seed's admin client
    service: tuple[str, str] = ("", "")
    user_app: tuple[str, str] = ("", "")
    username: str = ""
    managed_app: str = ""
    target_user: str = ""
    registered: tuple[str, str] = ("", "")  # client_id, registration access token
    tokens: dict[str, Any] = field(default_factory=dict)
    agent: Agent | None = None  # the signed-in browser: its session and CSRF cookies
    pending: str = ""
    csrf: dict[str, str] = field(default_factory=dict)  # form purpose -> token for the pending request
    _admin_token: tuple[str, float] = ("", 0.0)
    _user_at: float = 0.0
    _pending_at: float = 0.0

    # the seeds ---------------------------------------------------------------------------------------------
    def create(self) -> Seeds:
        from devstack.seed import seed
        from latchkey import apps, services

        seed(services.settings())
        credentials = apps.create({"name": "Fuzz service", "grant_types": ["client_credentials"],
                                   "scope": SERVICE_SCOPE, "token_endpoint_auth_method": "client_secret_basic"})
        self.service = (credentials.client_id, credentials.key or "")
        client_id, secret = add_app(name="Fuzz user app", scope=GOV_SCOPES)
        self.user_app = (client_id, secret or "")
        self.username = f"fuzz-{secrets.token_hex(4)}"
        add_user(self.username, PASSWORD, email=f"{self.username}@example.com", name="Fuzz User")
        self.new_managed_app()
        self.new_target_user()
        self.put_platform()
        self.new_registration()
        self.sign_in()
        return self

    def admin_token(self) -> str:
        token, at = self._admin_token
        if not token or time.monotonic() - at > TOKEN_MAX_AGE:
            answer = Agent(self.base).token({"grant_type": "client_credentials"}, authorization=basic(*self.admin))
            assert answer.status == 200, answer.text
            token = answer.json()["access_token"]
            self._admin_token = (token, time.monotonic())
        return token

    def user_token(self) -> str:
        if time.monotonic() - self._user_at > TOKEN_MAX_AGE:
            self.sign_in()
        return self.tokens["access_token"]

    def pending_request(self) -> str:
        if time.monotonic() - self._pending_at > PENDING_MAX_AGE:
            self.new_pending()
        return self.pending

    def throwaway_token(self) -> str:
        """A fresh access token of the service client (revoking or introspecting it harms nothing)."""
        from latchkey import rfc9068, services

        return rfc9068.issue(services.key_ring(), issuer=self.base, alg="ES256", client_id=self.service[0],
                             subject=self.service[0], audience=self.base, scopes=SERVICE_SCOPE.split(),
                             ttl=300).token

    def sign_in(self) -> None:
        self.tokens, self.agent = _sign_in(self.base, *self.user_app, username=self.username)
        self._user_at = time.monotonic()
        self.new_pending()  # its CSRF tokens are bound to this browser's cookie

    def new_pending(self) -> None:
        """A sign-in waiting for consent (prompt=consent), started by the signed-in browser, with the CSRF
        tokens of its login and consent forms."""
        assert self.agent is not None
        _, challenge = pkce_pair()
        answer = self.agent.get(self.agent.authorize_url(
            self.user_app[0], redirect_uri=REDIRECT, scope="openid profile", state="s", prompt="consent",
            code_challenge=challenge, code_challenge_method="S256"))
        assert answer.status == 302, answer.text
        self.pending = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(answer.location).query))["request"]
        for purpose in ("login", "consent"):
            page = self.agent.get(f"/api/oauth/{purpose}?request={self.pending}")
            assert page.status == 200, page.text
            self.csrf[purpose] = page.form()["csrf_token"]
        self._pending_at = time.monotonic()

    def new_managed_app(self) -> None:
        from latchkey import apps

        self.managed_app = apps.create({"name": "Fuzz managed app", "redirect_uris": ["https://managed.example/cb"],
                                        "grant_types": ["authorization_code"], "response_types": ["code"],
                                        "token_endpoint_auth_method": "client_secret_basic"}).client_id
        boundary = "fuzzseed"
        form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n"
                f"Content-Type: image/png\r\n\r\n").encode() + PNG + f"\r\n--{boundary}--\r\n".encode()
        answer = Agent(self.base).request("PUT", f"/api/oauth/app/id/{self.managed_app}/image", body=form, headers={
            "Authorization": f"Bearer {self.admin_token()}",
            "Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert answer.status == 204, answer.text

    def new_target_user(self) -> None:
        self.target_user = add_user(f"fuzz-target-{secrets.token_hex(4)}", PASSWORD).user_id

    def put_platform(self) -> None:
        config = {"display_name": "Fuzz SSO", "type": "oauth2", "client_id": "latchkey", "client_secret": "s3cret",
                  "authorization_endpoint": "https://sso.fuzz.example/authorize",
                  "token_endpoint": "https://sso.fuzz.example/token",
                  "userinfo_endpoint": "https://sso.fuzz.example/userinfo", "scopes": ["profile"],
                  "claim_mapping": {"sub": "id"}}
        answer = self._admin_json("PUT", f"/api/oauth/platform/id/{PLATFORM_ID}", config)
        assert answer.status in (201, 204), answer.text

    def new_registration(self) -> None:
        body = {"client_name": "Fuzz registered", "redirect_uris": ["https://reg.example/cb"],
                "grant_types": ["authorization_code"], "token_endpoint_auth_method": "client_secret_basic"}
        answer = self._admin_json("POST", "/api/oauth/register", body)
        assert answer.status == 201, answer.text
        self.registered = answer.json()["client_id"], answer.json()["registration_access_token"]

    def _admin_json(self, method: str, path: str, body: Any):
        return Agent(self.base).request(method, path, body=json.dumps(body).encode(), headers={
            "Authorization": f"Bearer {self.admin_token()}", "Content-Type": "application/json"})

    def user_token_works(self) -> bool:
        answer = Agent(self.base).get("/api/oauth/connection",
                                      headers={"Authorization": f"Bearer {self.tokens['access_token']}"})
        return answer.status == 200

    # putting them into a case ------------------------------------------------------------------------------
    def auth_header(self, label: str) -> str | None:
        """The Authorization value that gets ``label`` past its auth check, if it has one."""
        method, path = label.split(" ", 1)
        operation = RAW_SPEC["paths"][path][method.lower()]
        schemes = {name for requirement in operation.get("security") or [] for name in requirement}
        if schemes & {"adminBearer", "initialAccessToken"}:
            return f"Bearer {self.admin_token()}"
        if "userBearer" in schemes:
            return f"Bearer {self.user_token()}"
        if "registrationAccessToken" in schemes:
            return f"Bearer {self.registered[1]}"
        declared = {p.get("name", "").lower() for p in operation.get("parameters", []) if p.get("in") == "header"}
        if "authorization" in declared:
            return f"Bearer {self.user_token()}" if path.startswith("/mgmt.") else basic(*self.service)
        return None

    def slots(self, label: str) -> list[str]:
        """What :meth:`apply` can seed in ``label``'s cases."""
        op = OPERATIONS[label]
        found = ["cookie"] if PROTOCOLS[(op.method.upper(), op.path)] is Protocol.PAGE else []
        if self.auth_header(label) is not None:
            found.append("auth")
        for param in op.iter_parameters():
            name, where = param.name, str(param.location.value)
            if where == "path" and name in PATH_SEEDS or where == "query" and name in QUERY_SEEDS:
                found.append(f"{where}:{name}")
        body = _body_properties(label)
        found += [f"body:{name}" for name in sorted(body & set(BODY_SEEDS))]
        return found

    def apply(self, case: Any, chosen: list[str]) -> None:
        label = case.operation.label
        self.pending_request()  # renewed first, if due: the CSRF tokens belong to it
        for slot in chosen:
            kind, _, name = slot.partition(":")
            if kind == "auth":
                case.headers = {**(case.headers or {}), "Authorization": self.auth_header(label)}
            elif kind == "cookie" and self.agent is not None:
                case.cookies = {**(case.cookies or {}), **self.agent.cookies}
            elif kind == "path":
                case.path_parameters = {**(case.path_parameters or {}), name: PATH_SEEDS[name](self, label)}
            elif kind == "query" and isinstance(case.query, dict | type(None)):
                case.query = {**(case.query or {}), name: QUERY_SEEDS[name](self, label)}
            elif kind == "body" and isinstance(case.body, dict):
                case.body[name] = BODY_SEEDS[name](self, label)

    def after(self, label: str, status: int) -> None:
        """Bring back what a successful ``label`` may have deleted, replaced or used up."""
        if status >= 400:
            return
        if label in ("DELETE /api/oauth/app/id/{clientid}",):
            self.new_managed_app()
        elif label == "DELETE /api/oauth/user/id/{userid}":
            self.new_target_user()
        elif label in ("PUT /api/oauth/platform/id/{platformId}", "DELETE /api/oauth/platform/id/{platformId}"):
            self.put_platform()  # a fuzzed config may name an upstream the platform routes would call
        elif label in ("PUT /api/oauth/register/{client_id}", "DELETE /api/oauth/register/{client_id}"):
            self.new_registration()
        elif label in ("DELETE /api/oauth/connection/id/{id}", "POST /api/oauth/auth/code",
                       "GET /api/oauth/logout", "POST /api/oauth/logout", "POST /api/oauth/consent"):
            if label.endswith("logout") or not self.user_token_works():
                self.sign_in()
        if label in ("POST /api/oauth/login", "POST /api/oauth/consent", "GET /api/oauth/consent",
                     "GET /api/oauth/platforms/{platformId}/authorize"):
            self.new_pending()


PATH_SEEDS = {
    "clientid": lambda s, label: s.managed_app,
    "userid": lambda s, label: s.target_user,
    "platformId": lambda s, label: PLATFORM_ID,
    "client_id": lambda s, label: s.registered[0],
    "id": lambda s, label: s.user_app[0],
}
QUERY_SEEDS = {
    "request": lambda s, label: s.pending_request(),
    "client_id": lambda s, label: s.user_app[0],
    "redirect_uri": lambda s, label: REDIRECT,
    "id_token_hint": lambda s, label: s.tokens["id_token"],
    "post_logout_redirect_uri": lambda s, label: "https://app.example/",
}
BODY_SEEDS = {
    "token": lambda s, label: s.throwaway_token(),
    "client_id": lambda s, label: s.user_app[0] if "auth/code" in label else s.service[0],
    "access_token": lambda s, label: s.user_token(),
    "image": lambda s, label: PNG,
    "request": lambda s, label: s.pending_request(),
    "csrf_token": lambda s, label: s.csrf["consent" if "consent" in label else "login"],
    "grant_type": lambda s, label: "client_credentials",
    "grantType": lambda s, label: "CLIENT_CREDENTIALS",
}


def _body_properties(label: str) -> set[str]:
    method, path = label.split(" ", 1)
    body = RAW_SPEC["paths"][path][method.lower()].get("requestBody") or {}
    names: set[str] = set()
    for media in body.get("content", {}).values():
        schema = media.get("schema") or {}
        while "$ref" in schema:
            schema = RAW_SPEC["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        names |= set(schema.get("properties", {}))
    return names


@dataclass
class FuzzStack:
    base: str
    seeds: Seeds
    session: requests.Session
    errors: ErrorLog


def fuzz_stack(monkeypatch):
    """For a fixture to ``yield from``: a :class:`FuzzStack` over :func:`tests.flow_support.flow_stack`."""
    # Lockouts stay on, but high enough that the fuzzer keeps reaching the code behind them.
    for name, value in {"USER_CODE_MAX_FAILURES": "1000000", "LOGIN_MAX_ADDRESS_FAILURES": "1000000",
                        "CLIENT_AUTH_MAX_FAILURES": "1000000", "CLIENT_AUTH_MAX_ADDRESS_FAILURES": "1000000",
                        "LOG_LEVEL": "ERROR"}.items():
        monkeypatch.setenv(name, value)
    log = logging.getLogger("latchkey")
    errors = ErrorLog()
    level = log.level
    log.setLevel(logging.ERROR)  # INFO lines for every refused request cost time; errors (with stacks) stay
    log.addHandler(errors)
    try:
        for base in flow_stack(monkeypatch):
            session = requests.Session()
            try:
                yield FuzzStack(base, Seeds(base).create(), session, errors)
            finally:
                session.close()
    finally:
        log.removeHandler(errors)
        log.setLevel(level)


# --- generation --------------------------------------------------------------------------------------------
_STRATEGIES: dict[str, Any] = {}


def case_strategy(label: str):
    """Positive and negative cases of one operation (schemathesis)."""
    if label not in _STRATEGIES:
        op = OPERATIONS[label]
        _STRATEGIES[label] = st.one_of(op.as_strategy(GenerationMode.POSITIVE),
                                       op.as_strategy(GenerationMode.NEGATIVE))
    return _STRATEGIES[label]


DEEP_JSON = b"[" * 5000 + b"]" * 5000  # past Python's recursion limit: json.loads raises RecursionError
_DEEP_B64 = base64.urlsafe_b64encode(DEEP_JSON).rstrip(b"=").decode()
DEEP_TOKENS = (f"{_DEEP_B64}.e30.c2ln", f"eyJhbGciOiJFUzI1NiJ9.{_DEEP_B64}.c2ln")  # nested JOSE header / payload
_VISIBLE = st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")
_HEADER_NAMES = ("Content-Type", "Cookie", "Origin", "Authorization", "Accept", "If-None-Match", "Host", "Referer",
                 "Connect-Protocol-Version", "Content-Encoding", "Connect-Content-Encoding", "Connect-Timeout-Ms",
                 "Traceparent", "X-Ab-TraceID", "X-Amzn-Trace-Id", "Accept-Language", "X-Forwarded-Proto")
_AUTH_VALUES = st.one_of(
    st.builds(lambda scheme, value: f"{scheme} {value}",
              st.sampled_from(["Basic", "Bearer", "basic", "BEARER", "Digest", "DPoP", ""]),
              st.one_of(st.text(_VISIBLE, max_size=80),
                        st.binary(max_size=60).map(lambda b: base64.b64encode(b).decode()),
                        st.text(_VISIBLE, max_size=40).map(lambda t: base64.b64encode(t.encode()).decode()))),
    st.sampled_from(["Basic", "Bearer", "Bearer ", "Basic Og==", "Basic OjpfOg==", "Bearer a b", "Basic ====",
                     "Bearer eyJhbGciOiJub25lIn0.e30.", "Basic JTpiYWQ=", *(f"Bearer {t}" for t in DEEP_TOKENS)]),
)
_COOKIE_VALUES = st.lists(st.tuples(
    st.sampled_from(["latchkey_session", "latchkey_csrf", "__Host-latchkey_session", "lk_device", "x"]) |
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=";=,"), min_size=1,
            max_size=12),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters=";"), max_size=60),
), max_size=4).map(lambda pairs: "; ".join(f"{k}={v}" for k, v in pairs))
_CONTENT_TYPES = st.sampled_from([
    FORM, "application/json", "multipart/form-data; boundary=fuzz", "multipart/form-data", "text/plain",
    "application/octet-stream", "application/x-www-form-urlencoded; charset=latin-1", "APPLICATION/JSON",
    "application/json; charset=utf-16", "application/connect+json", "image/png", "",
])


def _header_strategy(name: str):
    if name == "Authorization":
        return _AUTH_VALUES
    if name == "Cookie":
        return _COOKIE_VALUES
    if name == "Content-Type":
        return _CONTENT_TYPES
    if name == "Host":  # the client's cookie jar parses it: no brackets or spaces
        return st.from_regex(r"[A-Za-z0-9.:_-]{0,40}", fullmatch=True) | st.sampled_from(
            ["evil.example", "127.0.0.1:1", "auth.example.com:443", "localhost"])
    return st.text(_VISIBLE, max_size=120)


_EXTRA_HEADERS = st.lists(st.sampled_from(_HEADER_NAMES).flatmap(
    lambda name: st.tuples(st.just(name), _header_strategy(name).map(str.strip))), min_size=1, max_size=3).map(dict)
_BODY_BYTES = st.one_of(
    st.binary(max_size=600),
    st.text(max_size=300).map(lambda t: t.encode("utf-8")),
    st.lists(st.tuples(st.text(max_size=12), st.text(max_size=30)), max_size=6).map(
        lambda pairs: urllib.parse.urlencode(pairs).encode()),
    st.sampled_from([b"%", b"a=%ff", b"=", b"&&", b"a", b"a=1&a=2", b"grant_type", b"\xff\xfe", b"{", b"[]",
                     b'{"a":', b"null", b"1e999999", b'"\\ud800"', b'{"grantType": 3.5}', b"\x00",
                     b'{"__proto__": {}}', b"a=" + b"%" * 100, DEEP_JSON, b'{"a":' * 3000]),
    st.just(b"a" * (MAX_BODY + 1)),
)


@st.composite
def hostile(draw, label: str):
    """Extra hostile input for a case of ``label``: (kind, value) or None for the case as generated."""
    op = OPERATIONS[label]
    query_names = [p.name for p in op.iter_parameters() if str(p.location.value) == "query"]
    kind = draw(st.sampled_from(["none", "none", "none", "query", "headers", "body", "repeat", "field"]))
    if kind == "query":
        names = st.sampled_from(query_names + ["request", "client_id", "scope", "state"]) | st.text(max_size=10)
        values = st.text(max_size=80) | st.lists(st.text(max_size=20), min_size=2, max_size=3)
        return kind, draw(st.dictionaries(names, values, min_size=1, max_size=4))
    if kind == "headers":
        return kind, draw(_EXTRA_HEADERS)
    if kind == "body":
        return kind, (draw(_CONTENT_TYPES), draw(_BODY_BYTES))
    if kind == "repeat":
        return kind, draw(st.integers(min_value=0, max_value=50))
    if kind == "field":
        names = sorted(_body_properties(label)) + query_names
        if names:
            return kind, (draw(st.sampled_from(names)), draw(_FIELD_VALUES))
    return None


_FIELD_VALUES = st.one_of(
    st.sampled_from([*DEEP_TOKENS, "a.b.c", "e30.e30.", "..", "%00", "\x00", "null", "[]", "{}", "\u202e", "A" * 20000,
                     "https://evil.example/cb", "javascript:alert(1)", "<script>alert(1)</script>", "' OR '1'='1",
                     "../../etc/passwd", "\r\nSet-Cookie: x=1", "${jndi:ldap://x}", "\ud800".encode(
                         "utf-8", "surrogatepass").decode("utf-8", "replace")]),
    st.text(max_size=60),
)


def hostile_kwargs(case: Any, extra: tuple[str, Any] | None) -> dict[str, Any]:
    """``extra`` as keyword arguments for ``case.call`` (the case itself is left as it is)."""
    if extra is None:
        return {}
    kind, value = extra
    if kind == "query":
        return {"params": value}
    if kind == "headers":
        return {"headers": value}
    if kind == "body":
        content_type, data = value
        return {"data": data, "headers": {"Content-Type": content_type}}
    if kind == "field":  # one parameter set to a hostile value, in the body if it has such a member
        name, text = value
        if isinstance(case.body, dict) and case.media_type == FORM and name in _body_properties(
                case.operation.label):
            pairs = {**{str(k): v if isinstance(v, str) else json.dumps(v) for k, v in case.body.items()}, name: text}
            return {"data": urllib.parse.urlencode(pairs).encode(), "headers": {"Content-Type": FORM}}
        if isinstance(case.body, dict) and case.media_type == "application/json":
            return {"data": json.dumps({**case.body, name: text}, default=str).encode(),
                    "headers": {"Content-Type": "application/json"}}
        return {"params": {name: text}}
    # "repeat": a parameter sent twice, in the form body if there is one, else in the query
    if isinstance(case.body, dict) and case.media_type == FORM and case.body:
        pairs = [(str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in case.body.items()]
        pairs.append(pairs[value % len(pairs)])
        return {"data": urllib.parse.urlencode(pairs).encode(), "headers": {"Content-Type": FORM}}
    if isinstance(case.query, dict) and case.query:
        name = sorted(case.query)[value % len(case.query)]
        current = case.query[name]
        return {"params": {name: [current, current] if not isinstance(current, list) else current * 2}}
    return {}


# --- sending and checking ---------------------------------------------------------------------------------
def send(stack: FuzzStack, case: Any, kwargs: dict[str, Any]):
    stack.errors.records.clear()
    response = None
    try:
        response = case.call(base_url=stack.base, session=stack.session, timeout=30, **kwargs)
        return response
    finally:
        REQUESTS.add(case.operation.label, response.status_code if response is not None else None)
        stack.session.cookies.clear()


def _request_text(response: Any) -> str:
    request = response.request
    body = request.body or b""
    body_bytes = body.encode("utf-8", "replace") if isinstance(body, str) else bytes(body)
    parts = [request.method or "", request.url or "", *(f"{k}: {v}" for k, v in request.headers.items()),
             body_bytes.decode("latin-1")]
    text = "\n".join(parts)
    return text + "\n" + urllib.parse.unquote_plus(text) + "\n" + urllib.parse.unquote(text)


def describe(case: Any, response: Any, stack: FuzzStack, note: str = "") -> str:
    request = response.request
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode("utf-8", "replace")
    lines = [f"{note}".strip(), f"operation: {case.operation.label}",
             f"request: {request.method} {request.url}",
             *(f"  {k}: {v}" for k, v in request.headers.items()),
             f"  body: {body[:600]!r}{' ...' if len(body) > 600 else ''}",
             f"response: {response.status_code}",
             *(f"  {k}: {', '.join(v)}" for k, v in response.headers.items()),
             f"  body: {response.content[:1500]!r}"]
    if stack.errors.records:
        lines += ["server log:", *stack.errors.records]
    return "\n".join(line for line in lines if line)


def answered_by(response: Any) -> tuple[str, str] | None:
    """(method, template path) of the route the gateway selects for the request, None when none does."""
    request = response.request
    path = urllib.parse.urlsplit(request.path_url).path or "/"
    found = select(ROUTE_TABLE, request.method, path)
    return (found[0].method, found[0].path) if found else None


def check(stack: FuzzStack, case: Any, response: Any) -> None:
    """Every check of the suite; an AssertionError (or schemathesis' FailureGroup) names what failed."""
    status = response.status_code
    headers = {k.lower(): ", ".join(v) for k, v in response.headers.items()}
    body = response.content

    def fail(reason: str) -> None:
        raise AssertionError(describe(case, response, stack, reason))

    if status >= 500 and not connect_unimplemented(case, status, body):
        fail(f"a {status}: hostile input must be refused with a 4xx, never a server error")
    sent = _request_text(response)
    received = body.decode("latin-1") + "\n" + "\n".join(f"{k}: {v}" for k, v in headers.items())
    for pattern in LEAKS:
        for match in pattern.finditer(received):
            if match.group(0) not in sent:
                fail(f"the response leaks {match.group(0)!r} (a stack trace, path or exception text)")

    route = answered_by(response)
    if "x-request-id" not in headers:
        # Only API Gateway answers without X-Request-Id: 404 for a path no route takes (an empty or
        # dot-segment path parameter); a function always sets it, so anything else means a handler crashed.
        if not (route is None and status == 404 and body == b'{"message":"Not Found"}'):
            fail("an answer of the gateway itself, not of the function (the handler raised or returned nonsense)")
        return
    if route is None:
        fail("a function answered a request no route selects")
    protocol = PROTOCOLS[route]
    if status >= 400:
        check_error_shape(protocol, status, headers, body, fail)
    if route == (case.operation.method.upper(), case.operation.path):
        try:
            case.validate_response(response, checks=SCHEMATHESIS_CHECKS)
        except FailureGroup as failures:  # schemathesis' curl line omits the hostile extras: show the request
            fail("not as openapi.yaml documents it:\n" + "\n".join(
                f"- {type(f).__name__}: {f.title}: {f.message[:500]}" for f in failures.exceptions))


def connect_unimplemented(case: Any, status: int, body: bytes) -> bool:
    """The one 5xx allowed: the Connect protocol's ``unimplemented`` (HTTP 501, which openapi.yaml documents),
    what a Connect server must answer for a compression or method it does not support."""
    if status != 501 or not case.operation.path.startswith("/mgmt.v1alpha1."):
        return False
    try:
        return json.loads(body).get("code") == "unimplemented"
    except ValueError:
        return False


def check_error_shape(protocol: Protocol, status: int, headers: dict[str, str], body: bytes, fail) -> None:
    """An error in the route's protocol: RFC 6749 §5.2, governor, Tetrate, Connect or the HTML error page."""
    content_type = headers.get("content-type", "")
    if "no-store" not in headers.get("cache-control", ""):
        fail("an error response without Cache-Control: no-store")
    if protocol is Protocol.PAGE:
        if not content_type.startswith("text/html"):
            fail(f"a hosted page answered an error with {content_type!r}, not the HTML error page")
        if not body.lstrip().lower().startswith(b"<!doctype html>"):
            fail("a hosted page's error is not an HTML document")
        if "default-src 'none'" not in headers.get("content-security-policy", ""):
            fail("a hosted page's error without its Content-Security-Policy")
        return
    if content_type.split(";")[0].strip() != "application/json":
        fail(f"a {protocol} error answered with {content_type!r}, not JSON")
    try:
        document = json.loads(body)
    except ValueError:
        fail(f"a {protocol} error whose body is not JSON")
        return
    expected = set(ERROR_MEMBERS[protocol]) | {"request_id"}
    if not isinstance(document, dict) or set(document) != expected:
        fail(f"a {protocol} error must have exactly {sorted(expected)}")
    for name in ERROR_MEMBERS[protocol]:
        if not isinstance(document[name], str) or not document[name]:
            fail(f"{name} must be a non-empty string")
    if document["request_id"] != headers["x-request-id"]:
        fail("request_id differs from X-Request-Id")
    if protocol is Protocol.OAUTH and not re.fullmatch(r"[\x20-\x21\x23-\x5B\x5D-\x7E]+", document["error"]):
        fail("an RFC 6749 error code outside its character set")
