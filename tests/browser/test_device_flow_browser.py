"""The device authorization grant (RFC 8628) over the local stack, with headless Chromium as the person.

A "device" (plain HTTP from the test) asks ``/api/oauth/device/code`` for a code and polls the token
endpoint, first too fast (``authorization_pending``, then ``slow_down``), then at the interval it was given
(plus 5 s per ``slow_down``) from a background thread. Chromium opens ``verification_uri_complete``, signs
in as the seeded user through the hosted login page, lands back on ``/device`` with the code and clicks
Allow (the poller gets verified tokens) or Deny (``access_denied``). A stack whose ``DEVICE_CODE_TTL`` is
two seconds shows ``expired_token`` and the page's "invalid or expired".
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.browser.test_hosted_flow_browser import csp_violations, no_script_and_style_applied, on, sign_in
from tests.e2e.test_authorization_code_e2e import (
    STACK_ENV,
    USERNAME,
    admin_token,
    userinfo,
    verify_access_token,
)
from tests.e2e.test_local_stack import start_stack
from tests.flow_support import basic
from tests.helpers import Answer, http_form, http_json

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

GRANT = "urn:ietf:params:oauth:grant-type:device_code"
INTERVAL = 2  # seconds: two polls in a row are always "too fast", and a patient poller is still quick
POLL_DEADLINE = 60


# --- the stack and its device apps ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = start_stack(tmp_path_factory.mktemp("device-stack") / "state",
                          env={**STACK_ENV, "DEVICE_POLL_INTERVAL": str(INTERVAL)})
    yield running
    running.stop()


def create_device_app(stack, token: str, *, name: str, public: bool) -> tuple[str, str | None]:
    """An app registered for the device grant (and refresh tokens), over governor's API."""
    created = http_json("POST", f"{stack.url}/api/oauth/app", {
        "name": name, "redirect_uris": [], "grant_types": [GRANT, "refresh_token"], "response_types": [],
        "token_endpoint_auth_method": "none" if public else "client_secret_basic", "scope": ""}, token=token)
    assert created.status == 201, created.body
    body = created.json()
    return body["client_id"], None if public else body["key"]


@pytest.fixture(scope="module")
def device_apps(stack) -> dict[str, tuple[str, str | None]]:
    token = admin_token(stack)
    return {"confidential": create_device_app(stack, token, name="Living Room TV", public=False),
            "public": create_device_app(stack, token, name="Terminal CLI", public=True)}


# --- the device --------------------------------------------------------------------------------------------------
def _auth(client_id: str, key: str | None, form: dict[str, str]) -> dict[str, str]:
    if key is None:
        form["client_id"] = client_id
        return {}
    return {"Authorization": basic(client_id, key)}


def request_device_code(stack, client_id: str, key: str | None, scope: str) -> dict[str, Any]:
    form = {"scope": scope}
    answer = http_form(f"{stack.url}/api/oauth/device/code", form, _auth(client_id, key, form))
    assert answer.status == 200, answer.body
    assert answer.headers["cache-control"] == "no-store"
    return answer.json()


def poll_once(stack, client_id: str, key: str | None, device_code: str) -> Answer:
    form = {"grant_type": GRANT, "device_code": device_code}
    return http_form(f"{stack.url}/api/oauth/token", form, _auth(client_id, key, form))


def error(answer: Answer) -> str:
    assert answer.status == 400, (answer.status, answer.body)
    return answer.json()["error"]


