"""Envelope encryption of private keys: local key-encryption key and KMS (moto)."""

import boto3
import pytest
from cryptography.exceptions import InvalidTag
from moto import mock_aws

from latchkey.crypto.envelope import KmsEnvelope, LocalEnvelope

CONTEXT = {"kid": "k1", "purpose": "latchkey-signing-key"}


def test_local_envelope_roundtrip_and_context_binding():
    envelope = LocalEnvelope(bytes(32))
    sealed = envelope.seal(b"private key der", CONTEXT)
    assert sealed["kek"] == "local" and b"private" not in repr(sealed).encode()
    assert envelope.open(sealed, CONTEXT) == b"private key der"
    with pytest.raises(InvalidTag):
        envelope.open(sealed, {**CONTEXT, "kid": "k2"})  # cannot be moved to another row
    with pytest.raises(InvalidTag):
        LocalEnvelope(bytes([1]) * 32).open(sealed, CONTEXT)


def test_local_envelope_detects_tampering():
    envelope = LocalEnvelope(bytes(32))
    sealed = envelope.seal(b"abc", CONTEXT)
    tampered = {**sealed, "ct": sealed["ct"][:-2] + ("A" if sealed["ct"][-2] != "A" else "B") + sealed["ct"][-1]}
    with pytest.raises(InvalidTag):
        envelope.open(tampered, CONTEXT)


def test_local_kek_must_be_32_bytes():
    with pytest.raises(ValueError, match="32 bytes"):
        LocalEnvelope(b"short")


@mock_aws
def test_kms_envelope_roundtrip_under_encryption_context():
    kms = boto3.client("kms", region_name="us-east-1")
    key_id = kms.create_key(Description="latchkey test")["KeyMetadata"]["Arn"]
    envelope = KmsEnvelope(kms, key_id)
    sealed = envelope.seal(b"private key der", CONTEXT)
    assert sealed["kek"] == "kms"
    assert envelope.open(sealed, CONTEXT) == b"private key der"
    with pytest.raises(Exception, match="InvalidCiphertext|context"):
        envelope.open(sealed, {**CONTEXT, "kid": "other"})
    with pytest.raises(ValueError, match="different key-encryption key"):
        LocalEnvelope(bytes(32)).open(sealed, CONTEXT)
