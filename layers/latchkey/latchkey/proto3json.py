"""Reading proto3 JSON messages (the protobuf JSON mapping) for the RPC-style APIs Latchkey speaks:
Tetrate's ``tetrateio.api.iam.v2.OAuth`` and Neosync's ``mgmt.v1alpha1.AuthService``.

A field is accepted under its lowerCamelCase JSON name or its original snake_case proto name; naming one
field twice (once each way) or an unknown field is an error, as in protobuf's JSON parsers; ``null``
means "absent".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import InvalidRequest


def fields(message: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """The message's fields under their JSON names (``names``: JSON name → proto name)."""
    proto = {snake: camel for camel, snake in names.items()}
    found: dict[str, Any] = {}
    for name, value in message.items():
        json_name = name if name in names else proto.get(name)
        if json_name is None:
            raise InvalidRequest(f"Unknown field {name[:64]!r}.")
        if json_name in found:
            raise InvalidRequest(f"The field {json_name} is repeated.")
        if value is not None:
            found[json_name] = value
    return found
