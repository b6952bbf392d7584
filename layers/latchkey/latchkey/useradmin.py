"""governor's user management (``/api/oauth/user...``; scopes ``gov.user.oauth.user:read|write``).

A user is a :class:`latchkey.users.User`. This module is what the six thin handlers call:

=====================================  ===============  ==========================================================
route                                  guard            here
=====================================  ===============  ==========================================================
``POST /user``                         ``user:write``   :func:`create` → ``201 {userid, username}``
``GET /user?amount=&offset=``          ``user:read``    :func:`list_users` → ``{"users": [...]}``
``GET /user/id/{userid}``              ``user:read``    :func:`get` → :func:`render`
``PUT /user/id/{userid}``              ``user:write``   :func:`update` → 204
``DELETE /user/id/{userid}``           ``user:write``   :func:`delete` (:func:`latchkey.revocation.delete_user`) → 204
``PUT /user/id/{userid}/revoke``       ``user:write``   :func:`revoke` (:func:`latchkey.revocation.revoke_user`) → 204
=====================================  ===============  ==========================================================

Choices:

- The JSON is ``{userid, username, email, email_verified, name, given_name, family_name, picture,
  profile, status, creation_time, time}``: the OpenID Connect Core §5.1 standard claims the user has,
  governor's ``userid``/``time``/``creation_time`` (epoch seconds; ``time`` is the last change). The
  password hash and the revocation ``generation`` are never shown.
- Input is strict (:mod:`latchkey.useradmin_input`: ``NewUser``, ``UserChanges``): wrong types and
  unknown members are ``400 invalid_request`` naming the first offending field, and nothing is written.
  Usernames are 3-64 letters, digits or ``._-@``, unique case-insensitively (taken: ``409``) and
  fixed once created. Passwords follow NIST SP 800-63B §5.1.1.2: 8 to 1024 characters, any characters,
  no composition rules; the only context check is that a password must not be the username. They are
  stored as scrypt hashes at ``PASSWORD_HASH_COST``. ``email`` is a plausible address of at most 254
  characters (RFC 5321 §4.5.3.1), ``picture``/``profile`` absolute http(s) URLs, names at most 200
  printable characters; an empty string clears an optional member.
- Update changes only the members sent (``PUT`` as governor uses it: a partial change). Disabling an
  active user or setting a password ends every session, connection and token of the user in the same
  transaction as the change, with one ``oauthTokenRevoked`` (:func:`latchkey.revocation.revoke_user`);
  other changes are one conditional update. The ``oauthTokenRevoked`` of a revoke, a revoking update or
  a delete names the admin client that acted as its ``clientId`` (the event schema requires a client;
  the user's own apps are all concerned, and the key is the user id). Re-enabling a user brings
  nothing back: what the user held was revoked when they were disabled.
- Revoking moves the user to the next generation; if the user changed generation meanwhile (a
  concurrent revoke), it is read again and tried once more, then ``409``. Revoking changes no member, so
  ``time`` stays; the user stays active and may sign in again.
- The list is ordered by username (case-insensitively), ``amount`` 1-255 required and ``offset``
  default 0, exactly as for apps (:func:`latchkey.apps.parse_amount`, :func:`latchkey.apps.parse_offset`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Any

from . import clock, revocation, services
from .crypto.passwords import hash_password
from .errors import Conflict, InvalidRequest, NotFound
from .store import ConditionFailed, Exists, Update
from .users import User, UsernameTaken, UserStatus, user_key

SCOPE_USER_READ = "gov.user.oauth.user:read"
SCOPE_USER_WRITE = "gov.user.oauth.user:write"
MIN_PASSWORD, MAX_PASSWORD = 8, 1024  # NIST SP 800-63B §5.1.1.2: at least 8, allow at least 64
MAX_EMAIL = 254  # RFC 5321 §4.5.3.1 path limit less the angle brackets
MAX_NAME = 200
_USERNAME = re.compile(r"^[A-Za-z0-9._@-]{3,64}$")
# A user id is a URL path segment: RFC 3986 unreserved characters, at most 128 of them.
_USER_ID = re.compile(r"^[A-Za-z0-9._~-]{1,128}$")
# Plausible, not RFC 5322 complete: a dot-atom local part and a domain of DNS labels with a TLD.
_EMAIL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
                    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z][A-Za-z0-9-]{0,62}$")

NOT_FOUND = "No user exists with that user id."
TAKEN = "That username is taken."
CONCURRENT = "The user was revoked concurrently; try again."
FIXED_USERNAME = "username: the username cannot be changed"
PASSWORD_IS_USERNAME = "password: the password must not be the username"

def _hash(password: str) -> str:
    return hash_password(password, log2_n=services.settings().password_hash_cost)


def valid_user_id(user_id: str | None) -> bool:
    return bool(user_id) and _USER_ID.match(user_id or "") is not None


# --- rendering --------------------------------------------------------------------------------------
def render(user: User) -> dict[str, Any]:
    """The user's JSON (never the password hash or the generation)."""
    return {"userid": user.user_id, "username": user.username, "email": user.email,
            "email_verified": user.email_verified, "name": user.name, "given_name": user.given_name,
            "family_name": user.family_name, "picture": user.picture, "profile": user.profile,
            "status": user.status.value, "creation_time": user.created_at, "time": user.updated_at}


