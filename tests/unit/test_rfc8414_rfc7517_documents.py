"""Discovery metadata (RFC 8414 / OIDC Discovery) and the JWK Set document (RFC 7517)."""

from urllib.parse import urlparse

import latchkey.discovery  # noqa: F401  (imports every feature module, so their contributions register)
from devstack.template import routes
from latchkey import rfc8414
from latchkey.config import Settings
from latchkey.rfc6749 import grants
from latchkey.rfc7517 import jwks_document

SETTINGS = Settings(issuer="https://auth.example.com", signing_algs="ES256,RS256")


def test_metadata_names_the_issuer_and_jwks_uri():
    document = rfc8414.metadata(SETTINGS)
    assert document["issuer"] == "https://auth.example.com"
    assert document["jwks_uri"] == "https://auth.example.com/api/oauth/jwks"
    assert document["subject_types_supported"] == ["public"]
    assert document["id_token_signing_alg_values_supported"] == ["ES256", "RS256"]


def test_metadata_never_advertises_an_endpoint_that_is_not_a_route():
    """RFC 8414 §2: every *_endpoint / *_uri the document names must be served by template.yaml."""
    served = {route.path for route in routes()}
    for name, value in rfc8414.metadata(SETTINGS).items():
        if name.endswith(("_endpoint", "_uri")) and isinstance(value, str):
            assert value.startswith(SETTINGS.issuer), name
            assert urlparse(value).path in served, f"{name} -> {value} is not a route in template.yaml"


def test_metadata_lists_only_what_works():
    document = rfc8414.metadata(SETTINGS)
    implemented_grants = {"authorization_code", "client_credentials", "refresh_token",  # extended as grants land
                          "urn:ietf:params:oauth:grant-type:token-exchange",
                          "urn:ietf:params:oauth:grant-type:device_code"}
    assert set(document["grant_types_supported"]) == implemented_grants
    assert document["grant_types_supported"] == sorted(g.grant_type for g in grants.registered())
    # RFC 9700 §2.1.2: the code flow only (no implicit "token", no hybrid)
    assert document["response_types_supported"] == ["code"]
    assert document["response_modes_supported"] == ["query"]
    assert document["authorization_endpoint"] == "https://auth.example.com/api/oauth/authorize"
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["authorization_response_iss_parameter_supported"] is True
    assert document["prompt_values_supported"] == ["consent", "login", "none", "select_account"]
    assert document["end_session_endpoint"] == "https://auth.example.com/api/oauth/logout"
    assert document["token_endpoint"] == "https://auth.example.com/api/oauth/token"
    # "none" is listed once a registered grant accepts public clients (authorization_code does, with PKCE)
    methods = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
    assert document["token_endpoint_auth_methods_supported"] == [*methods, "none"]
    assert document["token_endpoint_auth_signing_alg_values_supported"] == ["ES256", "RS256"]
    assert document["revocation_endpoint"] == "https://auth.example.com/api/oauth/revoke"
    assert document["revocation_endpoint_auth_methods_supported"] == [*methods, "none"]
    assert document["introspection_endpoint"] == "https://auth.example.com/api/oauth/introspect"
    assert document["introspection_endpoint_auth_methods_supported"] == [*methods, "Bearer"]


def test_contributions_merge_list_fields_without_duplicates():
    @rfc8414.contributes
    def extra(settings):
        return {"grant_types_supported": ["x-test"], "id_token_signing_alg_values_supported": ["RS256"]}

    try:
        document = rfc8414.metadata(SETTINGS)
        assert document["grant_types_supported"] == sorted(g.grant_type for g in grants.registered()) + ["x-test"]
        assert document["id_token_signing_alg_values_supported"] == ["ES256", "RS256"]
    finally:
        rfc8414._contributions.remove(extra)


KEYS = [{"kty": "EC", "kid": "a", "crv": "P-256", "x": "x", "y": "y", "alg": "ES256", "use": "sig"}]


def test_jwks_document_headers_and_stable_etag():
    first = jwks_document(KEYS, max_age=3600)
    assert first.body == '{"keys":[{"alg":"ES256","crv":"P-256","kid":"a","kty":"EC","use":"sig","x":"x","y":"y"}]}'
    assert first.headers() == {"Content-Type": "application/jwk-set+json",
                               "Cache-Control": "public, max-age=3600", "ETag": first.etag}
    assert jwks_document(KEYS, max_age=3600).etag == first.etag
    assert jwks_document(KEYS + [{**KEYS[0], "kid": "b"}], max_age=3600).etag != first.etag


def test_if_none_match_comparison():
    document = jwks_document(KEYS, max_age=60)
    assert document.not_modified(document.etag)
    assert document.not_modified(f'"other", W/{document.etag}')
    assert document.not_modified("*")
    assert not document.not_modified('"other"')
    assert not document.not_modified(None)
