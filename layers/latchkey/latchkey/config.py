"""Configuration: one frozen settings object read from the environment.

Every field has a description; the README's configuration table is generated from it
(``python -m devstack config-table``) and ``tests/unit/test_config_docs.py`` fails when they differ.

Plain dataclasses rather than pydantic-settings: the settings are read on every cold start, and
building the pydantic-settings model cost about 70 ms of import per function (issue 8). Each
environment variable is the field's name in upper case (the lower-case name is accepted too); a
value is converted to the field's type and checked against its bounds, else :class:`ConfigError`.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Callable
from enum import Enum, StrEnum
from functools import lru_cache
from typing import Any


class ConfigError(ValueError):
    """A setting has a value of the wrong type or out of its bounds."""


class StoreKind(StrEnum):
    DYNAMODB = "dynamodb"
    MEMORY = "memory"


class KafkaAuth(StrEnum):
    IAM = "iam"
    PLAINTEXT = "plaintext"


class ClientRegistration(StrEnum):
    """Who may use dynamic client registration (RFC 7591 §3)."""

    OFF = "off"
    TOKEN = "token"
    OPEN = "open"


def Field(default: Any, *, description: str, gt: float | None = None, ge: float | None = None,  # noqa: N802
          le: float | None = None) -> Any:
    """A setting: its default, the README's description and numeric bounds."""
    return dataclasses.field(default=default, metadata={"description": description, "gt": gt, "ge": ge, "le": le})


def _issuer(value: str) -> str:
    if not value.startswith(("https://", "http://")) or value.endswith("/") or "?" in value or "#" in value:
        raise ConfigError("issuer must be an http(s) URL without query, fragment or trailing slash")
    return value


def _access_token_alg(value: str) -> str:
    if value not in ("ES256", "RS256"):
        raise ConfigError("access_token_alg must be ES256 or RS256")
    return value


_CHECKS: dict[str, Callable[[Any], Any]] = {"issuer": _issuer, "access_token_alg": _access_token_alg}


