"""Fixtures for the browser tests: the local stack (one per module), a tiny "app" that owns the redirect
URI, and headless Chromium driven by Playwright.

Chromium is Debian's ``chromium`` package (``tools/install-chromium.sh``, run by ``make test``), launched
through ``executable_path``: ``playwright install`` is never needed. Every test gets a fresh browser context
(no cookies), and ``console`` collects what the page logged (CSP violations show up there).
"""

from __future__ import annotations

import shutil
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.e2e.test_authorization_code_e2e import STACK_ENV, admin_token, create_app
from tests.e2e.test_local_stack import start_stack

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"]
TIMEOUT_MS = 15_000


def chromium_path() -> str:
    return shutil.which("chromium") or "/usr/bin/chromium"


# --- the app: whatever lands on its redirect URI is recorded -----------------------------------------------
@dataclass
class AppServer:
    server: ThreadingHTTPServer
    hits: list[dict[str, str]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def callback(self) -> str:
        return f"{self.url}/cb"


def _handler(app: AppServer) -> type[BaseHTTPRequestHandler]:
    class Callback(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            parts = urllib.parse.urlsplit(self.path)
            if parts.path != "/cb":
                self.send_error(404)
                return
            app.hits.append(dict(urllib.parse.parse_qsl(parts.query)))
            body = (b"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Example app</title>"
                    b"</head><body><h1>Back at the app</h1></body></html>")
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return Callback


@pytest.fixture(scope="module")
def app_server() -> Iterator[AppServer]:
    app = AppServer(ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler))
    app.server.RequestHandlerClass = _handler(app)
    thread = threading.Thread(target=app.server.serve_forever, name="browser-test-app", daemon=True)
    thread.start()
    yield app
    app.server.shutdown()
    app.server.server_close()
    thread.join(5)


# --- the stack and its apps ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = start_stack(tmp_path_factory.mktemp("browser-stack") / "state", env=STACK_ENV)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def apps(stack, app_server) -> dict[str, tuple[str, str | None]]:
    token = admin_token(stack)
    return {"confidential": create_app(stack, token, name="Browser Shop", public=False,
                                       redirect_uris=[app_server.callback]),
            "public": create_app(stack, token, name="Browser Notes", public=True,
                                 redirect_uris=[app_server.callback])}


# --- Chromium ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import Error, sync_playwright

    executable = chromium_path()
    if not Path(executable).exists():
        pytest.fail(f"Chromium is not installed ({executable}): run tools/install-chromium.sh (`make browser`)")
    playwright = sync_playwright().start()
    try:
        try:
            launched = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        except Error as exc:
            pytest.fail(f"Chromium ({executable}) did not start: {exc}")
        yield launched
        launched.close()
    finally:
        playwright.stop()


@pytest.fixture
def context(browser):
    created = browser.new_context()
    created.set_default_timeout(TIMEOUT_MS)
    yield created
    created.close()


@pytest.fixture
def console() -> list[str]:
    """What the test's page logged: console messages and uncaught errors, as ``"<type>: <text>"``."""
    return []


@pytest.fixture
def page(context, console):
    opened = context.new_page()
    opened.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    opened.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
    return opened
