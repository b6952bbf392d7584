"""Latchkey's benchmark suite (issue 8), one command: ``make bench`` / ``python -m bench``.

Sections, each in its own module, each printing its figures and PASS/FAIL against its target:

- :mod:`bench.tokens`: CPU per client_credentials token, Latchkey in-process vs node-oidc-provider;
- :mod:`bench.hotpaths`: CPU and DynamoDB round trips per call of the other hot paths, against budgets;
- :mod:`bench.coldstart`: every function's cold start against DynamoDB Local minus a boto3-only
  reference handler, and peak RSS;
- :mod:`bench.packages`: the built layer and functions against Lambda's size limits;
- :mod:`bench.gateway_load`: requests per second through the local gateway (figures only);
- crypto micro-benchmarks (below).

Results go to ``bench/report.md`` and ``bench/report.json`` (``--output DIR`` elsewhere). ``--short``
runs few iterations: a smoke run for CI, whose figures are noisy and whose verdicts mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import coldstart, gateway_load, hotpaths, packages, tokens
from latchkey.crypto import jws, keys, secrets
from latchkey.crypto.envelope import LocalEnvelope
from latchkey.rfc7517 import jwks_document
from latchkey.signing import ItemKeyStore, KeyRing, RotationPolicy, rotate
from latchkey.store.memory import MemoryItemStore

REPORT = Path(__file__).resolve().parent / "report.md"
REPORT_JSON = REPORT.with_suffix(".json")
ISS = "https://auth.example.com"


def measure(name: str, operation: Callable[[], object], *, seconds: float = 0.5, runs: int = 5) -> tuple[str, float]:
    rates = []
    for _ in range(runs):
        count, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds / runs:
            operation()
            count += 1
        rates.append(count / elapsed)
    return name, statistics.median(rates)


def crypto_micro(seconds: float) -> list[tuple[str, float]]:
    store = ItemKeyStore(MemoryItemStore())
    envelope = LocalEnvelope(bytes(32))
    rotate(store, envelope, ("ES256", "RS256"), RotationPolicy(86400, 3600, 3600))
    ring = KeyRing(store, envelope, cache_ttl=60)
    now = int(time.time())
    claims = {"iss": ISS, "sub": "user", "aud": "api", "iat": now, "exp": now + 3600, "scope": "openid"}
    signed = {}
    results = []
    for alg in ("ES256", "RS256"):
        key = ring.signing_key(alg)
        signed[alg] = jws.sign(claims, key=key.private, kid=key.kid, alg=alg)
        results.append(measure(f"sign {alg} JWT", lambda k=key, a=alg: jws.sign(
            claims, key=k.private, kid=k.kid, alg=a), seconds=seconds))
        results.append(measure(f"verify {alg} JWT", lambda a=alg: jws.verify(
            signed[a], ring.verification_keys(), issuer=ISS, audience="api"), seconds=seconds))
    hash_key = bytes(32)
    secret = secrets.new_secret("cs")
    stored = secrets.keyed_hash(hash_key, secret)
    results.append(measure("verify client secret (HMAC-SHA256)",
                           lambda: secrets.verify_keyed_hash(hash_key, secret, stored), seconds=seconds))
    results.append(measure("render JWKS (4 keys)", lambda: jwks_document(ring.published_jwks(), max_age=3600),
                           seconds=seconds))
    results.append(measure("generate ES256 key", lambda: keys.generate("ES256"), seconds=seconds, runs=3))
    return results


def machine() -> dict[str, str]:
    cpu = "-"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from importlib.metadata import version

    return {"machine": platform.machine(), "cpu": cpu, "cpus": str(os.cpu_count()), "system": platform.platform(),
            "python": platform.python_version(), "latchkey": version("latchkey"), **tokens.node_versions()}


NOTE = Path(__file__).resolve().parent / "profile_note.md"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="few iterations (CI smoke run; noisy figures)")
    parser.add_argument("--output", type=Path, default=REPORT.parent,
                        help="directory for report.md and report.json (default: bench/)")
    parser.add_argument("--skip", action="append", default=[],
                        choices=["coldstart", "packages", "gateway", "hotpaths"], help="leave a section out")
    args = parser.parse_args()
    calls, warmup, node_requests, seconds = (200, 50, 300, 0.1) if args.short else (2000, 200, 2000, 0.5)
    started = time.perf_counter()

    results = crypto_micro(seconds)
    latchkey = tokens.latchkey_cpu(calls, warmup)
    node = tokens.node_cpu(node_requests, warmup)
    ratio = latchkey["mean_ms"] / node["per_token_ms"]
    cpu_target = {"target": "CPU per client_credentials token (in-memory) <= half of node-oidc-provider's",
                  "pass": ratio <= 0.5, "figure": round(ratio, 3)}
    sections: dict[str, Any] = {}
    for name, module in (("hotpaths", hotpaths), ("coldstart", coldstart), ("packages", packages),
                         ("gateway", gateway_load)):
        if name not in args.skip:
            sections[name] = module.run(short=args.short)
    info = machine()
    written = time.strftime("%Y-%m-%d %H:%M:%S")
    targets = [cpu_target] + [t for data in sections.values() for t in data.get("targets", [])]

    data = {"written": written, "mode": "short" if args.short else "full", "environment": info,
            "seconds": round(time.perf_counter() - started, 1), "targets": targets,
            "crypto_ops_per_second": dict(results),
            "client_credentials_cpu": {"latchkey": latchkey, "node_oidc_provider": node,
                                       "ratio_latchkey_mean_to_node": ratio, **cpu_target},
            **sections}
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / REPORT_JSON.name).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")

    lines = ["# Benchmark report", "",
             f"Written {written} by `python -m bench{' --short' if args.short else ''}` "
             f"({data['mode']} run, {data['seconds']:.0f} s; `--short` figures are smoke-test quality only).", "",
             "## Environment", "",
             f"- Machine: {info['machine']}, {info['cpu']}, {info['cpus']} CPUs visible; {info['system']}",
             f"- Python {info['python']}, latchkey {info['latchkey']}; Node {info['node']}, "
             f"oidc-provider {info['oidc_provider']} (it warns that it wants Node 22+)",
             "- Conditions: one shared machine (container), no CPU pinning, other load not controlled; "
             "sections run one after another.", "",
             "## Targets", "",
             "| target | figure | verdict |", "| --- | ---: | --- |"]
    lines += [f"| {t['target']} | {t.get('figure', '')} | **{'PASS' if t['pass'] else 'FAIL'}** |" for t in targets]
    lines += ["", "## CPU per client_credentials token", "",
              "| server | how measured | tokens | CPU per token (ms) |", "| --- | --- | ---: | ---: |",
              f"| Latchkey | `time.process_time()` around each call of functions/token/app.py `handler` | "
              f"{latchkey['n']} | mean {latchkey['mean_ms']:.3f}, p50 {latchkey['p50_ms']:.3f}, "
              f"p99 {latchkey['p99_ms']:.3f} |",
              f"| node-oidc-provider | utime+stime of the node process (/proc/pid/stat) over the run / tokens | "
              f"{node['n']} | mean {node['per_token_ms']:.3f} |", "",
              f"**Ratio** (Latchkey mean / node-oidc-provider mean): **{ratio:.2f}** "
              f"({'PASS' if cpu_target['pass'] else 'FAIL'}: at most 0.50).", "",
              "What each figure means:", "",
              f"- Latchkey: CPU of one in-process handler call with an API Gateway v2 event (client_secret_basic, "
              f"STORE=memory, ES256 `at+jwt` token, header checked: `{latchkey['token_header'].get('alg')}`), "
              f"after {warmup} warm-up calls; the event is built outside the measured span; no HTTP/TLS parsing "
              f"(API Gateway does that in production). The same path against DynamoDB Local is in the hot paths.",
              f"- node-oidc-provider: CPU of the whole node process (HTTP parsing, routing, client auth, JWT "
              f"signing, GC) per token over {node['n']} sequential keep-alive requests from 127.0.0.1 after "
              f"{warmup} warm-up requests; in-memory adapter; token header checked: "
              f"`{node['token_header'].get('alg')}` / `{node['token_header'].get('typ')}`; resolution "
              f"{node['clock_tick_ms']:.0f} ms clock ticks over {node['cpu_seconds']:.2f} s CPU in total; "
              f"wall time {node['wall_per_token_ms']:.3f} ms per request (client included).",
              "- Comparison caveat: the node figure includes its HTTP server work, the Latchkey figure does not; "
              "p50/p99 exist only for Latchkey (node's CPU is read per run, not per request).", ""]
    for name, module in (("hotpaths", hotpaths), ("coldstart", coldstart), ("packages", packages),
                         ("gateway", gateway_load)):
        if name in sections:
            lines += [*module.report_lines(sections[name]), ""]
    lines += ["## Crypto micro-benchmarks", "", "Operations per second, median of runs.", "",
              "| operation | per second |", "| --- | ---: |"]
    lines += [f"| {name} | {rate:,.0f} |" for name, rate in results]
    lines += ["", NOTE.read_text(encoding="utf-8").rstrip()]
    (args.output / REPORT.name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    failed = [t["target"] for t in targets if not t["pass"]]
    if failed and not args.short:
        print(f"\n{len(failed)} target(s) FAILED", file=sys.stderr)


if __name__ == "__main__":
    main()
