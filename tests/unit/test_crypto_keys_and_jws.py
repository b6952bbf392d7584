"""Token crypto: RFC 7638 thumbprints, JWK export (RFC 7518 §6), JWS sign/verify (RFC 7515/7519/8725)."""

import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from latchkey.crypto import jws, keys
from latchkey.crypto.b64 import b64url_decode

RFC7638_N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n"
    "3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgd"
    "AZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur"
    "-kEgU8awapJzKnqDKgw"
)
ISS = "https://auth.example.com"


def test_rfc7638_section_3_1_example_thumbprint():
    public = rsa.RSAPublicNumbers(e=65537, n=int.from_bytes(b64url_decode(RFC7638_N), "big")).public_key()
    assert keys.thumbprint(public) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    assert keys.public_jwk_members(public) == {"e": "AQAB", "kty": "RSA", "n": RFC7638_N}


def test_es256_jwk_has_p256_coordinates_of_32_bytes_and_no_private_part():
    private = keys.generate("ES256")
    jwk = keys.public_jwk(private.public_key(), kid="k1", alg="ES256")
    assert set(jwk) == {"kty", "crv", "x", "y", "kid", "alg", "use"}
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("EC", "P-256", "ES256", "sig")
    assert len(b64url_decode(jwk["x"])) == 32 and len(b64url_decode(jwk["y"])) == 32
    assert "d" not in jwk


def test_rs256_key_is_2048_bits_and_roundtrips_through_der():
    private = keys.generate("RS256")
    assert private.key_size == 2048
    again = keys.private_from_der(keys.private_to_der(private))
    assert keys.thumbprint(again.public_key()) == keys.thumbprint(private.public_key())


def test_unknown_algorithm_is_refused():
    with pytest.raises(ValueError, match="unsupported"):
        keys.generate("HS256")


@pytest.fixture(scope="module")
def es256():
    private = keys.generate("ES256")
    kid = keys.thumbprint(private.public_key())
    return private, {kid: jws.VerificationKey(kid, "ES256", private.public_key())}, kid


def _claims(**extra):
    now = int(time.time())
    return {"iss": ISS, "sub": "u1", "iat": now, "exp": now + 60, **extra}


def test_sign_then_verify_returns_claims_and_header_names_kid_and_typ(es256):
    private, ring, kid = es256
    token = jws.sign(_claims(), key=private, kid=kid, alg="ES256", typ="at+jwt")
    assert jwt.get_unverified_header(token) == {"alg": "ES256", "kid": kid, "typ": "at+jwt"}
    assert jws.verify(token, ring, issuer=ISS, typ="at+jwt")["sub"] == "u1"


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda c: {**c, "iss": "https://evil.example"}, "issuer"),
        (lambda c: {**c, "exp": c["iat"] - 120}, "expired"),
        (lambda c: {k: v for k, v in c.items() if k != "exp"}, "exp"),
    ],
)
def test_verify_rejects_bad_claims(es256, mutate, reason):
    private, ring, kid = es256
    token = jws.sign(mutate(_claims()), key=private, kid=kid, alg="ES256")
    with pytest.raises(jws.TokenInvalid, match=reason):
        jws.verify(token, ring, issuer=ISS)


def test_verify_rejects_unknown_kid_wrong_typ_and_alg_none(es256):
    private, ring, kid = es256
    other = keys.generate("ES256")
    with pytest.raises(jws.TokenInvalid, match="unknown kid"):
        jws.verify(jws.sign(_claims(), key=other, kid="nope", alg="ES256"), ring, issuer=ISS)
    with pytest.raises(jws.TokenInvalid, match="typ"):
        jws.verify(jws.sign(_claims(), key=private, kid=kid, alg="ES256", typ="JWT"), ring, issuer=ISS, typ="at+jwt")
    unsigned = jwt.encode(_claims(), None, algorithm="none", headers={"kid": kid})
    with pytest.raises(jws.TokenInvalid, match="alg"):
        jws.verify(unsigned, ring, issuer=ISS)


def test_verify_rejects_a_signature_by_another_key_under_our_kid(es256):
    _, ring, kid = es256
    forged = jws.sign(_claims(), key=keys.generate("ES256"), kid=kid, alg="ES256")
    with pytest.raises(jws.TokenInvalid, match="Signature"):
        jws.verify(forged, ring, issuer=ISS)


def test_verify_rejects_garbage():
    with pytest.raises(jws.TokenInvalid, match="malformed"):
        jws.verify("not.a.jwt", {}, issuer=ISS)


# --- our JWS against PyJWT, the reference implementation ------------------------------------------------
@pytest.fixture(scope="module")
def rs256():
    private = keys.generate("RS256")
    kid = keys.thumbprint(private.public_key())
    return private, {kid: jws.VerificationKey(kid, "RS256", private.public_key())}, kid


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_tokens_interoperate_with_pyjwt_both_ways(alg, es256, rs256):
    private, ring, kid = es256 if alg == "ES256" else rs256
    ours = jws.sign(_claims(aud="api"), key=private, kid=kid, alg=alg, typ="at+jwt")
    assert jwt.decode(ours, private.public_key(), algorithms=[alg], audience="api")["sub"] == "u1"
    assert jwt.get_unverified_header(ours) == {"alg": alg, "kid": kid, "typ": "at+jwt"}
    theirs = jwt.encode(_claims(aud=["other", "api"]), private, algorithm=alg, headers={"kid": kid})
    assert jws.verify(theirs, ring, issuer=ISS, audience="api")["aud"] == ["other", "api"]


