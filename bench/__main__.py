"""Micro-benchmarks of the per-token hot path: signing, verifying, hashing secrets, rendering the JWKS.

Run with ``make bench``; results go to ``bench/report.md`` (operations per second, median of runs).
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from latchkey.crypto import jws, keys, secrets
from latchkey.crypto.envelope import LocalEnvelope
from latchkey.rfc7517 import jwks_document
from latchkey.signing import ItemKeyStore, KeyRing, RotationPolicy, rotate
from latchkey.store.memory import MemoryItemStore

REPORT = Path(__file__).resolve().parent / "report.md"
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


def main() -> None:
    store = ItemKeyStore(MemoryItemStore())
    envelope = LocalEnvelope(bytes(32))
    rotate(store, envelope, ("ES256", "RS256"), RotationPolicy(86400, 3600, 3600))
    ring = KeyRing(store, envelope, cache_ttl=60)
    now = int(time.time())
    claims = {"iss": ISS, "sub": "user", "aud": "api", "iat": now, "exp": now + 3600, "scope": "openid"}
    tokens = {}
    results = []
    for alg in ("ES256", "RS256"):
        key = ring.signing_key(alg)
        tokens[alg] = jws.sign(claims, key=key.private, kid=key.kid, alg=alg)
        results.append(measure(f"sign {alg} JWT",
                               lambda k=key, a=alg: jws.sign(claims, key=k.private, kid=k.kid, alg=a)))
        results.append(measure(f"verify {alg} JWT", lambda a=alg: jws.verify(
            tokens[a], ring.verification_keys(), issuer=ISS, audience="api")))
    hash_key = bytes(32)
    secret = secrets.new_secret("cs")
    stored = secrets.keyed_hash(hash_key, secret)
    results.append(measure("verify client secret (HMAC-SHA256)",
                           lambda: secrets.verify_keyed_hash(hash_key, secret, stored)))
    results.append(measure("render JWKS (4 keys)", lambda: jwks_document(ring.published_jwks(), max_age=3600)))
    results.append(measure("generate ES256 key", lambda: keys.generate("ES256"), runs=3))

    lines = ["# Benchmark report", "", f"Machine: {platform.machine()}, Python {platform.python_version()}, "
             f"{platform.system()}; written {time.strftime('%Y-%m-%d %H:%M:%S')}.", "",
             "| operation | per second |", "| --- | ---: |"]
    lines += [f"| {name} | {rate:,.0f} |" for name, rate in results]
    REPORT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
