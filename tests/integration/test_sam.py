"""AWS SAM CLI checks: `sam validate --lint` and a real `sam build` (no Docker, no local python3.13).

The SAM CLI lives in its own virtual environment: `make .dev/sam/.installed`. A missing SAM CLI is a
failure, never a skip. The build test skips only when the package index pip is configured with
cannot be reached, since the layers' Makefiles download the Lambda (cp313, aarch64) wheels.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAM_VENV = ROOT / ".dev" / "sam"
SAM = SAM_VENV / "bin" / "sam"
EM_AARCH64 = 183
API_FUNCTIONS = ("OpenIdConfigurationFunction", "OAuthAuthorizationServerFunction",
                 "GovOpenIdConfigurationFunction", "JwksFunction", "RotateKeysFunction")
NETWORK_ERRORS = ("Could not fetch URL", "connection error", "NewConnectionError", "Max retries exceeded",
                  "Failed to establish a new connection", "Temporary failure in name resolution",
                  "ConnectTimeoutError", "Read timed out", "No route to host")

pytestmark = pytest.mark.slow


def _sam() -> Path:
    if not (SAM.is_file() and os.access(SAM, os.X_OK)):
        pytest.fail(f"SAM CLI not found at {SAM}: run `make .dev/sam/.installed` "
                    "(it installs tools/sam-requirements.txt into .dev/sam)", pytrace=False)
    return SAM


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["SAM_CLI_TELEMETRY"] = "0"
    env.pop("PYTHONPATH", None)  # pytest's path must not leak into SAM's or pip's interpreter
    env.pop("VIRTUAL_ENV", None)
    return env


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout,
                          check=False)


def _output(proc: subprocess.CompletedProcess[str], limit: int = 6000) -> str:
    text = f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
    return text[-limit:]


def _skip_unless_package_index_reachable(tmp_path: Path) -> None:
    """Download one tiny Lambda-platform wheel with the same pip and configuration the layer
    Makefiles use (pip.conf/PIP_* may add extra indexes and find-links), bypassing pip's cache."""
    python = SAM_VENV / "bin" / "python"
    pip = [str(python if python.exists() else sys.executable), "-m", "pip"]
    probe = _run([*pip, "download", "--no-deps", "--no-cache-dir", "--disable-pip-version-check",
                  "--timeout", "15", "--retries", "1", "--dest", str(tmp_path / "probe"),
                  "--platform", "manylinux_2_28_aarch64", "--python-version", "3.13",
                  "--implementation", "cp", "--only-binary=:all:", "six==1.16.0"], timeout=120)
    output = probe.stdout + probe.stderr
    network_error = next((e for e in NETWORK_ERRORS if e.lower() in output.lower()), None)
    tail = "\n".join(output.strip().splitlines()[-5:])
    if network_error:
        pytest.skip(f"PyPI (the configured pip package index) is unreachable, so `sam build` cannot fetch "
                    f"the Lambda wheels: `pip download six==1.16.0` hit {network_error!r} "
                    f"(exit {probe.returncode}): {tail}")
    if probe.returncode != 0:  # reachable but broken: that is a failure, not a reason to skip
        pytest.fail(f"`pip download six==1.16.0` failed without a network error:\n{tail}", pytrace=False)


def _elf_machine(path: Path) -> int | None:
    with path.open("rb") as f:
        header = f.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    return struct.unpack("<H" if header[5] == 1 else ">H", header[18:20])[0]


def test_sam_validate_lint():
    sam = _sam()
    proc = _run([str(sam), "validate", "--lint"], timeout=300)
    assert proc.returncode == 0, f"sam validate --lint failed (cfn-lint warnings count):\n{_output(proc)}"
    assert "is a valid SAM Template" in proc.stdout


def test_sam_build(tmp_path):
    sam = _sam()
    _skip_unless_package_index_reachable(tmp_path)
    build = tmp_path / "build"
    # --no-cached: samconfig.toml's default build is cached (in .aws-sam/cache); this one is fresh.
    proc = _run([str(sam), "build", "--build-dir", str(build), "--no-cached", "--parallel"], timeout=600)
    assert proc.returncode == 0, f"sam build failed:\n{_output(proc)}"
    assert (build / "template.yaml").is_file()

    latchkey = build / "LatchkeyLayer" / "python"
    assert (latchkey / "latchkey" / "signing.py").is_file()
    assert (latchkey / "jwt" / "__init__.py").is_file(), "PyJWT missing from the LatchkeyLayer"
    assert not list((latchkey / "latchkey").rglob("__pycache__")), "__pycache__ copied into the layer"
    rust = sorted((latchkey / "cryptography").rglob("_rust*.so"))
    assert rust, "cryptography's compiled extension missing from the LatchkeyLayer"
    assert _elf_machine(rust[0]) == EM_AARCH64, f"{rust[0].name} is not an AArch64 ELF binary"

    kafka = build / "KafkaLayer" / "python"
    assert (kafka / "confluent_kafka").is_dir()
    assert (kafka / "latchkey_kafka" / "__init__.py").is_file()
    assert any("aarch64" in p.name for p in (kafka / "confluent_kafka").rglob("*.so"))

    # Every native file in the layers targets Lambda (arm64, CPython 3.13 or the stable ABI).
    for layer in (latchkey, kafka):
        for so in layer.rglob("*.so*"):
            machine = _elf_machine(so)
            assert machine in (None, EM_AARCH64), f"{so.relative_to(build)}: ELF machine {machine}"
            assert ".cpython-" not in so.name or ".cpython-313-" in so.name, f"{so.relative_to(build)}"

    # The Kafka layer is unpacked over the latchkey layer: what both ship must be the same versions.
    def dists(layer: Path) -> set[str]:
        return {p.name for p in layer.glob("*.dist-info")}

    def names(found: set[str]) -> set[str]:
        return {d.rsplit("-", 1)[0].lower() for d in found}

    common = names(dists(latchkey)) & names(dists(kafka))
    assert {d for d in dists(kafka) if d.rsplit("-", 1)[0].lower() in common} <= dists(latchkey)

    assert (build / "JwksFunction" / "app.py").is_file()
    assert (build / "EventRelayFunction" / "app.py").is_file()
    for name in API_FUNCTIONS:
        fn = build / name
        assert (fn / "app.py").is_file(), f"{name}/app.py missing"
        assert not list(fn.rglob("confluent_kafka")), f"{name} must not ship confluent_kafka"
        assert not (fn / "latchkey").exists(), f"{name} must take latchkey from the layer"
