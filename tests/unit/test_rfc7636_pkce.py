"""PKCE (RFC 7636): the S256 transform, what an authorization request may send, and the downgrade rules
(RFC 9700 §4.8.2) applied when a code is redeemed."""

import pytest

from latchkey.errors import InvalidRequest
from latchkey.rfc7636 import METHODS, challenge_of, check_request, verify

# RFC 7636 Appendix B
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_challenge_of_matches_the_rfc_7636_appendix_b_vector():
    assert challenge_of(VERIFIER) == CHALLENGE


def test_only_s256_is_offered():
    assert METHODS == ("S256",)


# --- the authorization request (§4.3, §4.4) ---------------------------------------------------------------
@pytest.mark.parametrize("public", [True, False])
def test_an_s256_challenge_is_bound_to_the_code(public):
    assert check_request(CHALLENGE, "S256", public=public) == CHALLENGE


def test_a_confidential_client_may_leave_pkce_out():
    assert check_request(None, None, public=False) is None


def test_a_public_client_must_use_pkce():
    with pytest.raises(InvalidRequest) as caught:
        check_request(None, None, public=True)
    assert caught.value.error == "invalid_request"


@pytest.mark.parametrize("public", [True, False])
def test_plain_is_refused(public):
    with pytest.raises(InvalidRequest):
        check_request(VERIFIER, "plain", public=public)


@pytest.mark.parametrize("public", [True, False])
def test_a_missing_method_is_refused_because_it_would_mean_plain(public):
    with pytest.raises(InvalidRequest):
        check_request(CHALLENGE, None, public=public)


@pytest.mark.parametrize("method", ["s256", "S512", "S256 ", ""])
def test_other_method_names_are_refused(method):
    with pytest.raises(InvalidRequest):
        check_request(CHALLENGE, method, public=False)


def test_a_method_without_a_challenge_is_refused():
    with pytest.raises(InvalidRequest):
        check_request(None, "S256", public=False)


@pytest.mark.parametrize("challenge", [
    CHALLENGE[:-1],  # 42 characters
    CHALLENGE + "A",  # 44 characters
    CHALLENGE[:-1] + "=",  # padding is not base64url-without-padding
    CHALLENGE[:-1] + "+",  # base64, not base64url
    CHALLENGE[:-1] + "/",
    CHALLENGE + "\n",  # a trailing newline must not slip past the pattern
    "",
])
def test_a_challenge_that_is_not_43_base64url_characters_is_refused(challenge):
    with pytest.raises(InvalidRequest):
        check_request(challenge, "S256", public=True)


# --- redeeming a code (§4.6) and the downgrade rules --------------------------------------------------------
def test_the_right_verifier_redeems_a_code_bound_to_its_challenge():
    assert verify(VERIFIER, CHALLENGE) is True


def test_a_code_without_a_challenge_is_redeemed_without_a_verifier():
    assert verify(None, None) is True


def test_a_code_bound_to_a_challenge_needs_the_verifier():
    assert verify(None, CHALLENGE) is False


def test_a_verifier_for_a_code_issued_without_a_challenge_is_refused():
    """RFC 9700 §4.8.2: the challenge may have been stripped from the authorization request."""
    assert verify(VERIFIER, None) is False


def test_a_wrong_verifier_is_refused():
    other = "A" * 43
    assert verify(other, CHALLENGE) is False


def test_sending_the_challenge_as_the_verifier_is_refused():
    assert verify(CHALLENGE, CHALLENGE) is False


@pytest.mark.parametrize("verifier", [
    "a" * 42,  # §4.1: at least 43 characters
    "a" * 129,  # and at most 128
    "a" * 42 + " ",
    "a" * 42 + "+",  # not an unreserved character
    "é" * 43,
    "",
])
def test_verifiers_outside_the_rfc_grammar_are_refused(verifier):
    assert verify(verifier, challenge_of("a" * 43)) is False


@pytest.mark.parametrize("length", [43, 128])
def test_verifiers_of_the_boundary_lengths_with_every_unreserved_character_work(length):
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
    verifier = (alphabet * 3)[:length]
    assert verify(verifier, challenge_of(verifier)) is True


def test_a_verifier_with_a_trailing_newline_is_refused():
    verifier = "a" * 43
    assert verify(verifier + "\n", challenge_of(verifier)) is False
