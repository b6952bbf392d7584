"""JSON Web Key Set document (RFC 7517 §5) as served at ``GET /api/oauth/jwks``.

The body is rendered deterministically so its strong ETag changes only when the key set does;
``Cache-Control: public, max-age=<jwks_max_age>`` is what the key rotation schedule relies on.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class JwksDocument:
    body: str
    etag: str
    max_age: int

    def headers(self) -> dict[str, str]:
        return {
            "Content-Type": "application/jwk-set+json",
            "Cache-Control": f"public, max-age={self.max_age}",
            "ETag": self.etag,
        }

    def not_modified(self, if_none_match: str | None) -> bool:
        """RFC 9110 §13.1.2: weak comparison against any listed entity tag (or ``*``)."""
        if not if_none_match:
            return False
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in tags or self.etag in tags


def jwks_document(keys: list[dict[str, Any]], *, max_age: int) -> JwksDocument:
    body = json.dumps({"keys": keys}, separators=(",", ":"), sort_keys=True)
    etag = '"' + hashlib.sha256(body.encode("utf-8")).hexdigest()[:32] + '"'
    return JwksDocument(body=body, etag=etag, max_age=max_age)
