"""Starting the upstream providers and signing in on them like a browser.

- :func:`start_oidc_provider`: ``node tests/upstream/oidc_provider.mjs`` (node-oidc-provider from npm,
  ``make deps``) on a free port, waited for until it prints its ready line; ``.stop()`` ends it.
- :class:`UpstreamBrowser`: a user agent for upstream hosts with a real cookie jar (paths, signed
  cookies), never following redirects, so tests see each hop.
- :func:`oidc_sign_in`: from an upstream authorization URL, through node-oidc-provider's development
  login and consent pages, to the redirect that leaves the provider (normally Latchkey's callback).

A module that needs a provider wraps these in its own fixtures, e.g.::

    @pytest.fixture(scope="module")
    def upstream():
        provider = start_oidc_provider(redirect_uris=[...])
        yield provider
        provider.stop()
"""

from __future__ import annotations

import html
import http.cookiejar
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("oidc_provider.mjs")
DEFAULT_CLIENT_ID = "latchkey"
DEFAULT_CLIENT_SECRET = "latchkey-upstream-secret"


# --- node-oidc-provider ------------------------------------------------------------------------------
@dataclass
class NodeOidcProvider:
    process: subprocess.Popen
    port: int
    client_id: str
    client_secret: str
    lines: list[str] = field(default_factory=list)  # stdout and stderr, as read

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def output(self) -> str:
        return "".join(self.lines)

    def stop(self, timeout: float = 10) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()


def _pump(stream, lines: list[str], ready: threading.Event | None) -> None:
    for line in iter(stream.readline, ""):
        lines.append(line)
        if ready is not None and line.startswith("READY "):
            ready.set()
    stream.close()


def start_oidc_provider(redirect_uris: list[str], *, client_id: str = DEFAULT_CLIENT_ID,
                        client_secret: str = DEFAULT_CLIENT_SECRET, bad_jwks: bool = False,
                        port: int | None = None, timeout: float = 30) -> NodeOidcProvider:
    """Start node-oidc-provider with one client for Latchkey; fails the test clearly when node or the npm
    package is missing."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: the third-party login tests run node-oidc-provider")
    if not (ROOT / "node_modules" / "oidc-provider" / "package.json").exists():
        pytest.fail("node_modules/oidc-provider is missing: run `make deps` (npm ci)")
    port = port or free_port()
    args = [node, str(SCRIPT), "--port", str(port), "--client-id", client_id, "--client-secret", client_secret]
    for uri in redirect_uris:
        args += ["--redirect-uri", uri]
    if bad_jwks:
        args.append("--bad-jwks")
    env = {**os.environ, "NODE_NO_WARNINGS": "1"}
    # stdin is a pipe only this process holds: should it die without stopping the provider, the pipe
    # closes and the provider exits too
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    provider = NodeOidcProvider(process, port, client_id, client_secret)
    ready = threading.Event()
    threading.Thread(target=_pump, args=(process.stdout, provider.lines, ready), daemon=True).start()
    threading.Thread(target=_pump, args=(process.stderr, provider.lines, None), daemon=True).start()
    deadline = time.monotonic() + timeout
    while not ready.wait(0.05):
        if process.poll() is not None or time.monotonic() > deadline:
            provider.stop()
            time.sleep(0.1)  # the last lines
            pytest.fail(f"node-oidc-provider did not start (exit {process.returncode}):\n{provider.output()}")
    return provider


# --- a browser for upstream hosts ---------------------------------------------------------------------
class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass
class Page:
    url: str
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    @property
    def location(self) -> str:
        """The redirect target, absolute."""
        return urllib.parse.urljoin(self.url, self.headers["location"])

    def forms(self) -> list[dict[str, Any]]:
        """Every form on the page: ``{"action": absolute URL, "method", "fields": {name: value}}``."""
        found = []
        for match in re.finditer(r"<form\b([^>]*)>(.*?)</form>", self.text, re.S | re.I):
            attrs = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
            fields = {}
            for tag in re.findall(r"<input\b[^>]*>", match.group(2), re.I):
                values = dict(re.findall(r'(\w+)="([^"]*)"', tag))
                if "name" in values:
                    fields[html.unescape(values["name"])] = html.unescape(values.get("value", ""))
            found.append({"action": urllib.parse.urljoin(self.url, html.unescape(attrs.get("action", ""))),
                          "method": attrs.get("method", "get").lower(), "fields": fields})
        return found

    def links(self) -> dict[str, str]:
        """Link text → absolute href."""
        return {re.sub(r"<[^>]+>", "", html.unescape(text)).strip(): urllib.parse.urljoin(self.url, html.unescape(href))
                for href, text in re.findall(r'<a\b[^>]*href="([^"]*)"[^>]*>(.*?)</a>', self.text, re.S | re.I)}


class UpstreamBrowser:
    """HTTP with a standard cookie jar (so cookie paths and domains are honoured); redirects returned."""

    def __init__(self) -> None:
        self.jar = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect)

    def request(self, method: str, url: str, form: dict[str, str] | None = None) -> Page:
        body = urllib.parse.urlencode(form).encode() if form is not None else None
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if form is not None else {}
        request = urllib.request.Request(url, data=body, headers=headers, method=method)
        try:
            with self._opener.open(request, timeout=30) as answer:
                return Page(url, answer.status, {k.lower(): v for k, v in answer.headers.items()}, answer.read())
        except urllib.error.HTTPError as error:
            return Page(url, error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())

    def get(self, url: str) -> Page:
        return self.request("GET", url)

    def post(self, url: str, form: dict[str, str]) -> Page:
        return self.request("POST", url, form)


def oidc_sign_in(browser: UpstreamBrowser, url: str, login: str, *, deny: bool = False,
                 max_hops: int = 12) -> str:
    """Follow ``url`` (node-oidc-provider's ``/auth?…``) through its development pages: the login form
    (any login, any password), then the consent form (or its "[ Cancel ]" link with ``deny``); return
    the first redirect that leaves the provider (with ``code`` or ``error`` and ``state``)."""
    origin = "{0.scheme}://{0.netloc}".format(urllib.parse.urlsplit(url))
    for _ in range(max_hops):
        if not url.startswith(origin + "/"):
            return url
        page = browser.get(url)
        if page.status in (302, 303):
            url = page.location
            continue
        assert page.status == 200, (page.status, page.text[:800])
        forms = page.forms()
        assert forms, page.text[:800]
        form = forms[0]
        prompt = form["fields"].get("prompt")
        if deny and prompt == "consent":
            url = page.links()["[ Cancel ]"]
            continue
        fields = dict(form["fields"])
        if prompt == "login":
            fields.update(login=login, password="any-password")
        answer = browser.post(form["action"], fields)
        assert answer.status in (302, 303), (answer.status, answer.text[:800])
        url = answer.location
    raise AssertionError(f"no redirect out of {origin} after {max_hops} hops (last {url})")
