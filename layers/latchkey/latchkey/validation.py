"""One wording for a pydantic validation error, for every route that validates a body with pydantic
(apps, users, platforms): "<field path>: <message>", the first error only, never the input value."""

from __future__ import annotations

from typing import Any


def first_error(exc: Any, *, terse: bool = False) -> str:
    """``exc`` is a ``pydantic.ValidationError`` (not imported here: this module costs no pydantic).
    ``terse``: no "<field>: " prefix when the message already starts with the field's name."""
    first = exc.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown field"
    text = message if terse and message.startswith(f"{where} ") else f"{where}: {message}"
    return text[:300]
