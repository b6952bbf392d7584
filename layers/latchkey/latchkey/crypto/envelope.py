"""Envelope encryption of private key material.

A fresh 256-bit data key encrypts the plaintext with AES-256-GCM; the data key itself is wrapped by a
key-encryption key: a KMS key in AWS (:class:`KmsEnvelope`) or a local key in the local stack
(:class:`LocalEnvelope`). The encryption context (e.g. the key id) is bound as GCM associated data and
as the KMS encryption context, so a sealed blob cannot be moved to another row.
"""

from __future__ import annotations

import json
import os
from typing import Any, Protocol

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .b64 import b64url_decode, b64url_encode


class Envelope(Protocol):
    def seal(self, plaintext: bytes, context: dict[str, str]) -> dict[str, str]: ...

    def open(self, sealed: dict[str, str], context: dict[str, str]) -> bytes: ...


def _aad(context: dict[str, str]) -> bytes:
    return json.dumps(context, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _encrypt(dek: bytes, plaintext: bytes, context: dict[str, str]) -> dict[str, str]:
    nonce = os.urandom(12)
    return {"iv": b64url_encode(nonce), "ct": b64url_encode(AESGCM(dek).encrypt(nonce, plaintext, _aad(context)))}


def _decrypt(dek: bytes, sealed: dict[str, str], context: dict[str, str]) -> bytes:
    return AESGCM(dek).decrypt(b64url_decode(sealed["iv"]), b64url_decode(sealed["ct"]), _aad(context))


class LocalEnvelope:
    """Data keys wrapped with AES-256-GCM under a local key-encryption key (local stack only)."""

    def __init__(self, kek: bytes) -> None:
        if len(kek) != 32:
            raise ValueError("the local key-encryption key must be 32 bytes")
        self._kek = AESGCM(kek)

    def seal(self, plaintext: bytes, context: dict[str, str]) -> dict[str, str]:
        dek = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(12)
        wrapped = nonce + self._kek.encrypt(nonce, dek, _aad(context))
        return {"kek": "local", "edk": b64url_encode(wrapped), **_encrypt(dek, plaintext, context)}

    def open(self, sealed: dict[str, str], context: dict[str, str]) -> bytes:
        if sealed.get("kek") != "local":
            raise ValueError("sealed by a different key-encryption key")
        wrapped = b64url_decode(sealed["edk"])
        dek = self._kek.decrypt(wrapped[:12], wrapped[12:], _aad(context))
        return _decrypt(dek, sealed, context)


class KmsEnvelope:
    """Data keys from KMS ``GenerateDataKey``, unwrapped with ``Decrypt`` under the same context."""

    def __init__(self, kms_client: Any, key_id: str) -> None:
        self._kms = kms_client
        self._key_id = key_id

    def seal(self, plaintext: bytes, context: dict[str, str]) -> dict[str, str]:
        answer = self._kms.generate_data_key(KeyId=self._key_id, KeySpec="AES_256", EncryptionContext=context)
        return {"kek": "kms", "edk": b64url_encode(answer["CiphertextBlob"]),
                **_encrypt(answer["Plaintext"], plaintext, context)}

    def open(self, sealed: dict[str, str], context: dict[str, str]) -> bytes:
        if sealed.get("kek") != "kms":
            raise ValueError("sealed by a different key-encryption key")
        try:
            answer = self._kms.decrypt(CiphertextBlob=b64url_decode(sealed["edk"]), EncryptionContext=context,
                                       KeyId=self._key_id)
        except Exception as exc:
            if _kms_unavailable(exc):  # KMS down or throttling: the sealed key is fine, retry later
                from ..store.dynamodb import unavailable

                raise unavailable("kms decrypt", exc) from exc
            raise  # InvalidCiphertextException & co.: the sealed key is damaged
        return _decrypt(answer["Plaintext"], sealed, context)


KMS_UNAVAILABLE_CODES = frozenset({"ThrottlingException", "KMSInternalException", "DependencyTimeoutException",
                                   "LimitExceededException", "ServiceUnavailable", "InternalFailure"})


def _kms_unavailable(exc: Exception) -> bool:
    from botocore.exceptions import ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as BotocoreConnectionError

    if isinstance(exc, BotocoreConnectionError | HTTPClientError):
        return True
    return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in KMS_UNAVAILABLE_CODES
