"""CPU per client_credentials token: Latchkey's token handler in-process vs node-oidc-provider over HTTP.
Used by ``python -m bench``."""

from __future__ import annotations

import base64
import http.client
import importlib.util
import json
import os
import shutil
import socket
import statistics
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
TOKEN_PATH = "/api/oauth/token"
ENV = {"STORE": "memory", "LOCAL_KEK": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
       "ISSUER": "https://auth.example.com", "METRICS_DISABLED": "true"}


@dataclass(frozen=True)
class Context:
    """What handlers read from Lambda's context object."""

    function_name: str = "latchkey-bench"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:latchkey-bench"
    aws_request_id: str = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode("ascii")


def event(authorization: str, form: dict[str, str]) -> dict[str, Any]:
    """An API Gateway HTTP API (v2) event for ``POST /api/oauth/token``."""
    request_id = base64.b64encode(uuid.uuid4().bytes[:10]).decode("ascii")
    return {
        "version": "2.0", "routeKey": f"POST {TOKEN_PATH}", "rawPath": TOKEN_PATH, "rawQueryString": "",
        "headers": {"host": "auth.example.com", "user-agent": "bench", "x-forwarded-for": "203.0.113.9",
                    "content-type": "application/x-www-form-urlencoded", "authorization": authorization},
        "requestContext": {"accountId": "123456789012", "apiId": "bench", "domainName": "auth.example.com",
                           "domainPrefix": "auth", "requestId": request_id, "routeKey": f"POST {TOKEN_PATH}",
                           "stage": "$default", "time": "01/Jan/2026:00:00:00 +0000", "timeEpoch": 0,
                           "http": {"method": "POST", "path": TOKEN_PATH, "protocol": "HTTP/1.1",
                                    "sourceIp": "203.0.113.9", "userAgent": "bench"}},
        "body": urlencode(form), "isBase64Encoded": False,
    }


def load_handler(directory: str = "token") -> Any:
    path = ROOT / "functions" / directory / "app.py"
    spec = importlib.util.spec_from_file_location(f"latchkey_bench_{directory}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler


def jwt_header(token: str) -> dict[str, Any]:
    part = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"n": len(ordered), "mean_ms": statistics.fmean(ordered) * 1e3, "p50_ms": q[49] * 1e3,
            "p99_ms": q[98] * 1e3}


# --- Latchkey, in-process -----------------------------------------------------------------------------
def latchkey_cpu(calls: int, warmup: int) -> dict[str, Any]:
    """``time.process_time()`` around each handler call (one client_credentials token each)."""
    os.environ.update(ENV)
    from latchkey import apps, services, signing

    services.reset()
    signing.rotate(services.key_store(), services.envelope(), services.settings().signing_algs,
                   services.rotation_policy())
    credentials = apps.create({"name": "bench", "grant_types": ["client_credentials"], "scope": "read"})
    handler = load_handler()
    authorization = basic(credentials.client_id, credentials.key)
    form = {"grant_type": "client_credentials", "scope": "read"}
    context = Context()
    first = handler(event(authorization, form), context)
    assert first["statusCode"] == 200, first
    header = jwt_header(json.loads(first["body"])["access_token"])
    for _ in range(warmup):
        handler(event(authorization, form), context)
    samples = []
    for _ in range(calls):
        request = event(authorization, form)  # built outside the measured span
        start = time.process_time()
        answer = handler(request, context)
        samples.append(time.process_time() - start)
        assert answer["statusCode"] == 200
    services.reset()
    return {**percentiles(samples), "token_header": header}


# --- node-oidc-provider, over HTTP --------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads) from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def node_versions() -> dict[str, str]:
    node = shutil.which("node")
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip() if node else "-"
    package = ROOT / "node_modules" / "oidc-provider" / "package.json"
    provider = json.loads(package.read_text())["version"] if package.exists() else "-"
    return {"node": version, "oidc_provider": provider}


def node_cpu(requests: int, warmup: int) -> dict[str, Any]:
    """CPU seconds the node process spent over ``requests`` sequential keep-alive token requests."""
    if not (ROOT / "node_modules" / "oidc-provider").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=ROOT, check=True)
    port, client_id, secret = _free_port(), "bench-client", f"secret-{uuid.uuid4().hex}"
    process = subprocess.Popen(["node", str(ROOT / "bench" / "node_oidc_provider.mjs"), str(port), client_id, secret],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = process.stdout.readline() if process.stdout else ""
        if not line.startswith("READY"):
            raise RuntimeError(f"node-oidc-provider did not start: {line!r}")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        headers = {"Authorization": basic(client_id, secret), "Content-Type": "application/x-www-form-urlencoded"}
        body = "grant_type=client_credentials&scope=read"

        def one() -> dict[str, Any]:
            connection.request("POST", "/token", body, headers)
            response = connection.getresponse()
            data = response.read()
            if response.status != 200:
                raise RuntimeError(f"node-oidc-provider answered {response.status}: {data[:200]!r}")
            return json.loads(data)

        header = jwt_header(one()["access_token"])
        for _ in range(warmup):
            one()
        before, wall = _cpu_seconds(process.pid), time.perf_counter()
        for _ in range(requests):
            one()
        after, wall = _cpu_seconds(process.pid), time.perf_counter() - wall
        connection.close()
    finally:
        process.terminate()
        process.wait(timeout=10)
    return {"n": requests, "cpu_seconds": after - before, "per_token_ms": (after - before) / requests * 1e3,
            "wall_per_token_ms": wall / requests * 1e3, "token_header": header,
            "clock_tick_ms": 1e3 / os.sysconf("SC_CLK_TCK")}