def test_public_keys_come_back_from_our_jwks(es256, rs256):
    for private, _ring, kid in (es256, rs256):
        jwk = keys.public_jwk(private.public_key(), kid=kid, alg="x")
        assert keys.thumbprint(keys.public_from_jwk(jwk)) == kid
    with pytest.raises(ValueError, match="unsupported"):
        keys.public_from_jwk({"kty": "oct", "k": "c2VjcmV0"})


def _forged(header: dict, claims: dict, signature: bytes = b"") -> str:
    import json

    from latchkey.crypto.b64 import b64url_encode

    def part(data):
        return b64url_encode(json.dumps(data).encode())

    return f"{part(header)}.{part(claims)}.{b64url_encode(signature)}"


def test_alg_none_and_hmac_with_the_public_key_are_refused(es256, rs256):
    from cryptography.hazmat.primitives import serialization

    _private, ring, kid = rs256
    with pytest.raises(jws.TokenInvalid, match="does not match"):
        jws.verify(_forged({"alg": "none", "kid": kid}, _claims()), ring, issuer=ISS)
    pem = _private.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    import hashlib
    import hmac as hmac_module

    header, claims = {"alg": "HS256", "kid": kid, "typ": "JWT"}, _claims()
    unsigned = _forged(header, claims).rsplit(".", 1)[0]
    mac = hmac_module.new(pem, unsigned.encode(), hashlib.sha256).digest()
    with pytest.raises(jws.TokenInvalid, match="does not match"):
        jws.verify(_forged(header, claims, mac), ring, issuer=ISS)


@pytest.mark.parametrize("token", ["", "a.b", "a.b.c.d", "!!!.e30.", "e30.e30.", "W10.e30.", "x" * 20000])
def test_malformed_tokens_are_token_invalid(token, es256):
    with pytest.raises(jws.TokenInvalid):
        jws.verify(token, es256[1], issuer=ISS)


def test_a_signature_of_the_wrong_length_or_a_changed_payload_fails(es256):
    private, ring, kid = es256
    token = jws.sign(_claims(), key=private, kid=kid, alg="ES256")
    head, payload, signature = token.split(".")
    with pytest.raises(jws.TokenInvalid, match="Signature"):
        jws.verify(f"{head}.{payload}.{signature[:-4]}", ring, issuer=ISS)
    other = jws.sign(_claims(sub="admin"), key=private, kid=kid, alg="ES256").split(".")[1]
    with pytest.raises(jws.TokenInvalid, match="Signature"):
        jws.verify(f"{head}.{other}.{signature}", ring, issuer=ISS)


@pytest.mark.parametrize(("claims", "reason"), [
    ({"iat": "1"}, "iat must be a number"), ({"exp": True}, "exp must be a number"),
    ({"nbf": 4102444800}, "not yet valid"), ({"iat": 4102444800}, "not yet valid"),
    ({"exp": 1000}, "expired"), ({"iss": "https://evil.example"}, "issuer")])
def test_claim_checks(claims, reason, es256):
    private, ring, kid = es256
    with pytest.raises(jws.TokenInvalid, match=reason):
        jws.verify(jws.sign(_claims(**claims), key=private, kid=kid, alg="ES256"), ring, issuer=ISS)


def test_a_missing_required_claim_and_a_foreign_audience(es256):
    private, ring, kid = es256
    claims = _claims()
    del claims["exp"]
    with pytest.raises(jws.TokenInvalid, match='"exp"'):
        jws.verify(jws.sign(claims, key=private, kid=kid, alg="ES256"), ring, issuer=ISS)
    token = jws.sign(_claims(aud="other"), key=private, kid=kid, alg="ES256")
    with pytest.raises(jws.TokenInvalid, match="Audience"):
        jws.verify(token, ring, issuer=ISS, audience="api")
    with pytest.raises(jws.TokenInvalid, match="audience"):
        jws.verify(jws.sign(_claims(aud=5), key=private, kid=kid, alg="ES256"), ring, issuer=ISS, audience="api")


def test_a_deeply_nested_header_or_payload_is_token_invalid_not_a_crash(es256):
    from latchkey.crypto.b64 import b64url_encode
    from latchkey.user_tokens import peek_claims

    deep = b64url_encode(b"[" * 5000 + b"]" * 5000)  # within MAX_TOKEN_LENGTH, past json's recursion limit
    good = jws.sign(_claims(), key=es256[0], kid=es256[2], alg="ES256").split(".")
    for token in (f"{deep}.{good[1]}.{good[2]}", f"{good[0]}.{deep}.{good[2]}"):
        with pytest.raises(jws.TokenInvalid):
            jws.verify(token, es256[1], issuer=ISS)
    assert peek_claims(f"{good[0]}.{deep}.{good[2]}") == {}