@dataclasses.dataclass(frozen=True, init=False)
class Settings:
    """Latchkey's runtime configuration (environment variables, no prefix).

    ``Settings()`` reads the environment; keyword arguments take precedence over it.
    """


    """Latchkey's runtime configuration (environment variables, no prefix)."""

    issuer: str = Field(
        "http://127.0.0.1:3000",
        description="Issuer identifier (RFC 8414 §2): the https URL tokens carry in `iss`; no trailing slash.",
    )
    namespace: str = Field("latchkey", description="Namespace written into every published event.")
    parent_namespace: str = Field("", description="Parent namespace written into every published event.")
    store: StoreKind = Field(StoreKind.DYNAMODB, description="State backend: `dynamodb` or `memory` (local).")
    table_name: str = Field("latchkey", description="The single DynamoDB table holding all state.")
    dynamodb_endpoint: str | None = Field(
        None, description="DynamoDB endpoint override (DynamoDB Local); unset in AWS."
    )
    aws_region: str = Field("us-east-1", description="AWS region for DynamoDB and KMS clients.")
    kms_key_id: str | None = Field(
        None, description="KMS key (ARN or alias) that envelope-encrypts private signing keys in AWS."
    )
    local_kek: str | None = Field(
        None,
        description="Local key-encryption key (base64, 32 bytes) used instead of KMS by the local stack.",
    )
    access_token_alg: str = Field("ES256", description="JWS algorithm for access tokens: `ES256` or `RS256`.")
    signing_algs: tuple[str, ...] = Field(
        ("ES256", "RS256"),
        description="Algorithms that get a signing key lifecycle (comma separated). RS256 is required by OIDC.",
    )
    access_token_ttl: int = Field(3600, description="Longest access or id token lifetime, in seconds.", gt=0)
    jwks_max_age: int = Field(
        3600, description="Seconds clients may cache the JWKS (`Cache-Control: max-age`).", gt=0
    )
    key_rotation_period: int = Field(
        30 * 86400, description="Seconds a signing key stays current before the next key replaces it.", gt=0
    )
    key_cache_ttl: int = Field(
        60, description="Seconds a function instance keeps the parsed key set before re-reading it.", ge=0
    )
    client_cache_ttl: int = Field(
        60, description="Seconds the token endpoint keeps an app's record in memory (0: read it every time). "
        "A stale record never lets an old secret or a deleted app through: the token's write checks the "
        "stored secret and update time, and a failed secret check reads the record again.", ge=0, le=600
    )
    event_ttl: int = Field(
        7 * 86400, description="Seconds an outbox row stays in the table after it was written.", gt=0
    )
    kafka_bootstrap: str = Field("", description="Kafka bootstrap servers for the event relay.")
    kafka_topic_prefix: str = Field("", description="Optional topic prefix: topics become `<prefix>.<topic>`.")
    kafka_auth: KafkaAuth = Field(KafkaAuth.IAM, description="Kafka authentication: `iam` (MSK) or `plaintext`.")
    kafka_flush_timeout: float = Field(
        10.0, description="Seconds the relay waits for Kafka to acknowledge a batch before retrying it.", gt=0
    )

    client_registration: ClientRegistration = Field(
        ClientRegistration.TOKEN,
        description="Dynamic client registration (RFC 7591/7592): `token` needs an initial access token "
        "(a Latchkey access token with `gov.user.oauth.app:write`), `open` lets anyone register, `off` "
        "answers 404.",
    )

    session_ttl: int = Field(
        10 * 3600, description="Seconds a hosted-login session lives (the browser's sign-in on Latchkey's pages).",
        gt=0,
    )
    authorization_request_ttl: int = Field(
        600, description="Seconds a user has to sign in and consent after the app sent them to `/authorize`.", gt=0
    )
    authorization_code_ttl: int = Field(
        60, description="Seconds an authorization code can be exchanged (RFC 6749 §4.1.2: short-lived).",
        gt=0, le=600,
    )
    refresh_token_ttl: int = Field(
        30 * 86400, description="Absolute lifetime, in seconds, of a refresh token family (from the first "
        "issue; rotation does not extend it). An app's `refresh_token_ttl` may shorten it.", gt=0
    )
    refresh_token_idle_ttl: int = Field(
        14 * 86400, description="Seconds a refresh token stays usable without being used (idle lifetime). An "
        "app's `refresh_token_idle_ttl` may shorten it.", gt=0
    )
    refresh_token_reuse_grace: int = Field(
        5, description="Seconds a rotated refresh token may still be used (parallel refreshes); a use after "
        "that revokes its whole family.", ge=0, le=60
    )
    device_code_ttl: int = Field(
        600, description="Seconds a device code and its user code stay valid (RFC 8628 `expires_in`).", gt=0
    )
    device_poll_interval: int = Field(
        5, description="Seconds a device must wait between token polls (RFC 8628 `interval`).", ge=1
    )
    user_code_max_failures: int = Field(
        20, description="Wrong user codes from one source address within `LOGIN_FAILURE_WINDOW` that lock "
        "the device verification page for it.", ge=1
    )
    password_hash_cost: int = Field(
        15, description="scrypt cost for new password hashes, as log2(N); r=8 and p follow OWASP's equivalent "
        "rows (17: p=1, 128 MiB; 16: p=2; 15: p=3, 32 MiB per hash; 14: p=5; 13: p=10).",
        ge=10, le=20,
    )
    login_slowdown_after: int = Field(
        3, description="Failed sign-ins for one username after which each retry must wait, "
        "doubling from 1 s up to 60 s.", ge=1,
    )
    login_max_failures: int = Field(
        10, description="Failed sign-ins for one username within `LOGIN_FAILURE_WINDOW` that lock it out.", ge=1
    )
    login_max_address_failures: int = Field(
        50, description="Failed sign-ins from one source address within `LOGIN_FAILURE_WINDOW` that lock it out.",
        ge=1,
    )
    login_failure_window: int = Field(
        900, description="Seconds failed sign-ins are counted for (and a lockout lasts).", gt=0
    )
    client_auth_max_failures: int = Field(
        100, description="Failed client authentications (wrong secret, bad assertion) for one client id within "
        "`CLIENT_AUTH_FAILURE_WINDOW` that lock it out of the token, revocation, introspection and device "
        "endpoints; a locked client gets the same `invalid_client` as a wrong secret.", ge=1,
    )
    client_auth_max_address_failures: int = Field(
        200, description="Failed client authentications (including unknown client ids) from one source address "
        "within `CLIENT_AUTH_FAILURE_WINDOW` that lock it out of client authentication.", ge=1,
    )
    client_auth_failure_window: int = Field(
        900, description="Seconds failed client authentications are counted for (and a lockout lasts).", gt=0
    )
    introspection_rate_limit: int = Field(
        6000, description="Introspection calls one caller (client) may make per `INTROSPECTION_RATE_WINDOW` on "
        "one function instance before `429` (0: no limit). API Gateway's route throttling caps the route.", ge=0,
    )
    introspection_address_rate_limit: int = Field(
        6000, description="Introspection calls from one source address per `INTROSPECTION_RATE_WINDOW` on one "
        "function instance before `429` (0: no limit).", ge=0,
    )
    introspection_rate_window: int = Field(
        60, description="Seconds of the introspection rate limits' fixed window.", gt=0
    )

    cli_client_id: str = Field(
        "latchkey-cli", description="The public app the command-line tools sign in with (Neosync's AuthService "
        "and the `latchkey` CLI): registered for the code flow with a loopback redirect URI, refresh tokens "
        "and the device flow.",
    )
    upstream_timeout: float = Field(
        5.0, description="Seconds to wait for a third-party login platform (discovery, JWKS, token, userinfo).",
        gt=0, le=25,
    )

    def __init__(self, **values: Any) -> None:
        names = {f.name for f in dataclasses.fields(self)}
        if unknown := set(values) - names:
            raise TypeError(f"unknown settings: {sorted(unknown)}")
        hints = _hints()
        for f in dataclasses.fields(self):
            if f.name in values:
                raw = values[f.name]
            else:
                raw = os.environ.get(f.name.upper(), os.environ.get(f.name, f.default))
            object.__setattr__(self, f.name, _convert(f, hints[f.name], raw))

    def replace(self, **values: Any) -> Settings:
        """A copy with ``values`` changed (checked like the environment's)."""
        current = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return Settings(**{**current, **values})

    @classmethod
    def describe(cls) -> list[tuple[str, Any, str]]:
        """(name, default, description) of every setting, in declaration order."""
        return [(f.name, f.default, f.metadata["description"]) for f in dataclasses.fields(cls)]


