"""Every outbound call gives up before the Lambda function running it is killed, so a slow or dead
dependency ends in an answer (503 / 502 / a reported batch failure) instead of a Lambda timeout.

Timeouts are read from template.yaml (Globals, then the function's own ``Timeout``) and compared with:
the botocore client configuration ``latchkey.services`` builds (connect + read timeout per attempt, times
the attempts, plus the standard retry mode's longest backoff between them); ``UPSTREAM_TIMEOUT`` for the
functions that call third-party login platforms; the ``jwks_uri`` fetch of client authentication for the
functions that authenticate clients; ``KAFKA_FLUSH_TIMEOUT`` for the event relay.
"""

from __future__ import annotations

import ast
import dataclasses
from functools import cache
from pathlib import Path

import pytest

from devstack import template
from devstack.lambda_runtime import function_limits
from latchkey import services
from latchkey.config import Settings

LAYER = template.ROOT / "layers" / "latchkey"
STANDARD_MODE_MAX_BACKOFF = 20  # botocore.retries.standard.ExponentialBackoff._MAX_BACKOFF


@cache
def _doc() -> dict:
    return template.load()


def timeouts() -> dict[str, int]:
    return {name: function_limits(name, _doc())[1] for name in template.functions(_doc())}


def setting(function: str, field: str) -> float:
    """A setting as the deployed function sees it: its environment in the template, else the default."""
    variables = {**((_doc().get("Globals") or {}).get("Function", {}).get("Environment", {}).get("Variables") or {}),
                 **(template.functions(_doc())[function]["Properties"].get("Environment", {}).get("Variables") or {})}
    if field.upper() in variables:
        return float(variables[field.upper()])
    return float(next(f.default for f in dataclasses.fields(Settings) if f.name == field))


@cache
def _module_file(name: str) -> Path | None:
    base = LAYER / Path(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


@cache
def _imports(path: Path, package: str) -> frozenset[str]:
    """Every latchkey module ``path`` imports, at module level or deferred inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return frozenset(name for name in found if name.split(".")[0] == "latchkey" and _module_file(name))


@cache
def reachable(function: str) -> frozenset[str]:
    """The latchkey modules a function's handler can load (a superset: deferred imports count)."""
    props = template.functions(_doc())[function]["Properties"]
    handler = template.ROOT / props["CodeUri"] / (props["Handler"].rsplit(".", 1)[0] + ".py")
    seen: set[str] = set()
    todo = list(_imports(handler, "app"))
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = _module_file(name)
        assert path is not None
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        todo.extend(_imports(path, package) - seen)
    return frozenset(seen)


def users_of(module: str) -> dict[str, int]:
    return {name: timeout for name, timeout in timeouts().items() if module in reachable(name)}


def test_the_import_analysis_finds_what_it_must():
    # Guards the analysis the other tests rely on: it must see through deferred grant imports.
    assert "latchkey.rfc6749.client_auth" in reachable("TokenFunction")
    assert "latchkey.thirdparty" in reachable("PlatformCallbackFunction")


@pytest.fixture
def aws_config(monkeypatch):
    for name, value in {"STORE": "dynamodb", "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x",
                        "AWS_SECRET_ACCESS_KEY": "x"}.items():
        monkeypatch.setenv(name, value)
    services.reset()
    yield {service: services._aws_client(service).meta.config for service in ("dynamodb", "kms")}
    services.reset()


def test_a_dynamodb_or_kms_call_with_every_retry_ends_before_any_function_times_out(aws_config):
    for service, config in aws_config.items():
        attempts = config.retries["total_max_attempts"]  # botocore: the first attempt plus the retries
        assert config.retries["mode"] == "standard"
        backoff = sum(min(STANDARD_MODE_MAX_BACKOFF, 2 ** retry) for retry in range(attempts - 1))
        worst = (config.connect_timeout + config.read_timeout) * attempts + backoff
        shortest = min(timeouts().items(), key=lambda item: item[1])
        assert worst < shortest[1], (
            f"{service}: {attempts} attempts x ({config.connect_timeout}s connect + {config.read_timeout}s read) "
            f"+ {backoff}s backoff = {worst}s, not below {shortest[0]}'s Timeout of {shortest[1]}s; tighten "
            "services._aws_client's Config (e.g. total_max_attempts=3, connect_timeout=1, read_timeout=2: "
            "3 x 3 s + 3 s backoff = 12 s)")


def test_third_party_login_calls_end_before_their_functions_time_out():
    found = users_of("latchkey.thirdparty")
    assert {"PlatformAuthorizeFunction", "PlatformCallbackFunction"} <= set(found)
    for name, timeout in found.items():
        upstream = setting(name, "upstream_timeout")
        assert upstream < timeout, f"UPSTREAM_TIMEOUT {upstream}s is not below {name}'s Timeout {timeout}s"


def test_the_jwks_uri_fetch_ends_before_client_authenticating_functions_time_out():
    from latchkey.rfc6749.client_auth import JWKS_URI_TIMEOUT

    found = users_of("latchkey.rfc6749.client_auth")
    assert {"TokenFunction", "IntrospectFunction", "RevokeFunction"} <= set(found)
    for name, timeout in found.items():
        assert JWKS_URI_TIMEOUT < timeout, f"jwks_uri timeout {JWKS_URI_TIMEOUT}s >= {name}'s Timeout {timeout}s"


def test_the_relay_gives_up_on_kafka_before_its_function_times_out():
    flush = setting("EventRelayFunction", "kafka_flush_timeout")
    relay_timeout = timeouts()["EventRelayFunction"]
    assert flush < relay_timeout
    # The flush is also the producer's message.timeout.ms: an unacknowledged message fails in time.
    from latchkey_kafka import producer_config

    config = producer_config(dataclasses.replace(Settings(), kafka_bootstrap="broker:9092",
                                                 kafka_flush_timeout=flush))
    assert config["message.timeout.ms"] / 1000 < relay_timeout
