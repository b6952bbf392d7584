"""governor-style admin of third-party login platforms (``/api/oauth/platform...``; scopes
``gov.user.oauth.platform:read|write``).

A platform is a :class:`latchkey.platforms.Platform`: an upstream OpenID Connect provider (by its discovery
URL) or a plain OAuth 2.0 provider (explicit endpoints and a userinfo claim mapping) users may sign in
with. This module is what the four thin handlers call:

===========================================  ===================  ===========================================
route                                        guard                here
===========================================  ===================  ===========================================
``PUT /platform/id/{platformId}``            ``platform:write``   :func:`put` → ``201`` :meth:`Platform.render`
                                                                  (created) or 204 (replaced)
``GET /platform/id/{platformId}``            ``platform:read``    :func:`get` → :meth:`Platform.render`
``GET /platform``                            ``platform:read``    :func:`list_platforms` → ``{"platforms": [...]}``
``DELETE /platform/id/{platformId}``         ``platform:write``   :func:`delete` → 204
===========================================  ===================  ===========================================

Choices:

- ``PUT`` creates or replaces (the admin picks the id: it is part of the platform's callback URL). A new
  platform answers ``201`` with its JSON, a replaced one ``204`` with no body, as governor's app update
  does. A replace is a whole configuration: members left out take their defaults, except the client
  secret (below); ``created_at`` is kept and ``updated_at`` moves.
- The body is strict (:class:`latchkey.platform_config.PlatformConfig`): unknown members, wrong JSON types and
  invalid values are ``400 invalid_request`` naming the first offending field (a rule spanning several
  members, say an ``oidc`` platform without ``discovery_url``, names the member in its message), and
  nothing is written. The read-only members of the JSON (``platform_id``, ``has_client_secret``,
  ``created_at``, ``updated_at``) are unknown members of the body.
- A platform id is 1 to 64 lowercase letters, digits, ``_`` or ``-``, starting with a letter or digit
  (:data:`latchkey.platforms.PLATFORM_ID`): anything else is a ``400`` on ``PUT`` and a ``404`` on
  ``GET``/``DELETE`` (such a platform can never exist).
- ``client_secret`` is write-only. It is envelope-encrypted (KMS in AWS, the local key-encryption key
  locally) bound to the platform id (:func:`latchkey.platforms.secret_context`), so the sealed value
  cannot be moved to another row; no response and no log line carries it, the JSON says only
  ``has_client_secret``. Both platform types authenticate to the upstream token endpoint with the secret
  (``client_secret_basic`` or ``client_secret_post``), so creating a platform without one is a ``400``.
  A replace without ``client_secret`` (or with ``null``) keeps the stored secret, even when other members
  such as ``client_id`` change; a replace with one seals the new secret.
- Create is conditional on the row being absent and replace on it being present: a platform created or
  deleted between the read and the write is a ``409`` (retry), never a silent overwrite.
- The list holds every platform, ordered by platform id (GSI ``gsi1``, ``PLATFORMS``); there are few.
- Deleting a platform removes its configuration only. The links of local users to upstream accounts
  (``PLATFORMLINK#...``) stay, inert while the platform is gone, so re-creating the platform under the
  same id lets those users sign in to the same accounts again: an admin moving to a different upstream
  should use a new platform id.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from . import clock, services
from .errors import Conflict, InvalidRequest, NotFound
from .platforms import PLATFORM_ID, Platform, secret_context
from .store import ConditionFailed, Exists, NotExists, Put
from .validation import first_error

if TYPE_CHECKING:  # pydantic: imported by the PUT route only
    from .platform_config import PlatformConfig

SCOPE_PLATFORM_READ = "gov.user.oauth.platform:read"
SCOPE_PLATFORM_WRITE = "gov.user.oauth.platform:write"

NOT_FOUND = "No platform exists with that platform id."
BAD_ID = "A platform id is 1 to 64 lowercase letters, digits, _ or - characters, starting with a letter or digit."
SECRET_REQUIRED = "client_secret: a new platform needs the client secret Latchkey is given at the upstream"
CONCURRENT = "The platform was created or deleted concurrently; try again."


# --- input ------------------------------------------------------------------------------------------
def valid_platform_id(platform_id: str | None) -> bool:
    return bool(platform_id) and PLATFORM_ID.match(platform_id or "") is not None


def parse(data: Any) -> PlatformConfig:
    """The ``PUT`` body as a :class:`PlatformConfig`, or ``400 invalid_request`` naming the first offending
    field. JSON mode, so the type's string is its enum value; messages never echo the input (a secret)."""
    from pydantic import ValidationError

    from .platform_config import PlatformConfig

    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    try:
        return PlatformConfig.model_validate_json(json.dumps(data))
    except ValidationError as exc:
        raise InvalidRequest(first_error(exc, terse=True)) from None  # the chained error would carry the input values


# --- rendering --------------------------------------------------------------------------------------
def render(platform: Platform) -> dict[str, Any]:
    """The platform's JSON (never the secret, sealed or not)."""
    return platform.render()


def render_many(platforms: list[Platform]) -> dict[str, Any]:
    return {"platforms": [render(p) for p in platforms]}


# --- reads ------------------------------------------------------------------------------------------
def find(platform_id: str) -> Platform | None:
    if not valid_platform_id(platform_id):
        return None  # such an id can never have been stored
    return services.platform_store().get(platform_id)


def get(platform_id: str) -> Platform:
    platform = find(platform_id)
    if platform is None:
        raise NotFound(NOT_FOUND)
    return platform


def list_platforms() -> list[Platform]:
    """Every platform, by platform id."""
    return services.platform_store().list()


# --- writes -----------------------------------------------------------------------------------------
def put(platform_id: str, data: Any) -> tuple[Platform, bool]:
    """``PUT /platform/id/{platformId}``: validate (nothing is written on a 400), seal a new secret, and
    create or replace the row. Returns the stored platform and whether it was created."""
    if not valid_platform_id(platform_id):
        raise InvalidRequest(BAD_ID)
    config = parse(data)
    existing = services.platform_store().get(platform_id)
    if existing is None and config.client_secret is None:
        raise InvalidRequest(SECRET_REQUIRED)
    if config.client_secret is not None:
        sealed = services.envelope().seal(config.client_secret.encode("utf-8"), secret_context(platform_id))
    else:
        sealed = existing.sealed_secret if existing is not None else None
    now = clock.now()
    platform = Platform(platform_id=platform_id, **config.model_dump(mode="json", exclude={"client_secret"}),
                        sealed_secret=sealed, created_at=existing.created_at if existing else now, updated_at=now)
    try:
        services.item_store().write(Put(platform.to_item(), condition=Exists() if existing else NotExists()))
    except ConditionFailed as exc:
        raise Conflict(CONCURRENT) from exc
    return platform, existing is None


def delete(platform_id: str) -> None:
    """``DELETE /platform/id/{platformId}``: one conditional delete of the configuration row."""
    if not valid_platform_id(platform_id) or not services.platform_store().delete(platform_id):
        raise NotFound(NOT_FOUND)
