"""The repository layout that `sam build` relies on stays consistent with pyproject.toml and template.yaml.

* the layers' requirements.txt repeat pyproject.toml's pins exactly;
* every function directory is a CodeUri of exactly one function and vice versa, and every function
  and layer is built by its Makefile (no container, no local python3.13 needed);
* the template keeps its operational invariants (runtime, arm64, tracing, log retention, table
  TTL/stream/GSI, only the event relay in the VPC and with Kafka);
* samconfig.toml names no bucket and invents no values for the account-specific parameters.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from devstack.template import ROOT, functions, load

PYPROJECT = ROOT / "pyproject.toml"
FUNCTIONS_DIR = ROOT / "functions"
LAYERS = {"LatchkeyLayer": ROOT / "layers/latchkey", "KafkaLayer": ROOT / "layers/kafka"}
LAYER_PACKAGES = {"LatchkeyLayer": "latchkey", "KafkaLayer": "latchkey_kafka"}
RELAY = "EventRelayFunction"
MSK_PARAMETERS = ("MskClusterArn", "KafkaBootstrap", "MskSubnetIds", "MskSecurityGroupId")

Pin = tuple[str, frozenset[str], str]


def _pin(line: str, origin: str) -> Pin:
    req = Requirement(line)
    specs = list(req.specifier)
    assert len(specs) == 1 and specs[0].operator == "==", f"{origin}: {line!r} is not an exact == pin"
    assert req.marker is None and req.url is None, f"{origin}: {line!r} carries a marker or URL"
    return canonicalize_name(req.name), frozenset(canonicalize_name(e) for e in req.extras), specs[0].version


def _pins(lines: list[str], origin: str) -> set[Pin]:
    pins = [_pin(line, origin) for line in lines]
    names = [name for name, _, _ in pins]
    assert len(names) == len(set(names)), f"{origin}: a package is listed twice"
    return set(pins)


def _requirements_file(path: Path) -> set[Pin]:
    lines = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        assert not line.startswith("-"), f"{path}: pip options ({line!r}) belong in the Makefile"
        lines.append(line)
    return _pins(lines, str(path.relative_to(ROOT)))


def _pyproject() -> dict[str, Any]:
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))


def _resources() -> dict[str, dict[str, Any]]:
    return load()["Resources"]


def _of_type(kind: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in _resources().items() if res["Type"] == kind}


def _ref(value: Any) -> str | None:
    return value.get("Ref") if isinstance(value, dict) else None


def _makefile_targets(path: Path) -> set[str]:
    targets = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9_%.\- ]+?)\s*:(?!=)", line)
        if match and not line.startswith((".PHONY", "\t")):
            targets.update(match.group(1).split())
    return targets


def _builds(path: Path, logical_id: str) -> bool:
    targets = _makefile_targets(path)
    wanted = f"build-{logical_id}"
    return wanted in targets or any(
        "%" in t and re.fullmatch(re.escape(t).replace("%", ".+"), wanted) for t in targets)


# ------------------------------------------------------------------------------------------------
# (a), (b) layer requirements == pyproject pins
# ------------------------------------------------------------------------------------------------

def test_latchkey_layer_requirements_pin_exactly_the_project_dependencies():
    project = _pins(_pyproject()["project"]["dependencies"], "pyproject.toml [project] dependencies")
    layer = _requirements_file(LAYERS["LatchkeyLayer"] / "requirements.txt")
    assert layer == project, (f"only in layers/latchkey/requirements.txt: {sorted(layer - project)}; "
                              f"only in pyproject.toml: {sorted(project - layer)}")


def test_kafka_layer_requirements_pin_exactly_the_kafka_extra():
    extra = _pins(_pyproject()["project"]["optional-dependencies"]["kafka"], "pyproject.toml kafka extra")
    layer = _requirements_file(LAYERS["KafkaLayer"] / "requirements.txt")
    assert layer == extra, (f"only in layers/kafka/requirements.txt: {sorted(layer - extra)}; "
                            f"only in pyproject.toml: {sorted(extra - layer)}")


def test_layers_do_not_overlap_in_what_they_pin():
    latchkey = {name for name, _, _ in _requirements_file(LAYERS["LatchkeyLayer"] / "requirements.txt")}
    kafka = {name for name, _, _ in _requirements_file(LAYERS["KafkaLayer"] / "requirements.txt")}
    assert not latchkey & kafka


# ------------------------------------------------------------------------------------------------
# (c) functions/ <-> template CodeUri, Makefiles; layers' Makefiles
# ------------------------------------------------------------------------------------------------

def _function_dirs() -> list[Path]:
    return sorted(p for p in FUNCTIONS_DIR.iterdir() if p.is_dir() and not p.name.startswith((".", "__")))


def test_every_function_directory_has_a_makefile_and_app_py():
    dirs = _function_dirs()
    assert dirs, "no function directories under functions/"
    for d in dirs:
        assert (d / "Makefile").is_file(), f"{d.relative_to(ROOT)} has no Makefile"
        assert (d / "app.py").is_file(), f"{d.relative_to(ROOT)} has no app.py"


def test_function_makefiles_are_identical():
    texts = {d.name: (d / "Makefile").read_text(encoding="utf-8") for d in _function_dirs()}
    assert len(set(texts.values())) == 1, f"functions/*/Makefile differ: {sorted(texts)}"


def test_function_directories_and_code_uris_match_one_to_one():
    code_uris: dict[str, list[str]] = {}
    for name, res in functions().items():
        uri = res["Properties"]["CodeUri"]
        assert isinstance(uri, str), f"{name}: CodeUri must be a local path, got {uri!r}"
        code_uris.setdefault(Path(uri).as_posix().rstrip("/"), []).append(name)
    dirs = {d.relative_to(ROOT).as_posix() for d in _function_dirs()}

    shared = {uri: names for uri, names in code_uris.items() if len(names) > 1}
    assert not shared, f"CodeUri shared by several functions: {shared}"
    unused, unknown = dirs - code_uris.keys(), code_uris.keys() - dirs
    assert not unused, f"function directories no function uses: {sorted(unused)}"
    assert not unknown, f"CodeUris that are not function directories: {sorted(unknown)}"


def test_every_function_makefile_builds_its_logical_id_and_handler_exists():
    for name, res in functions().items():
        props = res["Properties"]
        code = ROOT / props["CodeUri"]
        assert _builds(code / "Makefile", name), f"{code.relative_to(ROOT)}/Makefile has no build-{name} rule"
        module = props["Handler"].rsplit(".", 1)[0].replace(".", "/") + ".py"
        assert (code / module).is_file(), f"{name}: handler module {module} missing in {props['CodeUri']}"


def test_layer_makefiles_build_lambda_wheels_and_copy_the_package():
    layers = _of_type("AWS::Serverless::LayerVersion")
    assert set(layers) == set(LAYERS)
    for name, res in layers.items():
        content = ROOT / res["Properties"]["ContentUri"]
        assert content == LAYERS[name]
        makefile = content / "Makefile"
        assert makefile.is_file() and (content / "requirements.txt").is_file()
        assert _builds(makefile, name), f"{makefile.relative_to(ROOT)} has no build-{name} rule"
        text = makefile.read_text(encoding="utf-8")
        for flag in ("--platform manylinux2014_aarch64", "--platform manylinux_2_28_aarch64",
                     "--python-version 3.13", "--implementation cp", "--only-binary=:all:",
                     '--target "$(ARTIFACTS_DIR)/python"', "-r requirements.txt"):
            assert flag in text, f"{makefile.relative_to(ROOT)} lacks {flag}"
        assert (content / LAYER_PACKAGES[name] / "__init__.py").is_file()
        assert LAYER_PACKAGES[name] in text


# ------------------------------------------------------------------------------------------------
# (d) BuildMethod, (e) Globals
# ------------------------------------------------------------------------------------------------

def test_every_function_and_layer_is_built_by_its_makefile():
    built = {**functions(), **_of_type("AWS::Serverless::LayerVersion")}
    assert built
    for name, res in built.items():
        method = (res.get("Metadata") or {}).get("BuildMethod")
        assert method == "makefile", f"{name}: Metadata.BuildMethod is {method!r}, not makefile"


def test_globals_python313_arm64_tracing():
    glob = load()["Globals"]["Function"]
    assert glob["Runtime"] == "python3.13"
    assert glob["Architectures"] == ["arm64"]
    assert glob["Tracing"] == "Active"
    for name, res in functions().items():
        props = res["Properties"]
        assert props.get("Runtime", "python3.13") == "python3.13", name
        assert props.get("Architectures", ["arm64"]) == ["arm64"], name
        assert props.get("Tracing", "Active") == "Active", name
    for name, res in _of_type("AWS::Serverless::LayerVersion").items():
        assert res["Properties"]["CompatibleRuntimes"] == ["python3.13"], name
        assert res["Properties"]["CompatibleArchitectures"] == ["arm64"], name


# ------------------------------------------------------------------------------------------------
# (f) logs, (g) table, (h) VPC / Kafka
# ------------------------------------------------------------------------------------------------

def test_every_function_logs_to_its_own_log_group_with_retention():
    resources = _resources()
    seen: dict[str, str] = {}
    for name, res in functions().items():
        group = _ref((res["Properties"].get("LoggingConfig") or {}).get("LogGroup"))
        assert group, f"{name}: LoggingConfig.LogGroup must !Ref a log group in this template"
        assert group not in seen, f"{name} and {seen.get(group)} share log group {group}"
        seen[group] = name
        log_group = resources.get(group)
        assert log_group and log_group["Type"] == "AWS::Logs::LogGroup", f"{name}: {group} is not a LogGroup"
        assert log_group["Properties"].get("RetentionInDays"), f"{group} has no RetentionInDays"


@pytest.fixture
def table() -> dict[str, Any]:
    tables = _of_type("AWS::DynamoDB::Table")
    assert len(tables) == 1, f"single-table design, found {sorted(tables)}"
    return next(iter(tables.values()))["Properties"]


def test_table_has_ttl_stream_and_gsi(table):
    ttl = table["TimeToLiveSpecification"]
    assert ttl["AttributeName"] and ttl["Enabled"] is True
    assert table["StreamSpecification"]["StreamViewType"] == "NEW_IMAGE"
    gsis = table.get("GlobalSecondaryIndexes") or []
    assert gsis, "the table needs its GSI"
    defined = {a["AttributeName"] for a in table["AttributeDefinitions"]}
    for gsi in gsis:
        assert {k["AttributeName"] for k in gsi["KeySchema"]} <= defined, gsi["IndexName"]


def test_only_the_event_relay_is_in_the_vpc_and_has_the_kafka_layer():
    glob_layers = load()["Globals"]["Function"].get("Layers") or []
    assert {"Ref": "KafkaLayer"} not in glob_layers, "the Kafka layer must not be global"
    assert {"Ref": "LatchkeyLayer"} in glob_layers
    fns = functions()
    assert RELAY in fns
    for name, res in fns.items():
        props = res["Properties"]
        has_kafka = {"Ref": "KafkaLayer"} in (props.get("Layers") or [])
        if name == RELAY:
            assert "VpcConfig" in props and has_kafka, f"{name} needs VpcConfig and the KafkaLayer"
        else:
            assert "VpcConfig" not in props, f"{name} must stay out of the VPC"
            assert not has_kafka, f"{name} must not carry the KafkaLayer"
    assert "VpcConfig" not in load()["Globals"]["Function"]


# ------------------------------------------------------------------------------------------------
# samconfig.toml
# ------------------------------------------------------------------------------------------------

def test_samconfig_environments():
    config = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    assert str(config["version"]) == "0.1"
    required = {p for p, spec in load()["Parameters"].items() if "Default" not in spec}
    assert required == set(MSK_PARAMETERS)
    for env, stack in (("default", "latchkey-dev"), ("dev", "latchkey-dev"), ("prod", "latchkey-prod")):
        section = config[env]
        assert section["global"]["parameters"]["stack_name"] == stack
        assert section["validate"]["parameters"]["lint"] is True
        assert section["build"]["parameters"]["parallel"] is True
        deploy = section["deploy"]["parameters"]
        assert deploy["resolve_s3"] is True
        assert "s3_bucket" not in deploy, f"{env}: no hard-coded bucket (resolve_s3 manages it)"
        assert deploy["capabilities"] in ("CAPABILITY_IAM", "CAPABILITY_NAMED_IAM")
        overrides = deploy["parameter_overrides"]
        assert "Namespace=" in overrides
        for name in required:
            assert f"{name}=" not in overrides, f"{env}: {name} is account specific; pass it at deploy time"
    assert config["prod"]["build"]["parameters"]["cached"] is False
