"""The benchmark suite keeps working: ``python -m bench --short`` runs every section end to end (node-oidc-
provider, DynamoDB Local, fresh interpreters, sam build, the local gateway) and writes both reports.

Smoke only, as issue 8 asks: a short run's figures are noise, so no threshold is checked here; the
targets are judged by the full run whose report is committed (bench/report.md)."""

import json
import subprocess
import sys

import pytest

from devstack.template import ROOT, functions

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_the_short_benchmark_writes_every_section(tmp_path):
    done = subprocess.run([sys.executable, "-m", "bench", "--short", "--output", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    data = json.loads((tmp_path / "report.json").read_text())
    report = (tmp_path / "report.md").read_text()
    assert data["mode"] == "short"
    for section in ("## CPU per client_credentials token", "## Hot paths", "## Cold start and memory",
                    "## Package size", "## Through the local gateway", "## Where the time goes"):
        assert section in report, section
    assert data["client_credentials_cpu"]["latchkey"]["n"] > 0
    assert data["client_credentials_cpu"]["node_oidc_provider"]["n"] > 0
    assert set(data["coldstart"]["functions"]) == {f["Properties"]["CodeUri"].rsplit("/", 1)[-1]
                                                   for f in functions().values()}
    assert {p["path"] for p in data["hotpaths"]["paths"]} >= {"client_credentials", "refresh_token",
                                                             "introspection_jwt", "userinfo", "jwks", "discovery"}
    assert data["gateway"]["errors"] == 0
    assert all(isinstance(t["pass"], bool) and t["target"] for t in data["targets"])
    # the committed report is not touched by a run elsewhere
    assert (ROOT / "bench" / "report.json").read_text() != (tmp_path / "report.json").read_text()
