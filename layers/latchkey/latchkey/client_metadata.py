"""Client metadata accepted on create, update and dynamic registration, and its validation.

governor's fields (``name``, ``url``, ``redirect_uri``) stay as they are; what OAuth adds uses the
RFC 7591 §2 client metadata names. Unknown fields, wrong types, over-long names, invalid URLs and
redirect URIs with a fragment or, outside loopback, plain http are refused (RFC 7591 §3.2.2
``invalid_redirect_uri`` / ``invalid_client_metadata``), and nothing is written.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import LatchkeyError
from .loopback import MAX_URL, check_web_url, is_loopback
from .validation import first_error

MAX_NAME = 255
MAX_REDIRECT_URIS = 20

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
# Every grant the server implements or will implement (issues 3-5); the token endpoint's registry
# decides what works today, and the metadata document advertises only that.
KNOWN_GRANT_TYPES = (
    "authorization_code", "refresh_token", "client_credentials",
    "urn:ietf:params:oauth:grant-type:device_code", "urn:ietf:params:oauth:grant-type:token-exchange",
)
RESPONSE_TYPES = ("code",)
ID_TOKEN_ALGS = ("RS256", "ES256")
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5B\x5D-\x7E]+$")  # RFC 6749 §3.3 scope-token (NQCHAR)


class InvalidClientMetadata(LatchkeyError):
    error, status = "invalid_client_metadata", 400
    default_description = "The client metadata is invalid."


class InvalidRedirectUri(LatchkeyError):
    error, status = "invalid_redirect_uri", 400
    default_description = "A redirect URI is invalid."


def check_redirect_uri(value: str) -> str:
    """RFC 6749 §3.1.2 (absolute, no fragment), RFC 9700 §2.1 / RFC 8252 §7 (https, loopback http for
    native apps, or a private-use scheme containing a dot such as ``com.example.app:/cb``)."""
    if len(value) > MAX_URL or any(c.isspace() for c in value):
        raise InvalidRedirectUri(f"Invalid redirect URI: {value[:100]}")
    parts = urlsplit(value)
    if parts.fragment or "#" in value:
        raise InvalidRedirectUri("A redirect URI must not contain a fragment.")
    if parts.scheme == "https" and parts.netloc:
        return value
    if parts.scheme == "http" and parts.netloc:
        if is_loopback(parts.hostname):
            return value
        raise InvalidRedirectUri("Plain http redirect URIs are allowed only on loopback addresses.")
    if "." in parts.scheme and parts.scheme not in ("http", "https") and (parts.path or parts.netloc):
        return value
    raise InvalidRedirectUri(f"Invalid redirect URI: {value[:100]}")


class TokenExchangePolicy(BaseModel):
    """Which tokens an app may exchange (RFC 8693), default deny: the clients whose tokens it may present
    as ``subject_token`` (its own id included only if listed), the audiences (``audience`` / ``resource``)
    it may ask for, and whether it may act for a subject (``actor_token``, the ``act`` claim)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    subject_clients: list[str] = Field(default_factory=list, max_length=100)
    audiences: list[str] = Field(default_factory=list, max_length=100)
    delegation: bool = False


