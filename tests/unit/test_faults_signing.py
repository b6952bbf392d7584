"""A signing key damaged or deleted in storage: the token endpoint answers 500 ``server_error``, signs
nothing, writes no event and counts the alarmed metric ``SigningKeyUnavailable``; it never signs with a
key that is not exactly the published one. Tokens signed by a key whose row is gone no longer verify
(introspection ``active: false``). KMS being unreachable is not damage: 503 and ``DependencyUnavailable``.
"""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from latchkey import services
from latchkey.crypto.b64 import b64url_decode, b64url_encode
from latchkey.crypto.envelope import KmsEnvelope
from latchkey.errors import ServerError, TemporarilyUnavailable
from latchkey.observability import metrics
from latchkey.signing import KEYS_PARTITION, KeyRing, KeyStatus
from latchkey.store import Delete, Put
from tests.unit import oauth_support as s


def drop_pending_metrics() -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("METRICS_DISABLED", "true")
        metrics.flush()


@pytest.fixture
def store(monkeypatch):
    drop_pending_metrics()
    for found in s.environment(monkeypatch):
        monkeypatch.setenv("KEY_CACHE_TTL", "0")  # every request re-reads the key set
        monkeypatch.setenv("METRICS_DISABLED", "false")
        services.reset()
        services.override(item_store=found)
        yield found
    drop_pending_metrics()


@pytest.fixture
def machine(store):
    _client, secret = s.add_client("machine", scope="read")
    return {"Authorization": s.basic("machine", secret)}


