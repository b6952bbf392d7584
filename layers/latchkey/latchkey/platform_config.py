"""What an admin sends to ``PUT /api/oauth/platform/id/{platformId}``, validated by pydantic.

A module of its own so that the routes that only read platforms (and the sign-in routes that use them)
never import pydantic: it cost those functions about 100 ms of cold start (issue 8).
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .platforms import DEFAULT_CLAIM_MAPPING, LOCAL_CLAIMS, PlatformType, check_url


class PlatformConfig(BaseModel):
    """What an admin sends to ``PUT /api/oauth/platform/id/{platformId}`` (strict: unknown fields refused)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    display_name: str = Field(min_length=1, max_length=100)
    type: PlatformType
    client_id: str = Field(min_length=1, max_length=512)
    client_secret: str | None = Field(None, min_length=1, max_length=4096)  # write-only; None on update keeps it
    token_endpoint_auth_method: str = "client_secret_basic"
    scopes: list[str] = Field(default_factory=lambda: ["openid", "email", "profile"], max_length=50)
    discovery_url: str | None = None
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    userinfo_endpoint: str | None = None
    claim_mapping: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_CLAIM_MAPPING))
    allow_signup: bool = False
    enabled: bool = True

    @field_validator("display_name")
    @classmethod
    def _display_name(cls, value: str) -> str:
        if not value.strip() or any(ord(c) < 0x20 for c in value):
            raise ValueError("display_name must be printable text")
        return value

    @field_validator("token_endpoint_auth_method")
    @classmethod
    def _auth_method(cls, value: str) -> str:
        if value not in ("client_secret_basic", "client_secret_post"):
            raise ValueError("token_endpoint_auth_method must be client_secret_basic or client_secret_post")
        return value

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: list[str]) -> list[str]:
        if any(not re.fullmatch(r"[\x21\x23-\x5B\x5D-\x7E]{1,200}", s) for s in value):
            raise ValueError("scopes must be scope tokens")
        return list(dict.fromkeys(value))

    @field_validator("claim_mapping")
    @classmethod
    def _mapping(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = set(value) - set(LOCAL_CLAIMS)
        if unknown:
            raise ValueError(f"claim_mapping may only map {', '.join(LOCAL_CLAIMS)}")
        if any(not re.fullmatch(r"[A-Za-z0-9_.:-]{1,100}", path) for path in value.values()):
            raise ValueError("claim_mapping values are upstream field names (dots for nested fields)")
        return value

    @model_validator(mode="after")
    def _endpoints(self) -> PlatformConfig:
        if self.type is PlatformType.OIDC:
            if self.discovery_url is None:
                raise ValueError("an oidc platform needs discovery_url")
            check_url(self.discovery_url, "discovery_url")
            if "openid" not in self.scopes:
                raise ValueError("an oidc platform must ask for the openid scope")
        else:
            for name in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint"):
                value = getattr(self, name)
                if value is None:
                    raise ValueError(f"an oauth2 platform needs {name}")
                check_url(value, name)
            if "sub" not in self.claim_mapping:
                raise ValueError("an oauth2 platform's claim_mapping must say which field is the user id (sub)")
        return self
