"""Nothing expensive or random at import time (CONVENTIONS §7, SnapStart-safe): importing a handler
opens no connection, generates or reads no key and fills none of Latchkey's service caches."""

import importlib.util
import socket

import pytest

from devstack.template import ROOT, functions
from latchkey import services
from latchkey.crypto import keys

FUNCTION_DIRS = sorted({(ROOT / f["Properties"]["CodeUri"]) for f in functions().values()})


@pytest.mark.parametrize("directory", FUNCTION_DIRS, ids=lambda d: d.name)
def test_importing_a_handler_does_no_io(directory, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("I/O or key material at import time")

    monkeypatch.setattr(socket.socket, "connect", forbidden)
    monkeypatch.setattr(keys, "generate", forbidden)
    monkeypatch.setattr(keys, "private_from_der", forbidden)
    services.reset()
    spec = importlib.util.spec_from_file_location(f"import_check_{directory.name}", directory / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(module.handler)
    assert services._cache == {}


def test_api_functions_never_import_kafka():
    for directory in FUNCTION_DIRS:
        source = (directory / "app.py").read_text()
        if directory.name == "event_relay":
            assert "latchkey_kafka" in source
        else:
            assert "kafka" not in source.lower(), directory.name
    for path in (ROOT / "layers" / "latchkey" / "latchkey").rglob("*.py"):
        assert "confluent_kafka" not in path.read_text(), path
