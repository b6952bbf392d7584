"""The local stack end to end: ``python -m devstack up`` in a subprocess (DynamoDB Local, the Kafka mock,
the relay and the gateway), driven over HTTP and Kafka; and ``--store memory`` in-process.

Every stack uses its own state directory under tmp_path, a unique table name and topic prefix, and a
free port, so a developer's running ``make dev`` (and its ``.dev/``) is never touched.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import consume, free_port, http

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


def get(url, headers=None, method="GET"):
    return http(method, url, headers=headers, timeout=10)


# --- a stack in a subprocess ---------------------------------------------------------------------------
@dataclass
class StackProcess:
    process: subprocess.Popen
    state_dir: Path
    port: int
    prefix: str
    table: str
    log: Path

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self):
        from devstack.stack import read_env_file

        return read_env_file(self.state_dir / "stack.env")

    def output(self):
        return self.log.read_text(errors="replace")

    def children(self):
        pids = set()
        for task in Path(f"/proc/{self.process.pid}/task").glob("*"):
            try:
                pids.update(int(p) for p in (task / "children").read_text().split())
            except OSError:
                pass
        return pids

    def run_cli(self, *args, timeout=60):
        return subprocess.run([sys.executable, "-m", "devstack", *args, "--state-dir", str(self.state_dir)],
                              cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)

    def stop(self, sig=signal.SIGTERM, group=False, timeout=30):
        if self.process.poll() is None:
            if group:
                os.killpg(self.process.pid, sig)
            else:
                self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
                raise
        return self.process.returncode


def start_stack(state_dir: Path, *args, prefix=None, table=None, timeout=90,
                env: dict[str, str] | None = None) -> StackProcess:
    """Start ``python -m devstack up`` on a free port; ``env`` adds settings (e.g. ``LOGIN_MAX_FAILURES``)."""
    port = free_port()
    prefix = prefix or f"e2e{uuid.uuid4().hex[:8]}"
    table = table or f"e2e-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, **(env or {}), "TABLE_NAME": table, "KAFKA_TOPIC_PREFIX": prefix, "PYTHONUNBUFFERED": "1"}
    env.pop("KAFKA_BOOTSTRAP", None)  # the stack's own mock cluster
    state_dir.mkdir(parents=True, exist_ok=True)
    log = state_dir.parent / f"{state_dir.name}-{port}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "devstack", "up", "--port", str(port), "--state-dir", str(state_dir), *args],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    stack = StackProcess(process, state_dir, port, prefix, table, log)
    deadline = time.monotonic() + timeout
    while not (state_dir / "stack.env").exists():
        if process.poll() is not None:
            pytest.fail(f"the stack exited with {process.returncode}:\n{stack.output()}")
        if time.monotonic() > deadline:
            stack.stop(signal.SIGKILL)
            pytest.fail(f"the stack did not come up within {timeout}s:\n{stack.output()}")
        time.sleep(0.1)
    return stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = start_stack(tmp_path_factory.mktemp("stack") / "state")
    yield running
    running.stop()


# --- HTTP ---------------------------------------------------------------------------------------------
def test_discovery_documents_name_the_local_issuer(stack):
    answer = get(f"{stack.url}/.well-known/openid-configuration")
    assert answer.status == 200
    assert answer.headers["content-type"] == "application/json"
    document = answer.json()
    assert document["issuer"] == f"http://127.0.0.1:{stack.port}"
    assert document["jwks_uri"] == f"http://127.0.0.1:{stack.port}/api/oauth/jwks"
    assert get(f"{stack.url}/.well-known/oauth-authorization-server").json() == document
    assert get(f"{stack.url}/api/oauth/openid-configuration").json() == document


def test_jwks_has_current_and_next_keys_and_an_etag(stack):
    answer = get(f"{stack.url}/api/oauth/jwks")
    assert answer.status == 200
    assert answer.headers["content-type"] == "application/jwk-set+json"
    assert "max-age=3600" in answer.headers["cache-control"]
    etag = answer.headers["etag"]
    assert re.fullmatch(r'"[0-9a-f]{32}"', etag)
    keys = answer.json()["keys"]
    assert sorted(k["alg"] for k in keys) == ["ES256", "ES256", "RS256", "RS256"]  # current + next, each
    assert len({k["kid"] for k in keys}) == 4
    assert all(k["use"] == "sig" and not {"d", "p", "q", "dp", "dq", "qi"} & set(k) for k in keys)

    again = get(f"{stack.url}/api/oauth/jwks", {"If-None-Match": etag})
    assert (again.status, again.body, again.headers["etag"]) == (304, b"", etag)


def test_unknown_routes_are_api_gateways_404(stack):
    for method, path in (("GET", "/nope"), ("GET", "/api/oauth/jwks/extra"), ("POST", "/api/oauth/jwks")):
        answer = get(f"{stack.url}{path}", method=method)
        assert (answer.status, answer.json()) == (404, {"message": "Not Found"}), (method, path)


def test_state_files(stack):
    env = stack.env
    assert env["ISSUER"] == env["API_URL"] == stack.url
    assert env["TABLE_NAME"] == stack.table
    assert env["KAFKA_TOPIC_PREFIX"] == stack.prefix
    assert env["DYNAMODB_ENDPOINT"].startswith("http://127.0.0.1:")
    assert env["KAFKA_BOOTSTRAP"].startswith("127.0.0.1:")
    kek = stack.state_dir / "kek"
    assert stat.S_IMODE(kek.stat().st_mode) == 0o600
    assert len(base64.b64decode(kek.read_text().strip())) == 32
    banner = stack.output()
    assert "Latchkey local stack is up" in banner
    assert f"curl -s {stack.url}/.well-known/openid-configuration" in banner


# --- events -------------------------------------------------------------------------------------------
def test_a_test_event_goes_through_the_outbox_to_kafka(stack):
    emitted = stack.run_cli("emit-test-event", "--user-id", "e2e-user")
    assert emitted.returncode == 0, emitted.stderr
    printed = json.loads(emitted.stdout)
    assert printed["topic"] == f"{stack.prefix}.oauthToken"

    [message] = consume(stack.env["KAFKA_BOOTSTRAP"], f"{stack.prefix}.oauthToken", count=1, timeout=20)
    assert message.key == b"e2e-user"
    value = message.json()
    assert value == printed["message"]
    assert value["id"] == printed["id"]
    assert re.fullmatch(r"[0-9a-f]{32}", value["id"])
    assert value["version"] == 1
    assert value["name"] == "oauthTokenGenerated"
    assert value["namespace"] == "latchkey"
    assert value["parentNamespace"] == ""
    assert RFC3339.match(value["timestamp"])
    assert value["clientId"] == "devstack-test-client"
    assert value["userId"] == "e2e-user"
    assert re.fullmatch(r"[0-9a-f]{32}", value["traceId"])
    assert re.fullmatch(r"[0-9a-f]{32}", value["sessionId"])
    assert value["payload"] == {"oauth": {"clientId": "devstack-test-client", "responseType": "token",
                                          "platformId": ""}}

    read = stack.run_cli("consume", "--topic", "oauthToken", "--max", "1", "--timeout", "20")
    assert read.returncode == 0, read.stderr
    line = json.loads(read.stdout.splitlines()[0])
    assert (line["topic"], line["key"], line["value"]) == (f"{stack.prefix}.oauthToken", "e2e-user", value)


# --- lifecycle ----------------------------------------------------------------------------------------
def jwks_kids(stack):
    return sorted(k["kid"] for k in get(f"{stack.url}/api/oauth/jwks").json()["keys"])


def test_persisted_stack_restarts_with_its_keys_and_without_replaying_events(tmp_path):
    state = tmp_path / "state"
    first = start_stack(state, "--persist")
    try:
        kids = jwks_kids(first)
        java = first.children()
        assert java, "DynamoDB Local runs as a child process"
        old = json.loads(first.run_cli("emit-test-event").stdout)
        assert len(consume(first.env["KAFKA_BOOTSTRAP"], old["topic"], count=1, timeout=20)) == 1
    finally:
        code = first.stop(signal.SIGINT, group=True)  # Ctrl-C in a terminal
    assert code == 0, first.output()
    assert not (state / "stack.env").exists()
    assert all(not Path(f"/proc/{pid}").exists() for pid in java), "no orphan DynamoDB Local"
    assert (state / "dynamodb").is_dir()

    second = start_stack(state, "--persist", prefix=first.prefix, table=first.table)
    try:
        assert jwks_kids(second) == kids  # same keys, still decryptable with the same kek
        new = json.loads(second.run_cli("emit-test-event").stdout)
        seen = consume(second.env["KAFKA_BOOTSTRAP"], new["topic"], count=2, timeout=4)
        assert [m.json()["id"] for m in seen] == [new["id"]]  # the old event is not relayed again
        java = second.children()
    finally:
        code = second.stop(signal.SIGTERM)
    assert code == 0, second.output()
    assert all(not Path(f"/proc/{pid}").exists() for pid in java)


def test_without_java_the_stack_says_so_and_exits(tmp_path):
    env = {**os.environ, "PATH": str(tmp_path)}  # no java on PATH
    done = subprocess.run([sys.executable, "-m", "devstack", "up", "--port", "0", "--state-dir",
                           str(tmp_path / "state")], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 1
    assert "`java` was not found" in done.stderr
    assert "--store memory" in done.stderr
    assert "Traceback" not in done.stderr


# --- --store memory, in-process -----------------------------------------------------------------------
def test_memory_store_stack_serves_keys_and_relays_outbox_rows(tmp_path, kafka_cluster, monkeypatch):
    from devstack.stack import Options, Stack
    from latchkey import services
    from latchkey.events import EventName, build_event, outbox_put

    monkeypatch.setenv("KAFKA_BOOTSTRAP", kafka_cluster.bootstrap)  # share the session's mock cluster
    monkeypatch.delenv("STORE", raising=False)
    prefix = f"mem{uuid.uuid4().hex[:8]}"
    options = Options(store="memory", port=0, state_dir=tmp_path / "state", topic_prefix=prefix,
                      table_name="memory-table")
    with Stack(options) as running:
        assert running.dynamodb is None
        assert os.environ["STORE"] == "memory"
        answer = get(f"{running.url}/api/oauth/jwks")
        assert answer.status == 200
        assert len(answer.json()["keys"]) == 4
        assert get(f"{running.url}/.well-known/openid-configuration").json()["issuer"] == running.url

        settings = services.settings()
        event = build_event(EventName.OAUTH_TOKEN_REVOKED, namespace=settings.namespace,
                            parent_namespace="", client_id="mem-client", user_id="mem-user", trace_id="t1")
        services.item_store().write(outbox_put(event, ttl=settings.event_ttl))
        [message] = consume(kafka_cluster.bootstrap, f"{prefix}.oauthToken", count=1, timeout=20)
        assert message.key == b"mem-user"
        assert message.json() == event.message
        assert (tmp_path / "state" / "stack.env").exists()
    assert "STORE" not in os.environ  # the environment is restored
    assert not (tmp_path / "state" / "stack.env").exists()