def render_many(users: Sequence[User]) -> dict[str, Any]:
    return {"users": [render(u) for u in users]}


def render_created(user: User) -> dict[str, Any]:
    return {"userid": user.user_id, "username": user.username}


# --- reads ------------------------------------------------------------------------------------------
def find(user_id: str) -> User | None:
    if not valid_user_id(user_id):
        return None  # such an id can never have been stored
    return services.user_store().get(user_id)


def get(user_id: str) -> User:
    user = find(user_id)
    if user is None:
        raise NotFound(NOT_FOUND)
    return user


def list_users(amount: int, offset: int) -> list[User]:
    """The page ``[offset, offset + amount)`` of every user, by username."""
    return services.user_store().list(amount, offset)


# --- writes -----------------------------------------------------------------------------------------
def create(data: Any) -> User:
    """``POST /user``: validate (nothing is written on a 400), hash the password, store."""
    from .useradmin_input import NewUser, parse

    new = parse(NewUser, data)
    if new.password.casefold() == new.username.casefold():
        raise InvalidRequest(PASSWORD_IS_USERNAME)
    users = services.user_store()
    if users.get_by_username(new.username) is not None:
        raise Conflict(TAKEN)  # answered before spending a password hash; the write below still guards
    now = clock.now()
    user = User(user_id=uuid.uuid4().hex, username=new.username, password_hash=_hash(new.password),
                **new.model_dump(exclude={"username", "password"}), created_at=now, updated_at=now)
    try:
        users.create(user)
    except UsernameTaken as exc:
        raise Conflict(TAKEN) from exc
    return user


def update(user_id: str, data: Any, *, client_id: str) -> None:
    """``PUT /user/id/{userid}``: the members sent. Disabling an active user or a new password revokes
    everything the user holds in the same transaction; anything else is one conditional update.
    ``client_id`` is the admin client acting: the ``clientId`` of the ``oauthTokenRevoked``."""
    if isinstance(data, dict) and "username" in data:
        raise InvalidRequest(FIXED_USERNAME)
    from .useradmin_input import UserChanges, parse

    changes = parse(UserChanges, data)
    sent = changes.model_fields_set
    user = get(user_id)
    values: dict[str, Any] = {name: getattr(changes, name) for name in sent - {"password"}}
    if "password" in sent:
        if changes.password.casefold() == user.username.casefold():
            raise InvalidRequest(PASSWORD_IS_USERNAME)
        values["password_hash"] = _hash(changes.password)
    values["updated_at"] = clock.now()
    if "password" in sent or (values.get("status") == UserStatus.DISABLED.value and user.active):
        _revoke(user, values, client_id)
        return
    try:
        services.item_store().write(Update(*user_key(user.user_id), set=values, condition=Exists()))
    except ConditionFailed as exc:
        raise NotFound(NOT_FOUND) from exc  # deleted since it was read


def revoke(user_id: str, *, client_id: str) -> None:
    """``PUT /user/id/{userid}/revoke``: end every session, connection and token of the user
    (``client_id``: the admin client acting)."""
    _revoke(get(user_id), {}, client_id)


def delete(user_id: str, *, client_id: str) -> None:
    """``DELETE /user/id/{userid}``: the user and their username, with one ``oauthTokenRevoked``
    (``client_id``: the admin client acting)."""
    user = get(user_id)
    try:
        revocation.delete_user(user, client_id=client_id)
    except ConditionFailed as exc:
        if exc.index in (None, 0):
            raise NotFound(NOT_FOUND) from exc  # deleted since it was read
        raise


def _revoke(user: User, changes: dict[str, Any], client_id: str) -> None:
    """:func:`latchkey.revocation.revoke_user`; on a concurrent generation change, read and try once more."""
    for attempt in range(2):
        try:
            revocation.revoke_user(user, client_id=client_id, **changes)
            return
        except ConditionFailed as exc:
            fresh = services.user_store().get(user.user_id)
            if fresh is None:
                raise NotFound(NOT_FOUND) from exc
            if attempt:
                raise Conflict(CONCURRENT) from exc
            user = fresh
