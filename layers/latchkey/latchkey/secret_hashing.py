"""The server-side key under which high-entropy secrets are hashed (CONVENTIONS §6).

Generated once per deployment, stored in the table envelope-encrypted (KMS in AWS, the local
key-encryption key in the local stack), created with a conditional write so concurrent first calls
agree on one key, and cached per process by :mod:`latchkey.services`.
"""

from __future__ import annotations

import os

from .crypto.envelope import Envelope
from .store import ENTITY, PK, SK, ConditionFailed, ItemStore, NotExists, Put

KEY_PK, KEY_SK = "SECRETKEY", "HMAC"
_CONTEXT = {"purpose": "latchkey-secret-hash-key"}


def load_or_create(items: ItemStore, envelope: Envelope) -> bytes:
    found = items.get(KEY_PK, KEY_SK)
    if found is None:
        key = os.urandom(32)
        try:
            items.write(Put({PK: KEY_PK, SK: KEY_SK, ENTITY: "secret_hash_key", "sealed": envelope.seal(key, _CONTEXT)},
                            condition=NotExists()))
            return key
        except ConditionFailed:
            found = items.get(KEY_PK, KEY_SK)  # another instance created it first
        if found is None:
            raise RuntimeError("the secret hashing key vanished")
    return envelope.open(found["sealed"], _CONTEXT)
