"""Keyed hashing of high-entropy secrets and memory-hard password hashes."""

import pytest

from latchkey.crypto import passwords, secrets
from latchkey.crypto.b64 import b64url_decode

KEY = bytes(range(32))


def test_new_secret_has_prefix_and_256_bits():
    value = secrets.new_secret("cs")
    assert value.startswith("lk_cs_")
    assert len(b64url_decode(value.removeprefix("lk_cs_"))) == 32
    assert secrets.new_secret("cs") != value


def test_new_secret_refuses_low_entropy():
    with pytest.raises(ValueError, match="128 bits"):
        secrets.new_secret(nbytes=8)


def test_keyed_hash_is_deterministic_keyed_and_verifies_in_constant_time():
    stored = secrets.keyed_hash(KEY, "s3cret")
    assert stored == secrets.keyed_hash(KEY, "s3cret")
    assert stored != secrets.keyed_hash(bytes(32), "s3cret")
    assert "s3cret" not in stored
    assert secrets.verify_keyed_hash(KEY, "s3cret", stored) is True
    assert secrets.verify_keyed_hash(KEY, "s3cret!", stored) is False


def test_keyed_hash_refuses_short_keys():
    with pytest.raises(ValueError, match="256 bits"):
        secrets.keyed_hash(b"short", "x")


def test_password_hash_uses_owasp_scrypt_parameters_and_verifies():
    encoded = passwords.hash_password("correct horse")
    assert encoded.startswith("$scrypt$ln=15,r=8,p=3$")  # OWASP's 32 MiB row
    assert passwords.verify_password("correct horse", encoded) is True
    assert passwords.verify_password("correct horse!", encoded) is False
    assert passwords.hash_password("correct horse") != encoded  # salted
    assert passwords.needs_rehash(encoded) is False


def test_every_owasp_row_is_as_strong_as_the_default_and_old_hashes_still_verify():
    assert passwords.OWASP_P == {17: 1, 16: 2, 15: 3, 14: 5, 13: 10}
    assert passwords.hash_password("pw", log2_n=16).startswith("$scrypt$ln=16,r=8,p=2$")
    old = passwords.hash_password("pw", log2_n=17)  # the former default, 128 MiB
    assert old.startswith("$scrypt$ln=17,r=8,p=1$")
    assert passwords.verify_password("pw", old) is True and passwords.needs_rehash(old) is False
    fewer_blocks = passwords.hash_password("pw", log2_n=16, r=4, p=8)
    assert passwords.needs_rehash(fewer_blocks) is True


def test_weaker_parameters_need_rehash_and_malformed_hashes_never_verify():
    weak = passwords.hash_password("pw", log2_n=10)
    assert passwords.verify_password("pw", weak) is True
    assert passwords.needs_rehash(weak) is True
    assert passwords.verify_password("pw", "$bcrypt$nonsense") is False
    assert passwords.verify_password("pw", "") is False
