"""The request bodies of governor's user routes (``POST /user``, ``PUT /user/id/{userid}``), validated by
pydantic. A module of its own so that the routes that only read users never import pydantic (it cost
those functions about 150 ms of cold start, issue 8); :mod:`latchkey.useradmin` imports it when a body
has to be parsed.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from .errors import InvalidRequest
from .loopback import check_web_url
from .useradmin import _EMAIL, _USERNAME, MAX_EMAIL, MAX_NAME, MAX_PASSWORD, MIN_PASSWORD
from .validation import first_error

M = TypeVar("M", bound=BaseModel)


class _Profile(BaseModel):
    """The members a caller may set on a user, besides the username, password and status."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    email: str = Field("", max_length=MAX_EMAIL)
    email_verified: bool = False
    name: str = Field("", max_length=MAX_NAME)
    given_name: str = Field("", max_length=MAX_NAME)
    family_name: str = Field("", max_length=MAX_NAME)
    picture: str = ""
    profile: str = ""

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        local = value.rpartition("@")[0]
        if value and (not _EMAIL.match(value) or len(local) > 64):
            raise ValueError("email must be a valid email address")
        return value

    @field_validator("name", "given_name", "family_name")
    @classmethod
    def _printable(cls, value: str) -> str:
        if value and (not value.isprintable() or not value.strip()):
            raise ValueError("must be printable text")
        return value

    @field_validator("picture", "profile")
    @classmethod
    def _url(cls, value: str, info: ValidationInfo) -> str:
        return check_web_url(value, info.field_name) if value else value


class NewUser(_Profile):
    """``POST /user``."""

    username: str
    password: str = Field(min_length=MIN_PASSWORD, max_length=MAX_PASSWORD)

    @field_validator("username")
    @classmethod
    def _username(cls, value: str) -> str:
        if not _USERNAME.match(value):
            raise ValueError("username must be 3 to 64 letters, digits or ._-@ characters")
        return value


class UserChanges(_Profile):
    """``PUT /user/id/{userid}``: only the members sent (``model_fields_set``) change."""

    status: Literal["active", "disabled"] = "active"
    password: str = Field("", min_length=MIN_PASSWORD, max_length=MAX_PASSWORD)


def parse(model: type[M], data: Any) -> M:
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(first_error(exc)) from exc