def emitted(captured: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for line in captured.splitlines():
        if line.startswith("{") and "_aws" in line:
            blob = json.loads(line)
            for metric in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                found[metric["Name"]] = found.get(metric["Name"], 0) + blob[metric["Name"]]
    found.pop("ColdStart", None)
    return found


def current(alg: str = "ES256") -> Any:
    return services.key_store().load().current(alg)


def store_record(record: Any) -> None:
    services.item_store().write(Put(record.to_item()))


def flip_byte(text: str) -> str:
    raw = bytearray(b64url_decode(text))
    raw[len(raw) // 2] ^= 0x01
    return b64url_encode(bytes(raw))


def assert_refused_unsigned(store, machine, capsys) -> None:
    events_before = len(store.events())
    capsys.readouterr()
    answer = s.call("token", {"grant_type": "client_credentials"}, headers=machine)
    assert (answer.status, answer.error) == (500, "server_error"), answer.body
    assert "access_token" not in answer.body
    assert "Traceback" not in answer.body and "kid" not in answer.body  # details only in the log
    assert len(store.events()) == events_before  # nothing signed, so nothing announced
    out = capsys.readouterr().out
    assert emitted(out) == {"SigningKeyUnavailable": 1, "Http5xx": 1}
    assert "signing key" in out or "key set" in out  # the log says what is wrong


@pytest.mark.parametrize("part", ["ct", "edk", "iv"])
def test_altered_sealed_private_key_is_a_server_error_and_nothing_is_signed(store, machine, capsys, part):
    record = current()
    store_record(replace(record, sealed={**record.sealed, part: flip_byte(record.sealed[part])}))
    assert_refused_unsigned(store, machine, capsys)


def test_another_keys_sealed_blob_moved_into_the_current_row_does_not_open(store, machine, capsys):
    record, upcoming = current(), services.key_store().load().of("ES256", KeyStatus.NEXT)[0]
    store_record(replace(record, sealed=upcoming.sealed))  # bound to the other kid: GCM refuses it
    assert_refused_unsigned(store, machine, capsys)


def test_a_row_whose_public_key_is_not_its_private_key_signs_nothing(store, machine, capsys):
    record, upcoming = current(), services.key_store().load().of("ES256", KeyStatus.NEXT)[0]
    # The sealed key opens, but the published JWK is another key's: verifiers could never check the token.
    store_record(replace(record, public_jwk={**upcoming.public_jwk, "kid": record.kid}))
    assert_refused_unsigned(store, machine, capsys)


def test_garbage_that_decrypts_is_not_a_key(store, machine, capsys):
    record = current()
    store_record(replace(record, sealed=services.envelope().seal(b"not a DER private key",
                                                                {"kid": record.kid,
                                                                 "purpose": "latchkey-signing-key"})))
    assert_refused_unsigned(store, machine, capsys)


def test_deleted_key_row_refuses_to_sign_and_its_tokens_stop_verifying(store, machine, capsys):
    issued = s.call("token", {"grant_type": "client_credentials"}, headers=machine)
    assert issued.status == 200
    token = issued.json()["access_token"]
    assert s.call("introspect", {"token": token}, headers=machine).json()["active"] is True

    record = current()
    services.item_store().write(Delete(KEYS_PARTITION, f"KEY#{record.kid}"))
    assert_refused_unsigned(store, machine, capsys)
    introspected = s.call("introspect", {"token": token}, headers=machine)
    assert (introspected.status, introspected.json()) == (200, {"active": False})


def test_whole_key_partition_removed_is_still_refused_and_alarmed(store, machine, capsys):
    for row in services.item_store().query(KEYS_PARTITION):
        services.item_store().write(Delete(row["pk"], row["sk"]))
    capsys.readouterr()
    answer = s.call("token", {"grant_type": "client_credentials"}, headers=machine)
    # indistinguishable from a deployment whose first rotation has not run: 503, but alarmed all the same
    assert (answer.status, answer.error) == (503, "temporarily_unavailable")
    assert "access_token" not in answer.body
    assert emitted(capsys.readouterr().out) == {"SigningKeyUnavailable": 1, "Http5xx": 1}


def test_a_healthy_key_counts_nothing(store, machine, capsys):
    capsys.readouterr()
    assert s.call("token", {"grant_type": "client_credentials"}, headers=machine).status == 200
    assert emitted(capsys.readouterr().out) == {"Http2xx": 1}


# --- KMS: unreachable is not damaged ----------------------------------------------------------------------
class FakeKms:
    def __init__(self, fault: Any = None) -> None:
        self.fault = fault
        self.keys: dict[bytes, bytes] = {}

    def generate_data_key(self, **_params: Any) -> dict[str, bytes]:
        plaintext = bytes(range(32))
        blob = b"wrapped-" + base64.b64encode(plaintext)
        self.keys[blob] = plaintext
        return {"CiphertextBlob": blob, "Plaintext": plaintext}

    def decrypt(self, CiphertextBlob: bytes, **_params: Any) -> dict[str, bytes]:  # noqa: N803
        if self.fault is not None:
            raise self.fault()
        if CiphertextBlob not in self.keys:
            raise ClientError({"Error": {"Code": "InvalidCiphertextException", "Message": "no"}}, "Decrypt")
        return {"Plaintext": self.keys[CiphertextBlob]}


def kms_ring(kms: FakeKms) -> KeyRing:
    from latchkey.signing import ItemKeyStore, rotate
    from latchkey.store.memory import MemoryItemStore
    from tests.unit.test_signing_lifecycle import POLICY

    keys = ItemKeyStore(MemoryItemStore())
    envelope = KmsEnvelope(kms, "alias/test")
    rotate(keys, envelope, ("ES256",), POLICY, now=1_000)
    return KeyRing(keys, envelope, cache_ttl=0, now=lambda: 1_000)


@pytest.mark.parametrize("fault", [
    lambda: EndpointConnectionError(endpoint_url="https://kms.invalid"),
    lambda: ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "Decrypt"),
    lambda: ClientError({"Error": {"Code": "KMSInternalException", "Message": "oops"}}, "Decrypt"),
], ids=["connection", "throttling", "kms-internal"])
def test_kms_unreachable_is_temporarily_unavailable_not_damage(fault):
    drop_pending_metrics()
    kms = FakeKms()
    ring = kms_ring(kms)
    kms.fault = fault
    with pytest.raises(TemporarilyUnavailable) as raised:
        ring.signing_key("ES256")
    assert raised.value.headers == {"Retry-After": "1"}
    assert metrics.flush() == {"DependencyUnavailable": ("Count", 1.0)}
    kms.fault = None
    assert ring.signing_key("ES256").kid == ring.keyset().current("ES256").kid  # back: it signs again


def test_kms_refusing_the_data_key_is_damage():
    drop_pending_metrics()
    kms = FakeKms()
    ring = kms_ring(kms)
    kms.keys.clear()  # the wrapped data key no longer decrypts (InvalidCiphertextException)
    with pytest.raises(ServerError):
        ring.signing_key("ES256")
    assert metrics.flush() == {"SigningKeyUnavailable": ("Count", 1.0)}
