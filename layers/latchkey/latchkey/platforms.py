"""Third-party login platforms: upstream OpenID Connect and OAuth 2.0 providers an admin configured.

A platform is one row (``PLATFORM#<id>`` / ``PLATFORM``, listed through ``gsi1`` ``PLATFORMS``): how to reach
the upstream (an OpenID Connect discovery URL, or the explicit endpoints of a plain OAuth 2.0 provider
plus a userinfo claim mapping), Latchkey's client id there, the scopes to ask for and whether a first
login may create a local account. The upstream client secret is never stored in the clear: it is
envelope-encrypted like the signing keys (KMS in AWS, the local key-encryption key locally), bound to
the platform id, and never rendered.

A user's link to an upstream account is two rows written together: ``PLATFORMLINK#<platform>#<upstream
sub>`` → the user (how a returning login finds its user) and ``USER#<user>`` / ``PLATFORM#<platform>`` (the
user's side, for listing and clean-up).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import urlsplit

from .crypto.envelope import Envelope
from .loopback import is_loopback
from .records import Record
from .store import ENTITY, GSI1PK, GSI1SK, PK, SK, Delete, Exists, ItemStore, NotExists, Operation, Put

PLATFORMS_INDEX_PK = "PLATFORMS"
PLATFORM_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
SECRET_PURPOSE = "latchkey-platform-client-secret"
LOCAL_CLAIMS = ("sub", "email", "email_verified", "name", "given_name", "family_name", "preferred_username",
                "picture", "profile")
DEFAULT_CLAIM_MAPPING = {name: name for name in LOCAL_CLAIMS}


class PlatformType(StrEnum):
    OIDC = "oidc"  # generic OpenID Connect: everything from the discovery document, identity from the id_token
    OAUTH2 = "oauth2"  # plain OAuth 2.0: explicit endpoints, identity from the userinfo response


def check_url(value: str, what: str) -> str:
    """An https URL (http only on loopback, for local providers), without a fragment."""
    parts = urlsplit(value)
    if len(value) > 2000 or parts.fragment or not parts.hostname or any(c.isspace() for c in value):
        raise ValueError(f"{what} must be an absolute URL without a fragment")
    if parts.scheme != "https" and not (parts.scheme == "http" and is_loopback(parts.hostname)):
        raise ValueError(f"{what} must be https (http only on a loopback address)")
    return value


@dataclass(frozen=True)
class Platform(Record):
    """A stored platform: its configuration (without the secret) plus the sealed secret and timestamps.
    A :class:`~latchkey.records.Record`; the admin's input is validated by
    :class:`latchkey.platform_config.PlatformConfig` (pydantic, imported by the PUT route only)."""

    platform_id: str
    display_name: str
    type: PlatformType
    client_id: str
    token_endpoint_auth_method: str = "client_secret_basic"
    scopes: tuple[str, ...] = ()
    discovery_url: str | None = None
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    userinfo_endpoint: str | None = None
    claim_mapping: dict[str, str] = field(default_factory=dict)
    allow_signup: bool = False
    enabled: bool = True
    sealed_secret: dict[str, str] | None = None
    created_at: int = -1  # required: -1 means "not given"
    updated_at: int = -1

    REQUIRED = ("created_at", "updated_at")

    def secret(self, envelope: Envelope) -> str | None:
        """The upstream client secret, unsealed (only when calling the upstream token endpoint)."""
        if self.sealed_secret is None:
            return None
        return envelope.open(self.sealed_secret, secret_context(self.platform_id)).decode("utf-8")

    def render(self) -> dict[str, Any]:
        """The admin JSON: everything but the secret, which is only said to exist."""
        body = self.model_dump(mode="json", exclude={"sealed_secret"})
        body["has_client_secret"] = self.sealed_secret is not None
        return {k: v for k, v in body.items() if v is not None}

    def to_item(self) -> dict[str, Any]:
        return {PK: f"PLATFORM#{self.platform_id}", SK: "PLATFORM", ENTITY: "platform", GSI1PK: PLATFORMS_INDEX_PK,
                GSI1SK: self.platform_id, **self.model_dump(mode="json")}

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Platform:
        return cls.from_stored(item)


def secret_context(platform_id: str) -> dict[str, str]:
    return {"platform": platform_id, "purpose": SECRET_PURPOSE}


class PlatformStore(Protocol):
    def get(self, platform_id: str) -> Platform | None: ...

    def list(self) -> list[Platform]: ...

    def put(self, platform: Platform) -> None: ...

    def delete(self, platform_id: str) -> bool: ...

    def find_link(self, platform_id: str, subject: str) -> str | None: ...

    def link_ops(self, platform_id: str, subject: str, user_id: str, now: int) -> Sequence[Operation]: ...


class ItemPlatformStore:
    def __init__(self, items: ItemStore) -> None:
        self._items = items

    def get(self, platform_id: str) -> Platform | None:
        if not PLATFORM_ID.match(platform_id):
            return None
        item = self._items.get(f"PLATFORM#{platform_id}", "PLATFORM")
        return Platform.from_item(item) if item else None

    def list(self) -> list[Platform]:
        """Every platform, by id."""
        return [Platform.from_item(item) for item in self._items.query(PLATFORMS_INDEX_PK, index="gsi1")]

    def put(self, platform: Platform) -> None:
        self._items.write(Put(platform.to_item()))

    def delete(self, platform_id: str) -> bool:
        from .store import ConditionFailed

        try:
            self._items.write(Delete(f"PLATFORM#{platform_id}", "PLATFORM", condition=Exists()))
        except ConditionFailed:
            return False
        return True

    def find_link(self, platform_id: str, subject: str) -> str | None:
        """The local user linked to the upstream account ``subject`` of ``platform_id``."""
        item = self._items.get(f"PLATFORMLINK#{platform_id}#{subject}", "LINK")
        return str(item["user_id"]) if item else None

    def link_ops(self, platform_id: str, subject: str, user_id: str, now: int) -> Sequence[Operation]:
        """The two rows of a new link; the first fails if the upstream account is linked already."""
        return (Put({PK: f"PLATFORMLINK#{platform_id}#{subject}", SK: "LINK", ENTITY: "platform_link",
                     "user_id": user_id, "platform_id": platform_id, "subject": subject, "created_at": now},
                    condition=NotExists()),
                Put({PK: f"USER#{user_id}", SK: f"PLATFORM#{platform_id}", ENTITY: "user_platform",
                     "platform_id": platform_id, "subject": subject, "created_at": now}))
