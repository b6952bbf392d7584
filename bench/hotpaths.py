"""The other hot paths: CPU per call and DynamoDB round trips per call, against a written budget.

Each path's real handler (``functions/<dir>/app.py``) is invoked in-process with API Gateway HTTP API
(payload v2) events, warm, with ``STORE=dynamodb`` against a fresh table in DynamoDB Local; the
client_credentials path also runs on the in-memory store. Round trips are counted from botocore's
``before-call.dynamodb`` event on the layer's one DynamoDB client (one per API call, whatever the
retries; ``before-send`` counts HTTP attempts, which differ only on a retry). CPU is
``time.process_time()`` around each handler call; everything a call needs (its event, a fresh
authorization code) is made outside the measured span.

Used by ``python -m bench``; ``python -m bench.hotpaths`` prints a short run's report section.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import secrets
import statistics
import sys
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from bench.tokens import ENV as TOKEN_ENV
from bench.tokens import ROOT, Context, basic, load_handler, percentiles

TABLE = "latchkey-bench"
REDIRECT_URI = "http://127.0.0.1/callback"
USER_SCOPES = ("openid", "profile", "email", "offline_access")
ENV = {**TOKEN_ENV, "TABLE_NAME": TABLE, "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "local",
       "AWS_SECRET_ACCESS_KEY": "local", "PASSWORD_HASH_COST": "10"}
ENV_REMOVED = ("KMS_KEY_ID", "DYNAMODB_ENDPOINT", "AWS_PROFILE", "AWS_SESSION_TOKEN")

# Round trips to DynamoDB per warm call that each path may cost: (budget, why that many).
BUDGETS: dict[str, tuple[int, str]] = {
    "client_credentials": (2, "read the client row (cached for CLIENT_CACHE_TTL: then no read); write the "
                              "oauthTokenGenerated outbox row with the check that the client is unchanged "
                              "(signing keys and the secret-hash key are cached per instance)"),
    "authorization_code": (4, "read the code, the client, the user/app/connection (one batch), then one "
                              "transaction consuming the code with the refresh row, access_time and event"),
    "refresh_token": (2, "one read of what the rotation needs, one transaction rotating the token with the "
                         "family check, access_time and event"),
    "introspection_jwt": (1, "the signature is checked locally with cached keys; the caller's client, the "
                             "jti denylist and the token's grant rows fit one batched read"),
    "introspection_user_jwt": (1, "as introspection_jwt, for a user's token (its grant rows in the same batch)"),
    "userinfo": (2, "the signature is checked locally; the denylist row and the user/app/connection rows"),
    "jwks": (0, "the published keys come from the instance's key ring cache; the table is read only when "
                "KEY_CACHE_TTL expires"),
    "discovery": (0, "the metadata is built from settings alone; no state"),
}


# --- events ---------------------------------------------------------------------------------------------
def http_event(method: str, path: str, *, headers: dict[str, str] | None = None, form: dict[str, str] | None = None,
               query: dict[str, str] | None = None, source_ip: str = "203.0.113.9") -> dict[str, Any]:
    """An API Gateway HTTP API (v2) event for ``method path`` (form-encoded body when ``form`` is given)."""
    request_id = base64.b64encode(uuid.uuid4().bytes[:10]).decode("ascii")
    sent = {"host": "auth.example.com", "user-agent": "bench", "x-forwarded-for": source_ip,
            "x-forwarded-proto": "https"}
    if form is not None:
        sent["content-type"] = "application/x-www-form-urlencoded"
    sent.update({name.lower(): value for name, value in (headers or {}).items()})
    route_key = f"{method} {path}"
    event: dict[str, Any] = {
        "version": "2.0", "routeKey": route_key, "rawPath": path, "rawQueryString": urlencode(query or {}),
        "headers": sent,
        "requestContext": {"accountId": "123456789012", "apiId": "bench", "domainName": "auth.example.com",
                           "domainPrefix": "auth", "requestId": request_id, "routeKey": route_key,
                           "stage": "$default", "time": "01/Jan/2026:00:00:00 +0000", "timeEpoch": 0,
                           "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                                    "sourceIp": source_ip, "userAgent": "bench"}},
        "isBase64Encoded": False,
    }
    if query:
        event["queryStringParameters"] = dict(query)
    if form is not None:
        event["body"] = urlencode(form)
    return event


# --- round trips ----------------------------------------------------------------------------------------
LAYER = str(ROOT / "layers" / "latchkey" / "latchkey") + os.sep
STORE_PACKAGE = LAYER + "store" + os.sep


def call_site(depth: int = 2) -> str:
    """The innermost ``depth`` layer frames (outside ``latchkey/store``) of the current stack, innermost
    first: ``clients.get < rfc6749.client_auth.authenticate``."""
    found: list[str] = []
    frame = sys._getframe(1)
    while frame is not None and len(found) < depth:
        name = frame.f_code.co_filename
        if name.startswith(LAYER) and not name.startswith(STORE_PACKAGE):
            module = name[len(LAYER):].removesuffix(".py").replace(os.sep, ".")
            found.append(f"{module}.{frame.f_code.co_name}")
        frame = frame.f_back
    return " < ".join(found) or "?"


@dataclass
class RoundTrips:
    """Counts DynamoDB API calls (by operation) and HTTP attempts on one botocore client; while
    ``attributing``, also where in the layer each call comes from (off while CPU is measured)."""

    operations: Counter[str] = field(default_factory=Counter)
    attempts: int = 0
    attributing: bool = False
    sites: Counter[tuple[str, str]] = field(default_factory=Counter)

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-call.dynamodb", self._on_call)
        client.meta.events.register("before-send.dynamodb", self._on_send)

    def _on_call(self, model: Any = None, **_: Any) -> None:
        operation = getattr(model, "name", "?")
        self.operations[operation] += 1
        if self.attributing:
            self.sites[(operation, call_site())] += 1

    def _on_send(self, **_: Any) -> None:
        self.attempts += 1

    def snapshot(self) -> tuple[Counter[str], int]:
        return Counter(self.operations), self.attempts


# --- measuring one path ---------------------------------------------------------------------------------
@dataclass
class HotPath:
    name: str
    label: str
    handler: Any
    prepare: Callable[[], dict[str, Any]]  # the next call's event (outside the measured span)
    check: Callable[[dict[str, Any]], None] = lambda answer: None  # after the span: status, and keep state


def expect(status: int) -> Callable[[dict[str, Any]], None]:
    def check(answer: dict[str, Any]) -> None:
        if answer.get("statusCode") != status:
            raise RuntimeError(f"expected {status}, got {answer.get('statusCode')}: {str(answer.get('body'))[:300]}")
    return check


def measure(path: HotPath, calls: int, warmup: int, counter: RoundTrips | None) -> dict[str, Any]:
    context = Context()
    for index in range(warmup):
        request = path.prepare()
        if counter is not None and index == warmup - 1:  # the last warm-up call: where each round trip comes from
            counter.sites.clear()
            counter.attributing = True
        try:
            answer = path.handler(request, context)
        finally:
            if counter is not None:
                counter.attributing = False
        path.check(answer)
    sites = dict(counter.sites) if counter is not None else {}
    cpu, wall, per_call = [], [], []
    operations: Counter[str] = Counter()
    attempts = 0
    for _ in range(calls):
        request = path.prepare()  # may itself touch the table (a fresh code): not counted
        before_ops, before_attempts = counter.snapshot() if counter else (Counter(), 0)
        start_wall, start = time.perf_counter(), time.process_time()
        answer = path.handler(request, context)
        cpu.append(time.process_time() - start)
        wall.append(time.perf_counter() - start_wall)
        if counter is not None:
            after_ops, after_attempts = counter.snapshot()
            operations += after_ops - before_ops
            attempts += after_attempts - before_attempts
            per_call.append(sum((after_ops - before_ops).values()))
        path.check(answer)
    result: dict[str, Any] = {"path": path.name, "label": path.label, **percentiles(cpu),
                              "wall_p50_ms": statistics.median(wall) * 1e3}
    if counter is not None:
        result.update({
            "round_trips_per_call": sum(operations.values()) / calls,
            "round_trips_min": min(per_call), "round_trips_max": max(per_call),
            "http_attempts_per_call": attempts / calls,
            "operations_per_call": {op: count / calls for op, count in sorted(operations.items())},
            "call_sites_last_warmup_call": [{"operation": op, "site": site, "count": count}
                                            for (op, site), count in sites.items()],
        })
    return result


# --- the scenario ---------------------------------------------------------------------------------------
def _apply_env(values: dict[str, str], remove: tuple[str, ...]) -> dict[str, str | None]:
    saved = {name: os.environ.get(name) for name in [*values, *remove]}
    os.environ.update(values)
    for name in remove:
        os.environ.pop(name, None)
    return saved


def _restore_env(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _rotate_keys() -> None:
    from latchkey import services, signing

    signing.rotate(services.key_store(), services.envelope(), services.settings().signing_algs,
                   services.rotation_policy())


def _client_credentials_path(handler: Any, name: str, label: str) -> HotPath:
    from latchkey import apps

    credentials = apps.create({"name": f"bench {name}", "grant_types": ["client_credentials"], "scope": "read"})
    authorization = basic(credentials.client_id, credentials.key)
    form = {"grant_type": "client_credentials", "scope": "read"}
    return HotPath(name, label, handler, lambda: http_event("POST", "/api/oauth/token",
                                                         headers={"authorization": authorization}, form=form),
                expect(200))


def _memory_client_credentials(handler: Any, calls: int, warmup: int) -> dict[str, Any]:
    from latchkey import services

    os.environ["STORE"] = "memory"
    os.environ.pop("DYNAMODB_ENDPOINT", None)
    services.reset()
    _rotate_keys()
    path = _client_credentials_path(handler, "client_credentials", "client_credentials (in-memory store)")
    result = measure(path, calls, warmup, None)
    services.reset()
    return result


def _dynamodb_paths(handlers: dict[str, Any], endpoint: str) -> tuple[list[HotPath], RoundTrips]:
    """Fill a fresh table (keys, clients, a user and their consent) and build every measured path."""
    from latchkey import apps, clock, interaction, services
    from latchkey.crypto.passwords import hash_password
    from latchkey.users import User

    os.environ.update({"STORE": "dynamodb", "DYNAMODB_ENDPOINT": endpoint})
    services.reset()
    counter = RoundTrips()
    counter.attach(services.dynamodb())
    _rotate_keys()

    token_handler = handlers["token"]
    paths = [_client_credentials_path(token_handler, "client_credentials",
                                      "client_credentials (DynamoDB Local)")]

    # a resource server that introspects (client_secret_basic), and a service whose token it introspects
    caller = apps.create({"name": "bench resource server", "grant_types": ["client_credentials"], "scope": "read"})
    caller_auth = basic(caller.client_id, caller.key)
    service = apps.create({"name": "bench service", "grant_types": ["client_credentials"], "scope": "read"})
    answer = token_handler(http_event("POST", "/api/oauth/token", headers={"authorization": basic(
        service.client_id, service.key)}, form={"grant_type": "client_credentials", "scope": "read"}), Context())
    expect(200)(answer)
    service_token = json.loads(answer["body"])["access_token"]

    # a user who consented to a public PKCE app (the code flow's usual client)
    now = clock.now()
    user = User(user_id=uuid.uuid4().hex, username=f"bench-{uuid.uuid4().hex[:8]}",
                password_hash=hash_password("bench-password", log2_n=10), email="bench@example.com",
                email_verified=True, name="Bench Example", given_name="Bench", family_name="Example",
                created_at=now, updated_at=now)
    services.user_store().create(user)
    app = apps.create({"name": "bench app", "redirect_uris": [REDIRECT_URI], "response_types": ["code"],
                       "grant_types": ["authorization_code", "refresh_token"], "token_endpoint_auth_method": "none"})
    client = services.client_store().get(app.client_id)
    assert client is not None

    def new_code() -> tuple[str, str]:
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        code = interaction.grant_code(client=client, user=user, scopes=USER_SCOPES, redirect_uri=REDIRECT_URI,
                                      redirect_uri_sent=True, nonce=secrets.token_urlsafe(8),
                                      code_challenge=challenge, auth_time=clock.now(), sid="bench-session")
        return code, verifier

    def code_event() -> dict[str, Any]:
        code, verifier = new_code()
        return http_event("POST", "/api/oauth/token", form={
            "grant_type": "authorization_code", "client_id": app.client_id, "code": code,
            "redirect_uri": REDIRECT_URI, "code_verifier": verifier})

    first = token_handler(code_event(), Context())
    expect(200)(first)
    tokens = json.loads(first["body"])
    state = {"refresh_token": tokens["refresh_token"]}
    user_token = tokens["access_token"]
    paths.append(HotPath("authorization_code", "authorization_code exchange (public client, PKCE)", token_handler,
                      code_event, expect(200)))

    def keep_refresh(answer: dict[str, Any]) -> None:
        expect(200)(answer)
        state["refresh_token"] = json.loads(answer["body"])["refresh_token"]

    paths.append(HotPath("refresh_token", "refresh rotation (public client)", token_handler,
                      lambda: http_event("POST", "/api/oauth/token", form={
                          "grant_type": "refresh_token", "client_id": app.client_id,
                          "refresh_token": state["refresh_token"]}), keep_refresh))

    def active(answer: dict[str, Any]) -> None:
        expect(200)(answer)
        if json.loads(answer["body"]).get("active") is not True:
            raise RuntimeError(f"introspection answered {answer['body']}")

    for name, label, token in (("introspection_jwt", "introspection of a client's JWT (client_secret_basic)",
                                service_token),
                               ("introspection_user_jwt", "introspection of a user's JWT (client_secret_basic)",
                                user_token)):
        paths.append(HotPath(name, label, handlers["introspect"], lambda token=token: http_event(
            "POST", "/api/oauth/introspect", headers={"authorization": caller_auth}, form={"token": token}),
            active))
    paths.append(HotPath("userinfo", "userinfo (GET, user's bearer token)", handlers["userinfo"],
                      lambda: http_event("GET", "/api/oauth/userinfo",
                                         headers={"authorization": f"Bearer {user_token}"}), expect(200)))
    paths.append(HotPath("jwks", "JWKS (GET)", handlers["jwks"], lambda: http_event("GET", "/api/oauth/jwks"),
                      expect(200)))
    paths.append(HotPath("discovery", "discovery (GET /.well-known/openid-configuration)",
                      handlers["openid_configuration"],
                      lambda: http_event("GET", "/.well-known/openid-configuration"), expect(200)))
    return paths, counter


def run(*, short: bool) -> dict[str, Any]:
    """Measure every path; JSON-serialisable, with a ``targets`` list of ``{target, pass, figure}``."""
    from devstack.dynamodb_local import DynamoDBLocal, create_table
    from latchkey import services

    calls, warmup = (20, 5) if short else (300, 30)
    saved = _apply_env(ENV, ENV_REMOVED)
    # The handlers' metrics (EMF lines on stdout, even with metrics disabled in some Powertools versions)
    # and warnings about empty metric sets are not report material.
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            services.reset()
            handlers = {name: load_handler(name) for name in
                        ("token", "introspect", "userinfo", "jwks", "openid_configuration")}
            memory = _memory_client_credentials(handlers["token"], calls, warmup)
            with DynamoDBLocal() as local:
                create_table(local.client(), TABLE)
                paths, counter = _dynamodb_paths(handlers, local.endpoint)
                results = [measure(path, calls, warmup, counter) for path in paths]
    finally:
        services.reset()
        _restore_env(saved)

    targets = []
    for result in results:
        budget, reason = BUDGETS[result["path"]]
        result["budget"], result["budget_reason"] = budget, reason
        result["pass"] = result["round_trips_per_call"] <= budget
        targets.append({"target": f"{result['path']}: DynamoDB round trips per warm call <= {budget}",
                        "pass": result["pass"], "figure": round(result["round_trips_per_call"], 3)})
    dynamo_cc = next(r for r in results if r["path"] == "client_credentials")
    return {"mode": "short" if short else "full", "calls_per_path": calls, "warmup_per_path": warmup,
            "store": "DynamoDB Local (fresh in-memory table) unless stated", "paths": results,
            "client_credentials_cpu": {"memory": memory, "dynamodb": {k: dynamo_cc[k] for k in (
                "n", "p50_ms", "p99_ms", "mean_ms", "wall_p50_ms")}},
            "targets": targets}


# --- the report -----------------------------------------------------------------------------------------
def _operations(ops: dict[str, float]) -> str:
    return ", ".join(f"{name} {count:g}" if count != int(count) else f"{name} {int(count)}"
                     for name, count in ops.items()) or "none"


def report_lines(data: dict[str, Any]) -> list[str]:
    """The ``## Hot paths`` section of ``bench/report.md``."""
    lines = ["## Hot paths", "",
             f"Each handler invoked in-process with API Gateway v2 events, warm ({data['warmup_per_path']} "
             f"warm-up calls, then {data['calls_per_path']} measured), against DynamoDB Local "
             f"({data['mode']} run).", "",
             "| path | CPU p50 (ms) | p99 (ms) | mean (ms) | round trips/call (budget) | operations per call | |",
             "| --- | ---: | ---: | ---: | ---: | --- | --- |"]
    for r in data["paths"]:
        spread = "" if r["round_trips_min"] == r["round_trips_max"] else \
            f" [{r['round_trips_min']}–{r['round_trips_max']}]"
        lines.append(f"| {r['label']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['mean_ms']:.2f} | "
                     f"{r['round_trips_per_call']:.2f}{spread} (≤ {r['budget']}) | "
                     f"{_operations(r['operations_per_call'])} | {'PASS' if r['pass'] else 'FAIL'} |")
    lines += ["", "Where each round trip comes from (the last warm-up call of each path; operation, count, the "
              "innermost layer functions outside `latchkey/store`):", ""]
    for r in data["paths"]:
        sites = "; ".join(f"{s['operation']}{' x' + str(s['count']) if s['count'] > 1 else ''} ← `{s['site']}`"
                          for s in r["call_sites_last_warmup_call"]) or "none"
        lines.append(f"- {r['path']}: {sites}")
    cc = data["client_credentials_cpu"]
    lines += ["",
              "- CPU p50 / p99 / mean: `time.process_time()` of this process around one handler call (the event "
              "is built before); with DynamoDB it includes botocore's work, not DynamoDB Local's (another process).",
              "- Round trips/call: DynamoDB API calls per measured call (botocore `before-call` events on the "
              "layer's client), mean over the measured calls; [min–max] when calls differ (e.g. the key ring "
              "re-reading the key set when `KEY_CACHE_TTL` expires inside the window).",
              "- Budget: the most round trips the path may cost warm (reasons in `bench/hotpaths.py` BUDGETS); "
              "PASS/FAIL compares the measured mean with it.",
              "- Operations per call: the same calls by DynamoDB operation (GetItem, BatchGetItem, Query, "
              "PutItem, TransactWriteItems ...).", "",
              "client_credentials CPU per token, in-memory store vs DynamoDB Local:", "",
              "| store | CPU p50 (ms) | p99 (ms) | mean (ms) | wall p50 (ms) |", "| --- | ---: | ---: | ---: | ---: |"]
    for name, figures in (("in-memory", cc["memory"]), ("DynamoDB Local", cc["dynamodb"])):
        lines.append(f"| {name} | {figures['p50_ms']:.3f} | {figures['p99_ms']:.3f} | {figures['mean_ms']:.3f} | "
                     f"{figures['wall_p50_ms']:.3f} |")
    lines += ["", "- Wall p50 includes the wait for DynamoDB Local on this machine, not AWS's latency.", ""]
    return lines


if __name__ == "__main__":
    print("\n".join(report_lines(run(short=True))))
