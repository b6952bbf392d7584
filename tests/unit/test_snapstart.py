"""SnapStart readiness: the hot functions publish versions with SnapStart, importing any handler creates
no random value, and a restored instance starts clean."""

import json
import subprocess
import sys

import snapshot_restore_py

from devstack.template import ROOT, functions
from latchkey import services, snapstart
from latchkey.observability import metrics

HOT = {"TokenFunction", "IntrospectFunction", "JwksFunction", "OpenIdConfigurationFunction", "UserinfoFunction",
       "RevokeFunction", "TsbTokenFunction"}

_IMPORT_ALL = r"""
import importlib.util, json, os, random, secrets, sys, uuid
import boto3  # third party: multiprocessing (via s3transfer) draws its authkey at import; not ours to judge
sys.path.insert(0, ROOT)
used = []

def forbidden(name):
    def call(*args, **kwargs):
        used.append(name)
        raise AssertionError(f"{name} called at import")
    return call

for module, name in ((os, "urandom"), (os, "getrandom"), (random, "random"), (random, "getrandbits"),
                     (random, "randbytes"), (random, "seed"), (secrets, "token_bytes"), (uuid, "uuid4")):
    setattr(module, name, forbidden(f"{module.__name__}.{name}"))
for index, path in enumerate(json.loads(sys.argv[1])):
    spec = importlib.util.spec_from_file_location(f"snapstart_check_{index}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(module.handler), path
print(json.dumps(used))
"""


def test_the_hot_functions_publish_versions_with_snapstart():
    found = {name for name, resource in functions().items()
             if resource["Properties"].get("SnapStart") == {"ApplyOn": "PublishedVersions"}}
    assert found == HOT
    for name in HOT:
        assert functions()[name]["Properties"]["AutoPublishAlias"] == "live", name


def test_importing_every_handler_creates_no_random_value():
    paths = sorted({str(ROOT / f["Properties"]["CodeUri"] / "app.py") for f in functions().values()})
    env = {"STORE": "memory", "LOCAL_KEK": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
           "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", _IMPORT_ALL.replace("ROOT", repr(str(ROOT))), json.dumps(paths)],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    assert len(paths) == len({f["Properties"]["CodeUri"] for f in functions().values()})


def test_a_restored_instance_starts_clean(monkeypatch):
    monkeypatch.setattr(snapshot_restore_py, "_after_restore_registry", [])
    assert snapstart.register() is True
    [(hook, args, kwargs)] = snapshot_restore_py.get_after_restore()
    assert hook is snapstart.after_restore
    services.override(settings="filled before the snapshot")
    metrics._cold = False
    hook(*args, **kwargs)
    assert services._cache == {}
    assert metrics._cold is True


def test_without_the_runtime_module_registering_does_nothing(monkeypatch):
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)
    assert snapstart.register() is False