@lru_cache(maxsize=1)
def _hints() -> dict[str, Any]:
    return typing.get_type_hints(Settings)


def _convert(f: dataclasses.Field[Any], hint: Any, raw: Any) -> Any:
    name = f.name
    kind, optional = hint, False
    if isinstance(hint, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        kind, optional = args[0], True
    if raw is None:
        if optional:
            return None
        raise ConfigError(f"{name} is required")
    try:
        if typing.get_origin(kind) is tuple:
            value: Any = tuple(p.strip() for p in raw.split(",") if p.strip()) if isinstance(raw, str) else tuple(raw)
        elif isinstance(kind, type) and issubclass(kind, Enum):
            value = kind(raw.value if isinstance(raw, Enum) else str(raw).strip().lower())
        elif kind is int:
            if isinstance(raw, bool) or isinstance(raw, float) and not raw.is_integer():
                raise ValueError(raw)
            value = int(raw.strip()) if isinstance(raw, str) else int(raw)
        elif kind is float:
            value = float(raw)
        else:
            value = str(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}: {raw!r} is not a valid {getattr(kind, '__name__', kind)}") from exc
    meta = f.metadata
    gt, ge, le = meta.get("gt"), meta.get("ge"), meta.get("le")
    if (gt is not None and not value > gt) or (ge is not None and not value >= ge) \
            or (le is not None and not value <= le):
        raise ConfigError(f"{name}: {value!r} is out of bounds")
    check = _CHECKS.get(name)
    return check(value) if check else value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
