"""RFC 7591 client metadata validation (latchkey.client_metadata)."""

import pytest

from latchkey.client_metadata import InvalidClientMetadata, InvalidRedirectUri, check_redirect_uri, parse_metadata


def test_minimal_metadata_gets_defaults():
    metadata = parse_metadata({"name": "App"})
    assert metadata.grant_types == ["client_credentials"]
    assert metadata.token_endpoint_auth_method == "client_secret_basic"
    assert metadata.id_token_signed_response_alg == "RS256"
    assert metadata.all_redirect_uris == []


def test_governor_redirect_uri_joins_the_list_without_duplicates():
    metadata = parse_metadata({"name": "App", "redirect_uri": "https://a.example/cb",
                               "redirect_uris": ["https://a.example/cb", "https://a.example/cb2"],
                               "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"]})
    assert metadata.all_redirect_uris == ["https://a.example/cb", "https://a.example/cb2"]


@pytest.mark.parametrize("uri", ["https://app.example/cb", "http://127.0.0.1:8080/callback", "http://[::1]/cb",
                                 "http://localhost:9000/api/auth/callback", "com.example.app:/oauth2redirect"])
def test_accepted_redirect_uris(uri):
    assert check_redirect_uri(uri) == uri


@pytest.mark.parametrize(("uri", "reason"), [
    ("https://app.example/cb#frag", "fragment"), ("http://app.example/cb", "loopback"),
    ("/relative/cb", "Invalid"), ("javascript:alert(1)", "Invalid"), ("https://app.example/c b", "Invalid"),
])
def test_refused_redirect_uris(uri, reason):
    with pytest.raises(InvalidRedirectUri, match=reason):
        parse_metadata({"name": "App", "redirect_uris": [uri], "grant_types": ["authorization_code"]})


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "App", "color": "red"}, "color: unknown field"),
    ({"name": 123}, "name"),
    ({"name": "x" * 256}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "App", "url": "not a url"}, "url"),
    ({"name": "App", "grant_types": ["password"]}, "unsupported grant_types: password"),
    ({"name": "App", "grant_types": ["implicit"]}, "implicit"),
    ({"name": "App", "response_types": ["token"]}, "response type"),
    ({"name": "App", "token_endpoint_auth_method": "client_secret_jwt"}, "token_endpoint_auth_method"),
    ({"name": "App", "token_endpoint_auth_method": "private_key_jwt"}, "jwks"),
    ({"name": "App", "jwks": {"keys": [{"kty": "EC", "d": "secret"}]}}, "public keys"),
    ({"name": "App", "jwks": {"keys": []}, "jwks_uri": "https://a.example/jwks"}, "jwks"),
    ({"name": "App", "jwks_uri": "http://a.example/jwks"}, "https"),
    ({"name": "App", "grant_types": ["authorization_code"]}, "redirect URI"),
    ({"name": "App", "token_endpoint_auth_method": "none"}, "public client"),
    ({"name": "App", "scope": "a\tb"}, "scope"),
    ({"name": "App", "access_token_ttl": 10}, "access_token_ttl"),
    ({"name": "App", "redirect_uris": 5}, "redirect_uris"),
    ({"name": "App", "redirect_uris": [5]}, "redirect_uris"),
    ({"name": "App", "access_token_ttl": "3600"}, "access_token_ttl"),
    ({"name": "App", "id_token_signed_response_alg": "none"}, "RS256 or ES256"),
])
def test_invalid_metadata_names_the_field(body, field):
    with pytest.raises(InvalidClientMetadata) as refused:
        parse_metadata(body)
    assert field in refused.value.description
    assert refused.value.error == "invalid_client_metadata" and refused.value.status == 400


def test_body_must_be_an_object():
    with pytest.raises(InvalidClientMetadata, match="JSON object"):
        parse_metadata(["name"])


def test_private_key_jwt_with_inline_jwks_is_accepted():
    jwks = {"keys": [{"kty": "EC", "crv": "P-256", "x": "x", "y": "y", "kid": "k"}]}
    metadata = parse_metadata({"name": "App", "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks})
    assert metadata.jwks == jwks