class ClientMetadata(BaseModel):
    """What a caller may set on an app. Strict: wrong types are refused, not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: str = Field(min_length=1, max_length=MAX_NAME)
    url: str = ""
    redirect_uri: str = ""
    redirect_uris: list[str] = Field(default_factory=list, max_length=MAX_REDIRECT_URIS)
    grant_types: list[str] = Field(default_factory=lambda: ["client_credentials"])
    response_types: list[str] = Field(default_factory=list)
    scope: str = Field("", max_length=2000)
    token_endpoint_auth_method: str = "client_secret_basic"
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = None
    id_token_signed_response_alg: str = "RS256"
    post_logout_redirect_uris: list[str] = Field(default_factory=list, max_length=MAX_REDIRECT_URIS)
    access_token_ttl: int | None = Field(None, ge=60, le=86400)
    refresh_token_ttl: int | None = Field(None, ge=60, le=366 * 86400)
    refresh_token_idle_ttl: int | None = Field(None, ge=60, le=366 * 86400)
    token_exchange_policy: TokenExchangePolicy | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip() or any(ord(c) < 0x20 for c in value):
            raise ValueError("name must be printable text")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_web_url(value, "url") if value else value

    @field_validator("jwks_uri")
    @classmethod
    def _jwks_uri(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme != "https":
            raise ValueError("jwks_uri must be an https URL")
        return value

    @field_validator("grant_types")
    @classmethod
    def _grants(cls, value: list[str]) -> list[str]:
        unknown = set(value) - set(KNOWN_GRANT_TYPES)
        if unknown:
            raise ValueError(f"unsupported grant_types: {', '.join(sorted(unknown))}")
        return sorted(set(value), key=value.index)

    @field_validator("response_types")
    @classmethod
    def _responses(cls, value: list[str]) -> list[str]:
        if set(value) - set(RESPONSE_TYPES):
            raise ValueError("only the response type 'code' is supported")
        return sorted(set(value))

    @field_validator("scope")
    @classmethod
    def _scope(cls, value: str) -> str:
        tokens = value.split(" ") if value else []
        if any(not _SCOPE_TOKEN.match(t) for t in tokens):
            raise ValueError("scope must be space-separated scope tokens")
        return " ".join(dict.fromkeys(tokens))

    @field_validator("token_endpoint_auth_method")
    @classmethod
    def _auth_method(cls, value: str) -> str:
        if value not in AUTH_METHODS:
            raise ValueError(f"token_endpoint_auth_method must be one of {', '.join(AUTH_METHODS)}")
        return value

    @field_validator("id_token_signed_response_alg")
    @classmethod
    def _id_token_alg(cls, value: str) -> str:
        if value not in ID_TOKEN_ALGS:
            raise ValueError("id_token_signed_response_alg must be RS256 or ES256")
        return value

    @field_validator("jwks")
    @classmethod
    def _jwks(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return value
        keys = value.get("keys")
        private_members = {"d", "p", "q", "dp", "dq", "qi", "k"}
        if not isinstance(keys, list) or not keys or any(
                not isinstance(k, dict) or "kty" not in k or private_members & set(k) for k in keys):
            raise ValueError("jwks must be a JWK Set of public keys")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ClientMetadata:
        if self.jwks is not None and self.jwks_uri is not None:
            raise ValueError("jwks and jwks_uri are mutually exclusive (RFC 7591 §2)")
        if self.token_endpoint_auth_method == "private_key_jwt" and self.jwks is None and self.jwks_uri is None:
            raise ValueError("private_key_jwt needs jwks or jwks_uri")
        if "authorization_code" in self.grant_types and not self.all_redirect_uris:
            raise ValueError("authorization_code needs at least one redirect URI")
        if self.token_endpoint_auth_method == "none" and "client_credentials" in self.grant_types:
            raise ValueError("a public client cannot use client_credentials")
        return self

    @property
    def all_redirect_uris(self) -> list[str]:
        return list(dict.fromkeys(([self.redirect_uri] if self.redirect_uri else []) + self.redirect_uris))


def parse_metadata(data: Any) -> ClientMetadata:
    """Validate caller input; redirect URI problems are ``invalid_redirect_uri``, the rest
    ``invalid_client_metadata``, with a description naming the first offending field."""
    if not isinstance(data, dict):
        raise InvalidClientMetadata("The request body must be a JSON object.")
    candidates = [data.get("redirect_uri")]
    for name in ("redirect_uris", "post_logout_redirect_uris"):
        if isinstance(data.get(name), list):  # other types are refused by the model below
            candidates += data[name]
    for uri in candidates:
        if isinstance(uri, str) and uri:
            check_redirect_uri(uri)
    try:
        return ClientMetadata.model_validate(data)
    except ValidationError as exc:
        raise InvalidClientMetadata(first_error(exc)) from exc
