"""client_credentials through the local gateway: requests per second and latency at a fixed concurrency.

A rough end-to-end picture only: ``devstack.gateway.Gateway`` (a development tool: Python's threading
HTTP server, one invocation at a time per function like a single warm Lambda instance) serves every route
of ``template.yaml`` in a separate Python process on the in-memory store, so that the load generator here
(threads with keep-alive ``http.client`` connections) does not share an interpreter lock with it. The
server process's own CPU is read from ``/proc`` around the measured phase.

Used by ``python -m bench``; ``python -m bench.gateway_load`` prints a short run's report section.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.tokens import ENV as TOKEN_ENV
from bench.tokens import ROOT, percentiles

TOKEN_PATH = "/api/oauth/token"
CONCURRENCY = 8
BODY = "grant_type=client_credentials&scope=read"
SERVER_ENV = {**TOKEN_ENV, "STORE": "memory"}
SERVER_ENV_REMOVED = ("TABLE_NAME", "DYNAMODB_ENDPOINT", "KMS_KEY_ID")
START_TIMEOUT = 60.0


# --- the server process ---------------------------------------------------------------------------------
def serve(*, nodelay: bool = False) -> None:
    """In the child: configure the in-memory store, start the gateway (``nodelay``: with Nagle's algorithm
    disabled on its connections), print one JSON line (url and credentials), serve until stdin closes."""
    from devstack import gateway as devstack_gateway

    if nodelay:
        devstack_gateway._Handler.disable_nagle_algorithm = True  # this process only; the file is untouched
    gateway = devstack_gateway.Gateway(port=0)
    os.environ.update({**SERVER_ENV, "ISSUER": gateway.url})
    for name in SERVER_ENV_REMOVED:
        os.environ.pop(name, None)
    from latchkey import apps, services, signing

    services.reset()
    signing.rotate(services.key_store(), services.envelope(), services.settings().signing_algs,
                   services.rotation_policy())
    credentials = apps.create({"name": "bench load", "grant_types": ["client_credentials"], "scope": "read"})
    for route in gateway.routes:  # load the token function now: no cold start inside the measurement
        if route.path == TOKEN_PATH:
            route.function.handler()
    gateway.start()
    print(json.dumps({"url": gateway.url, "client_id": credentials.client_id, "secret": credentials.key}),
          flush=True)
    # Metrics (EMF lines) and logs go to stdout; nobody reads the pipe any more.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        sys.stdin.read()  # until the parent closes the pipe (or dies)
    finally:
        gateway.stop()


def _cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads) from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    """``python -m bench.gateway_load --serve`` as a child process."""

    def __init__(self, *, nodelay: bool = False) -> None:
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - kept for the child's lifetime
        env = {**os.environ, **SERVER_ENV}
        for name in SERVER_ENV_REMOVED:
            env.pop(name, None)
        command = [sys.executable, "-m", "bench.gateway_load", "--serve", *(["--nodelay"] if nodelay else [])]
        self.process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            command, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            text=True)
        try:
            assert self.process.stdout is not None
            ready, _, _ = select.select([self.process.stdout], [], [], START_TIMEOUT)
            line = self.process.stdout.readline() if ready else ""
            if not line.startswith("{"):
                raise RuntimeError(f"the gateway did not start: {line!r}\n{self.errors()}")
            info = json.loads(line)
        except BaseException:
            self.stop()
            raise
        self.url: str = info["url"]
        self.host, port = self.url.removeprefix("http://").rsplit(":", 1)
        self.port = int(port)
        self.authorization = "Basic " + base64.b64encode(
            f"{info['client_id']}:{info['secret']}".encode()).decode("ascii")

    def cpu_seconds(self) -> float:
        return _cpu_seconds(self.process.pid)

    def errors(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")[-2000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            if self.process.stdin is not None:
                self.process.stdin.close()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.terminate()
                self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._stderr.close()


# --- the load -------------------------------------------------------------------------------------------
def _load(server: Server, requests: int, concurrency: int) -> tuple[list[float], list[str], float]:
    """``requests`` POSTs spread over ``concurrency`` threads, one keep-alive connection each:
    (latencies in seconds, error descriptions, wall seconds)."""
    headers = {"Authorization": server.authorization, "Content-Type": "application/x-www-form-urlencoded"}
    lock = threading.Lock()
    remaining = [requests]
    latencies: list[float] = []
    errors: list[str] = []
    start_line = threading.Barrier(concurrency + 1)

    def worker() -> None:
        connection = http.client.HTTPConnection(server.host, server.port, timeout=30)
        mine: list[float] = []
        start_line.wait()
        try:
            while True:
                with lock:
                    if remaining[0] <= 0:
                        break
                    remaining[0] -= 1
                start = time.perf_counter()
                try:
                    connection.request("POST", TOKEN_PATH, BODY, headers)
                    response = connection.getresponse()
                    data = response.read()
                    elapsed = time.perf_counter() - start
                    if response.status != 200:
                        with lock:
                            errors.append(f"HTTP {response.status}: {data[:200]!r}")
                    else:
                        mine.append(elapsed)
                except (OSError, http.client.HTTPException) as exc:
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}")
                    connection.close()
                    connection = http.client.HTTPConnection(server.host, server.port, timeout=30)
        finally:
            connection.close()
            with lock:
                latencies.extend(mine)

    threads = [threading.Thread(target=worker, name=f"bench-load-{i}") for i in range(concurrency)]
    for thread in threads:
        thread.start()
    start_line.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return latencies, errors, time.perf_counter() - began


def shipped_gateway_disables_nagle() -> bool:
    from devstack import gateway

    return bool(getattr(gateway._Handler, "disable_nagle_algorithm", False))


def measure(*, nodelay: bool, requests: int, warmup: int) -> dict[str, Any]:
    """One gateway process, a probe request, ``warmup`` requests, then the measured ``requests``."""
    server = Server(nodelay=nodelay)
    try:
        probe = http.client.HTTPConnection(server.host, server.port, timeout=30)
        probe.request("POST", TOKEN_PATH, BODY, {"Authorization": server.authorization,
                                                 "Content-Type": "application/x-www-form-urlencoded"})
        first = probe.getresponse()
        body = first.read()
        probe.close()
        if first.status != 200 or "access_token" not in json.loads(body):
            raise RuntimeError(f"the token endpoint answered {first.status}: {body[:300]!r}\n{server.errors()}")
        _load(server, warmup, CONCURRENCY)
        cpu_before = server.cpu_seconds()
        latencies, errors, wall = _load(server, requests, CONCURRENCY)
        server_cpu = server.cpu_seconds() - cpu_before
        log = server.errors() if errors else ""
    finally:
        server.stop()
    figures = percentiles(latencies) if len(latencies) >= 2 else {"n": len(latencies)}
    return {"nagle_disabled_by_benchmark": nodelay, "requests": requests, "ok": len(latencies),
            "errors": len(errors), "error_samples": errors[:5], "server_log_tail": log, "wall_seconds": wall,
            "requests_per_second": requests / wall if wall else 0.0,
            "latency": {k: v for k, v in figures.items() if k != "n"},
            "server_cpu_seconds": server_cpu, "server_cpu_per_request_ms": server_cpu / requests * 1e3}


def run(*, short: bool) -> dict[str, Any]:
    """Requests per second and latency of client_credentials through the gateway (no targets).

    The gateway as shipped first; when it leaves Nagle's algorithm on (each answer is written as headers,
    then body: the second small write waits for the client's delayed ACK, about 40 ms on Linux), again
    with Nagle disabled in the gateway process, which shows what the server itself can do."""
    requests, warmup = (100, 16) if short else (2000, 100)
    shipped_nodelay = shipped_gateway_disables_nagle()
    runs = [measure(nodelay=False, requests=requests, warmup=warmup)]
    if not shipped_nodelay:
        runs.append(measure(nodelay=True, requests=requests, warmup=warmup))
    return {"mode": "short" if short else "full", "store": "memory", "concurrency": CONCURRENCY,
            "requests": requests, "warmup_requests": warmup, "shipped_gateway_disables_nagle": shipped_nodelay,
            "runs": runs, "errors": sum(r["errors"] for r in runs),
            "clock_tick_ms": 1e3 / os.sysconf("SC_CLK_TCK"), "cpus": os.cpu_count(), "targets": []}


def report_lines(data: dict[str, Any]) -> list[str]:
    """The ``## Through the local gateway`` section of ``bench/report.md``."""
    lines = ["## Through the local gateway", "",
             "Caveat: `devstack.gateway` is a development tool (Python's threading HTTP server, one invocation "
             "at a time per function like a single warm Lambda instance, in-memory store); these figures are a "
             "rough end-to-end picture of this machine, not of API Gateway and Lambda.", "",
             f"client_credentials, {data['requests']} requests after {data['warmup_requests']} warm-up ones, "
             f"{data['concurrency']} concurrent keep-alive connections ({data['mode']} run):", "",
             "| gateway | requests/s | latency p50 (ms) | p99 (ms) | mean (ms) | errors "
             "| server CPU per request (ms) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in data["runs"]:
        latency = r["latency"]
        p50, p99, mean = (f"{latency[k]:.1f}" if k in latency else "-" for k in ("p50_ms", "p99_ms", "mean_ms"))
        label = "Nagle disabled by the benchmark" if r["nagle_disabled_by_benchmark"] else "as shipped"
        lines.append(f"| {label} | {r['requests_per_second']:.0f} | {p50} | {p99} | {mean} | {r['errors']} | "
                     f"{r['server_cpu_per_request_ms']:.2f} |")
    lines += ["",
              "- Requests/s: measured requests over the wall time from the start line to the last answer.",
              "- Latency: from sending a request to reading its whole answer, successful requests only (the "
              f"{data['concurrency']} connections queue at the token function, so latency is mostly waiting).",
              "- Errors: any answer but 200, or a connection failure (should be 0).",
              "- Server CPU per request: the gateway process's utime + stime over the measured phase (`/proc`, "
              f"{data['clock_tick_ms']:.0f} ms ticks) divided by the requests; it includes HTTP parsing and "
              f"building the v2 event; the load generator runs in another process on the same {data['cpus']} CPUs."]
    if not data["shipped_gateway_disables_nagle"]:
        lines.append("- Nagle disabled by the benchmark: the gateway writes each answer's headers and body "
                     "separately with Nagle's algorithm on, so the body waits for the client's delayed ACK "
                     "(~40 ms a request on Linux); the second row sets `disable_nagle_algorithm` on the gateway's "
                     "request handler in its process, to show the server's own throughput.")
    for r in data["runs"]:
        if r["errors"]:
            lines.append(f"- Error samples: {'; '.join(r['error_samples'])}")
    return lines + [""]


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(nodelay="--nodelay" in sys.argv[2:])
    else:
        print("\n".join(report_lines(run(short=True))))
