"""``latchkey login`` with headless Chromium as the person: the CLI (the installed console script, run as a
subprocess with ``--no-browser``) prints the sign-in URL; Chromium opens it, signs in as the seeded user
through the hosted login page, clicks Allow and lands on the CLI's loopback callback, which answers "Signed
in". The CLI exits 0 and ``latchkey token`` prints a token that userinfo accepts.
"""

from __future__ import annotations

import pytest

from tests.browser.test_hosted_flow_browser import on, sign_in
from tests.e2e.test_authorization_code_e2e import USERNAME
from tests.e2e.test_cli_e2e import Cli, finish, ok, read_until, userinfo

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


@pytest.fixture
def cli(stack, tmp_path):
    running = Cli(stack.url, tmp_path / "config")
    yield running
    running.stop()


def test_cli_login_in_chromium(cli, stack, page, console):
    process = cli.start("login", "--no-browser")
    seen: list[str] = []
    url = read_until(process.stderr, r"^\s+(http://\S+/api/oauth/authorize\?\S+)$", seen).group(1)

    page.goto(url)
    page.wait_for_url(lambda current: current.startswith(f"{stack.url}/api/oauth/login"))
    sign_in(page, stack)
    if on(page, f"{stack.url}/api/oauth/consent"):
        page.get_by_role("button", name="Allow").click()
    page.wait_for_url(lambda current: "/api/auth/callback?" in current)
    assert page.url.startswith("http://127.0.0.1:")
    assert page.get_by_role("heading", level=1).inner_text() == "Signed in"

    run = ok(finish(process, seen))
    assert run.out == f"Logged in to {stack.url} as {USERNAME}.\n"
    assert not [line for line in console if line.startswith("pageerror")], console
    token = ok(cli("token")).out.strip()
    assert userinfo(stack, token)["preferred_username"] == USERNAME
