"""URL checks without pydantic: loopback hosts (RFC 8252 §7.3, what counts as "this machine" in a
redirect URI or a local URL) and plain web URLs (profile links, logos)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

MAX_URL = 2000

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_web_url(value: str, what: str) -> str:
    parts = urlsplit(value)
    if len(value) > MAX_URL or parts.scheme not in ("https", "http") or not parts.netloc or parts.fragment:
        raise ValueError(f"{what} must be an absolute http(s) URL without a fragment")
    return value