@dataclass
class Poller:
    """Polls in the background like a well-behaved device: waits ``interval`` between polls and 5 s more
    after each ``slow_down``; stops at the first answer that is neither."""

    stack: Any
    client_id: str
    key: str | None
    device_code: str
    interval: int
    seen: list[str] = field(default_factory=list)
    final: Answer | None = None
    thread: threading.Thread | None = None

    def start(self) -> Poller:
        self.thread = threading.Thread(target=self._run, name="device-poller", daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        deadline = time.monotonic() + POLL_DEADLINE
        while time.monotonic() < deadline:
            time.sleep(self.interval)
            answer = poll_once(self.stack, self.client_id, self.key, self.device_code)
            code = answer.json().get("error") if answer.status == 400 else None
            if code in ("authorization_pending", "slow_down"):
                self.seen.append(code)
                if code == "slow_down":
                    self.interval += 5
                continue
            self.final = answer
            return

    def result(self) -> Answer:
        assert self.thread is not None
        self.thread.join(POLL_DEADLINE + 10)
        assert self.final is not None, f"the device never got an answer: {self.seen}"
        return self.final


def start_polling(stack, client_id: str, key: str | None, body: dict[str, Any]) -> Poller:
    """Poll twice at once (pending, then too fast), then keep polling patiently in the background."""
    assert error(poll_once(stack, client_id, key, body["device_code"])) == "authorization_pending"
    assert error(poll_once(stack, client_id, key, body["device_code"])) == "slow_down"
    return Poller(stack, client_id, key, body["device_code"], body["interval"] + 5).start()


# --- the person ----------------------------------------------------------------------------------------------
def open_and_sign_in(page, stack, body: dict[str, Any]) -> None:
    """verification_uri_complete → the login page → back on /device with the code, ready to decide."""
    first = page.goto(body["verification_uri_complete"])
    assert first.ok and on(page, f"{stack.url}/api/oauth/login?request="), page.url
    assert "your device" in page.locator("main").inner_text()
    sign_in(page, stack)
    page.wait_for_url(lambda url: url.startswith(f"{stack.url}/device?user_code="))
    assert page.locator("#user-code").inner_text() == body["user_code"]
    no_script_and_style_applied(page)


# --- tests -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["confidential", "public"])
def test_approve_on_the_page_and_the_device_gets_tokens(kind, stack, device_apps, page, console):
    client_id, key = device_apps[kind]
    body = request_device_code(stack, client_id, key, "openid profile offline_access")
    assert body["interval"] == INTERVAL
    assert body["verification_uri"] == f"{stack.url}/device"
    poller = start_polling(stack, client_id, key, body)

    open_and_sign_in(page, stack, body)
    name = "Living Room TV" if kind == "confidential" else "Terminal CLI"
    assert name in page.locator("h1").inner_text()
    assert page.get_by_text("See your name and profile").is_visible()
    with page.expect_response(lambda r: r.request.method == "POST" and r.url == f"{stack.url}/device") as posted:
        page.get_by_role("button", name="Allow").click()
    assert posted.value.status == 200
    assert page.locator("h1").inner_text() == "You can return to your device"
    assert csp_violations(console) == [], console

    answer = poller.result()
    assert answer.status == 200, answer.body
    assert set(poller.seen) <= {"authorization_pending"}  # it kept to the interval: never slow_down again
    tokens = answer.json()
    assert {"access_token", "id_token", "refresh_token"} <= set(tokens)
    claims = verify_access_token(stack, tokens["access_token"], client_id=client_id)
    assert claims["grant_id"]
    assert userinfo(stack, tokens["access_token"])["preferred_username"] == USERNAME
    # exactly once
    assert error(poll_once(stack, client_id, key, body["device_code"])) == "invalid_grant"


def test_deny_on_the_page_is_access_denied(stack, device_apps, page, console):
    client_id, key = device_apps["confidential"]
    body = request_device_code(stack, client_id, key, "openid")
    poller = start_polling(stack, client_id, key, body)
    open_and_sign_in(page, stack, body)
    page.get_by_role("button", name="Deny").click()
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "You can return to your device"
    assert "denied" in page.locator("main").inner_text()
    assert error(poller.result()) == "access_denied"
    assert csp_violations(console) == [], console


def test_entering_the_code_by_hand(stack, device_apps, page):
    """verification_uri without the code: the enter-code form, typed in lower case without the hyphen."""
    client_id, key = device_apps["public"]
    body = request_device_code(stack, client_id, key, "openid")
    page.goto(body["verification_uri"])
    sign_in(page, stack)
    page.wait_for_url(f"{stack.url}/device")
    page.get_by_label("Code").fill(body["user_code"].replace("-", "").lower())
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(lambda url: url.startswith(f"{stack.url}/device?user_code="))
    assert page.locator("#user-code").inner_text() == body["user_code"]
    page.get_by_role("button", name="Allow").click()
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "You can return to your device"
    answer = poll_once(stack, client_id, key, body["device_code"])
    assert answer.status == 200, answer.body


# --- expiry, on a stack whose device codes live two seconds -------------------------------------------------
@pytest.fixture(scope="module")
def short_stack(tmp_path_factory):
    running = start_stack(tmp_path_factory.mktemp("device-short-stack") / "state",
                          env={**STACK_ENV, "DEVICE_CODE_TTL": "2"})
    yield running
    running.stop()


def test_an_expired_device_code_is_expired_token(short_stack, page):
    token = admin_token(short_stack)
    client_id, key = create_device_app(short_stack, token, name="Slow TV", public=False)
    body = request_device_code(short_stack, client_id, key, "openid")
    assert body["expires_in"] == 2
    assert error(poll_once(short_stack, client_id, key, body["device_code"])) == "authorization_pending"
    time.sleep(3)
    assert error(poll_once(short_stack, client_id, key, body["device_code"])) == "expired_token"
    page.goto(body["verification_uri_complete"])
    sign_in(page, short_stack)
    page.wait_for_url(lambda url: url.startswith(f"{short_stack.url}/device?user_code="))
    assert page.get_by_role("alert").inner_text() == "The code is invalid or has expired. Check it and try again."
