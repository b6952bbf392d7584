"""The ``latchkey`` command-line tool, run as a subprocess (the installed console script) against the local
stack (``python -m devstack up``).

- Admin commands with the seeded admin client's credentials: apps (create, list, get, update, rotate,
  logo, delete), users (create, list, get, update, revoke, delete), platforms (list), in table and JSON
  output, and what must fail (the server's message on stderr, exit 1; usage errors exit 2).
- ``latchkey login --no-browser``: the printed URL is followed over HTTP by :class:`tests.flow_support.Agent`
  (login page, alice's password, consent) up to the CLI's loopback redirect; then ``token`` (checked at
  userinfo), ``status``, a refresh once ``expires_at`` is in the past (the refresh token rotates), the
  credentials file's mode 0600 and ``logout``.
- ``latchkey login --device``: the CLI polls while an Agent signs in at the hosted ``/device`` page and
  approves the printed code; denial ends the CLI with exit 1.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.test_authorization_code_e2e import ADMIN_ID, ADMIN_SECRET, PASSWORD, USERNAME
from tests.e2e.test_local_stack import start_stack
from tests.flow_support import Agent, basic
from tests.helpers import http

pytestmark = pytest.mark.e2e

CLI_TIMEOUT = 60


def cli_command() -> list[str]:
    """The console script ``pip install -e .`` put next to this interpreter."""
    script = Path(sys.executable).parent / "latchkey"
    assert script.exists(), f"{script} is missing: run `pip install -e .` (make deps)"
    return [str(script)]


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


class Cli:
    def __init__(self, url: str, config_dir: Path, **env: str) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LATCHKEY_")}
        self.env.update(LATCHKEY_URL=url, LATCHKEY_CONFIG_DIR=str(config_dir), PYTHONUNBUFFERED="1", **env)
        self.config_dir = config_dir
        self.started: list[subprocess.Popen] = []

    def __call__(self, *args: str, stdin: str | None = None) -> Run:
        done = subprocess.run([*cli_command(), *args], env=self.env, input=stdin, capture_output=True, text=True,
                              timeout=CLI_TIMEOUT, check=False)
        return Run(done.returncode, done.stdout, done.stderr)

    def start(self, *args: str) -> subprocess.Popen:
        process = subprocess.Popen([*cli_command(), *args], env=self.env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        self.started.append(process)
        return process

    def stop(self) -> None:
        """End what :meth:`start` started and is still running (a failed test's CLI)."""
        for process in self.started:
            if process.poll() is None:
                process.kill()
                process.communicate(timeout=10)

    @property
    def credentials(self) -> Path:
        return self.config_dir / "credentials.json"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = start_stack(tmp_path_factory.mktemp("cli-stack") / "state", env={"DEVICE_POLL_INTERVAL": "1"})
    yield running
    running.stop()


@pytest.fixture
def admin(stack, tmp_path) -> Cli:
    return Cli(stack.url, tmp_path / "config", LATCHKEY_ADMIN_CLIENT_ID=ADMIN_ID,
               LATCHKEY_ADMIN_CLIENT_SECRET=ADMIN_SECRET)


@pytest.fixture
def cli(stack, tmp_path) -> Cli:
    running = Cli(stack.url, tmp_path / "config")
    yield running
    running.stop()


def ok(run: Run) -> Run:
    assert run.code == 0, (run.code, run.out, run.err)
    return run


def failed(run: Run, code: int = 1) -> str:
    assert run.code == code, (run.code, run.out, run.err)
    assert run.out == ""
    return run.err


def userinfo(stack, token: str) -> dict:
    answer = http("GET", f"{stack.url}/api/oauth/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert answer.status == 200, answer.body
    return answer.json()


def read_until(stream, pattern: str, seen: list[str], deadline: float = 30) -> re.Match:
    """Read the process's stderr line by line until ``pattern`` matches (the lines go to ``seen``)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        found = re.search(pattern, line)
        if found:
            return found
    raise AssertionError(f"{pattern!r} never came: {''.join(seen)}")


def finish(process: subprocess.Popen, seen: list[str]) -> Run:
    """Wait for the CLI, then read the rest of its output through the same buffered streams read_until used
    (``communicate`` reads the raw pipes and would lose what those buffers already hold)."""
    process.wait(timeout=CLI_TIMEOUT)
    out, err = process.stdout.read(), process.stderr.read()
    return Run(process.returncode, out, "".join(seen) + err)


# --- the console script -------------------------------------------------------------------------------------
def test_help_version_and_usage_errors(cli):
    assert ok(cli("--version")).out.strip() == "latchkey 0.1.0"
    assert "app" in ok(cli("--help")).out
    assert "the following arguments are required: --name" in failed(cli("app", "create"), 2)
    assert "invalid choice: 'frobnicate'" in failed(cli("frobnicate"), 2)
    assert "argument --output/-o: invalid choice" in failed(cli("app", "list", "--output", "yaml"), 2)


def test_an_unreachable_server_is_a_clear_error(tmp_path):
    from tests.helpers import free_port

    dead = Cli(f"http://127.0.0.1:{free_port()}", tmp_path, LATCHKEY_TOKEN="x")
    assert failed(dead("app", "list")).startswith(f"latchkey: cannot reach {dead.env['LATCHKEY_URL']}: ")


# --- apps ---------------------------------------------------------------------------------------------------
def test_app_lifecycle(admin, stack, tmp_path):
    created = ok(admin("app", "create", "--name", "CLI Shop", "--url", "https://shop.example",
                       "--redirect-uri", "https://shop.example/cb", "--grant-type", "authorization_code",
                       "--grant-type", "refresh_token", "-o", "json")).json()
    assert set(created) == {"client_id", "key"} and created["key"].startswith("lk_cs_")
    client_id = created["client_id"]

    listed = ok(admin("app", "list", "--output", "json")).json()["apps"]
    assert client_id in [app["client_id"] for app in listed]
    table = ok(admin("app", "list")).out.splitlines()
    assert table[0].split() == ["CLIENT_ID", "NAME", "TOKEN_ENDPOINT_AUTH_METHOD", "GRANT_TYPES", "REDIRECT_URIS"]
    assert f"{client_id}  CLI Shop" in "\n".join(table)

    app = ok(admin("app", "get", client_id, "-o", "json")).json()
    assert (app["name"], app["url"], app["redirect_uris"], app["grant_types"], app["response_types"]) == (
        "CLI Shop", "https://shop.example", ["https://shop.example/cb"], ["authorization_code", "refresh_token"],
        ["code"])
    shown = ok(admin("app", "get", client_id)).out
    assert re.search(r"^name\s+CLI Shop$", shown, re.M) and re.search(r"^grant_types\s+authorization_code,"
                                                                       r"refresh_token$", shown, re.M)

    assert ok(admin("app", "update", client_id, "--name", "CLI Shop 2", "--scope", "openid")).out == \
        f"Updated app {client_id}.\n"
    app = ok(admin("app", "get", client_id, "-o", "json")).json()
    assert (app["name"], app["url"], app["redirect_uri"], app["scope"]) == (
        "CLI Shop 2", "https://shop.example", "https://shop.example/cb", "openid")  # the rest kept

    rotated = ok(admin("app", "rotate", client_id, "-o", "json")).json()
    assert rotated["client_id"] == client_id and rotated["key"] not in (None, created["key"])
    answer = http("POST", f"{stack.url}/api/oauth/token", body=b"grant_type=client_credentials",
                  headers={"Content-Type": "application/x-www-form-urlencoded",
                           "Authorization": basic(client_id, created["key"])})
    assert answer.status == 401  # the old secret stopped working

    from PIL import Image

    logo = tmp_path / "logo.png"
    Image.new("RGBA", (16, 16), (200, 30, 30, 255)).save(logo)
    assert ok(admin("app", "logo", client_id, str(logo))).out == f"Uploaded the logo of app {client_id}.\n"
    assert ok(admin("app", "get", client_id, "-o", "json")).json()["logo"].startswith("data:image/png;base64,")
    image = http("GET", f"{stack.url}/api/oauth/app/id/{client_id}/image")
    assert image.status == 200 and image.body.startswith(b"\x89PNG")

    not_an_image = tmp_path / "notes.txt"
    not_an_image.write_text("hello")
    assert failed(admin("app", "logo", client_id, str(not_an_image))).startswith("latchkey: ")
    assert failed(admin("app", "logo", client_id, str(tmp_path / "missing.png"))).startswith(
        f"latchkey: cannot read {tmp_path / 'missing.png'}: ")

    assert ok(admin("app", "delete", client_id, "-o", "json")).json() == {"client_id": client_id, "deleted": True}
    assert failed(admin("app", "get", client_id)) == "latchkey: No app exists with that client id. (not_found)\n"
    assert failed(admin("app", "delete", client_id)).endswith("(not_found)\n")


def test_public_app_table_output(admin):
    run = ok(admin("app", "create", "--name", "CLI Notes", "--public", "--redirect-uri", "http://127.0.0.1/cb",
                   "--grant-type", "authorization_code"))
    lines = run.out.splitlines()
    assert re.fullmatch(r"client_id  [0-9a-f]{32}", lines[0]) and lines[1] == "key"
    ok(admin("app", "delete", lines[0].split()[1]))


def test_app_errors_carry_the_servers_message(admin, cli):
    err = failed(admin("app", "create", "--name", "Bad", "--redirect-uri", "https://bad.example/cb#frag",
                       "--grant-type", "authorization_code"))
    assert err == "latchkey: A redirect URI must not contain a fragment. (invalid_redirect_uri)\n"
    assert "(invalid_client_metadata)" in failed(admin("app", "create", "--name", "Bad", "--data", '{"nope": 1}'))
    assert "not JSON" in failed(admin("app", "create", "--name", "Bad", "--data", "{"), 2)
    assert failed(cli("app", "list")) == ("latchkey: no credentials: pass --token, or --client-id and "
                                          "--client-secret, or run `latchkey login`\n")
    err = failed(cli("app", "list", "--client-id", ADMIN_ID, "--client-secret", "wrong"))
    assert err.startswith(f"latchkey: cannot get an admin token for {ADMIN_ID}: ") and "(invalid_client)" in err
    assert failed(cli("app", "list", "--token", "not-a-token")).startswith("latchkey: ")
    assert "go together" in failed(cli("app", "list", "--client-id", ADMIN_ID), 2)


# --- users and platforms ----------------------------------------------------------------------------------
def test_user_lifecycle(admin, stack):
    created = ok(admin("user", "create", "--username", "cli.carol", "--password-stdin", "--email",
                       "carol@example.com", "--name", "Carol Example", "-o", "json",
                       stdin="carol's long password\n")).json()
    userid = created["userid"]
    assert created == {"userid": userid, "username": "cli.carol"} and re.fullmatch(r"[0-9a-f]{32}", userid)

    listed = ok(admin("user", "list", "--amount", "255", "-o", "json")).json()["users"]
    assert {"alice", "cli.carol"} <= {user["username"] for user in listed}
    table = ok(admin("user", "list")).out
    assert re.search(rf"^{userid}\s+cli\.carol\s+carol@example\.com\s+Carol Example\s+active$", table, re.M)

    user = ok(admin("user", "get", userid, "-o", "json")).json()
    assert (user["username"], user["email"], user["name"], user["status"]) == (
        "cli.carol", "carol@example.com", "Carol Example", "active")

    assert ok(admin("user", "update", userid, "--given-name", "Carol", "--no-email-verified")).out == \
        f"Updated user {userid}.\n"
    user = ok(admin("user", "get", userid, "-o", "json")).json()
    assert (user["given_name"], user["email_verified"]) == ("Carol", False)
    assert "nothing to change" in failed(admin("user", "update", userid), 2)
    assert ok(admin("user", "update", userid, "--status", "disabled")).code == 0
    assert ok(admin("user", "get", userid, "-o", "json")).json()["status"] == "disabled"

    assert ok(admin("user", "revoke", userid)).out == f"Revoked every session and token of user {userid}.\n"
    taken = failed(admin("user", "create", "--username", "CLI.Carol", "--password", "another password"))
    assert taken.startswith("latchkey: ") and taken.endswith(")\n")
    assert ok(admin("user", "delete", userid, "-o", "json")).json() == {"userid": userid, "deleted": True}
    assert failed(admin("user", "get", userid)).endswith("(not_found)\n")


def test_user_errors(admin):
    err = failed(admin("user", "create", "--username", "cli.dave", "--password", "short"))
    assert err.startswith("latchkey: ") and "password" in err.lower()
    err = failed(admin("user", "create", "--username", "alice", "--password", "a long enough password"))
    assert err.startswith("latchkey: ") and err.rstrip().endswith(")")
    assert "--password-stdin" in failed(admin("user", "create", "--username", "cli.erin"), 2)  # stdin is no TTY


def test_platform_list(admin):
    assert ok(admin("platform", "list", "-o", "json")).json() == {"platforms": []}
    assert ok(admin("platform", "list")).out.split() == ["PLATFORM_ID", "TYPE", "DISPLAY_NAME", "ENABLED",
                                                         "CLIENT_ID"]
    assert failed(admin("platform", "get", "nope")).startswith("latchkey: ")


# --- login: the browser flow over HTTP --------------------------------------------------------------------
def walk_to_loopback(stack, url: str) -> str:
    """Follow the sign-in like a browser (login as alice, consent) until it leaves the stack; that URL."""
    agent = Agent(stack.url)
    answer = agent.get(url)
    for _ in range(5):
        assert answer.status == 302, (answer.status, answer.text[:500])
        target = answer.location
        if target.startswith(f"{stack.url}/api/oauth/login"):
            answer = agent.login(agent.get(target), USERNAME, PASSWORD)
        elif target.startswith(f"{stack.url}/api/oauth/consent"):
            answer = agent.consent(agent.get(target))
        else:
            return target
    raise AssertionError("the flow never reached the CLI")


def login(cli: Cli, stack) -> Run:
    process = cli.start("login", "--no-browser")
    seen: list[str] = []
    url = read_until(process.stderr, r"^\s+(http://\S+/api/oauth/authorize\?\S+)$", seen).group(1)
    redirect = walk_to_loopback(stack, url)
    assert re.match(r"http://127\.0\.0\.1:\d+/api/auth/callback\?state=[^&]+&code=", redirect), redirect
    page = http("GET", redirect)
    assert page.status == 200 and b"Signed in" in page.body
    return finish(process, seen)


def test_login_token_status_refresh_logout(cli, stack):
    assert failed(cli("token")) == "latchkey: not logged in, run `latchkey login`\n"
    assert failed(cli("status")) == "latchkey: not logged in\n"

    run = ok(login(cli, stack))
    assert run.out == f"Logged in to {stack.url} as {USERNAME}.\n"
    assert f"Tokens saved to {cli.credentials}" in run.err

    assert stat.S_IMODE(cli.credentials.stat().st_mode) == 0o600
    assert stat.S_IMODE(cli.config_dir.stat().st_mode) == 0o700
    saved = json.loads(cli.credentials.read_text())
    assert set(saved) == {"access_token", "refresh_token", "id_token", "expires_at", "scope", "server", "client_id"}
    assert (saved["server"], saved["client_id"]) == (stack.url, "latchkey-cli")
    assert set(saved["scope"].split()) == {"openid", "profile", "email", "offline_access"}

    token = ok(cli("token")).out.strip()
    assert token == saved["access_token"]  # still fresh: no refresh
    assert userinfo(stack, token)["preferred_username"] == USERNAME

    status = ok(cli("status")).out
    assert status.startswith(f"Logged in to {stack.url} as {USERNAME} (sub ")
    described = ok(cli("status", "-o", "json")).json()
    assert (described["username"], described["expired"], described["refreshable"]) == (USERNAME, False, True)

    # expired: `token` refreshes, the refresh token rotates, the file stays 0600
    saved["expires_at"] = int(time.time()) - 10
    cli.credentials.write_text(json.dumps(saved))
    assert "expired" in ok(cli("status")).out
    refreshed = ok(cli("token")).out.strip()
    after = json.loads(cli.credentials.read_text())
    assert refreshed != token and after["access_token"] == refreshed
    assert after["refresh_token"] != saved["refresh_token"] and after["expires_at"] > time.time() + 60
    assert stat.S_IMODE(cli.credentials.stat().st_mode) == 0o600
    assert userinfo(stack, refreshed)["preferred_username"] == USERNAME

    # the user's own token is the fallback for admin commands: alice is no admin
    assert failed(cli("app", "list")).startswith("latchkey: ")

    run = ok(cli("logout"))
    assert run.out == f"Logged out of {stack.url}.\n"
    assert re.search(r"To end the browser session too, open:\n  http://\S+\?id_token_hint=", run.err), run.err
    assert not cli.credentials.exists()
    assert failed(cli("status")) == "latchkey: not logged in\n"
    # the refresh token was revoked: reusing it fails
    answer = http("POST", f"{stack.url}/api/oauth/token", body=(
        f"grant_type=refresh_token&client_id=latchkey-cli&refresh_token={after['refresh_token']}").encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status == 400 and answer.json()["error"] == "invalid_grant"
    assert ok(cli("logout")).err == "Not logged in.\n"


def test_a_revoked_session_cannot_refresh(cli, stack):
    ok(login(cli, stack))
    saved = json.loads(cli.credentials.read_text())
    http("POST", f"{stack.url}/api/oauth/revoke", body=(
        f"token={saved['refresh_token']}&client_id=latchkey-cli").encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"})
    saved["expires_at"] = 0
    cli.credentials.write_text(json.dumps(saved))
    err = failed(cli("token"))
    assert err.startswith("latchkey: cannot refresh the session: ") and err.endswith("run `latchkey login`\n")


def test_a_wrong_state_or_an_error_fails_the_login(cli, stack):
    for query, message in (("code=abc&state=forged", "state does not match"),
                           ("error=access_denied&state={state}", "(access_denied)")):
        process = cli.start("login", "--no-browser")
        seen: list[str] = []
        url = read_until(process.stderr, r"^\s+(http://\S+/api/oauth/authorize\?\S+)$", seen).group(1)
        params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
        assert (params["code_challenge_method"], params["client_id"]) == ("S256", "latchkey-cli")
        http("GET", f"{params['redirect_uri']}?{query.format(state=params['state'])}")
        run = finish(process, seen)
        assert run.code == 1 and run.out == "" and message in run.err, run
        assert not cli.credentials.exists()


# --- login: the device flow ---------------------------------------------------------------------------------
def approve_device(stack, user_code: str, decision: str) -> None:
    from tests.unit.test_rfc8628_device_flow import approval_page, decide, signed_in

    browser = Agent(stack.url)
    signed_in(browser, PASSWORD)
    answer = decide(browser, approval_page(browser, user_code), decision)
    assert answer.status in (200, 303, 302), answer.status


def device_login(cli: Cli, stack, decision: str) -> Run:
    process = cli.start("login", "--device")
    seen: list[str] = []
    user_code = read_until(process.stderr, r"/device\?user_code=([A-Z0-9-]+)", seen).group(1)
    time.sleep(1.5)  # let the CLI poll (authorization_pending) at least once
    worker = threading.Thread(target=approve_device, args=(stack, user_code, decision))
    worker.start()
    worker.join(30)
    return finish(process, seen)


def test_device_login(cli, stack):
    run = ok(device_login(cli, stack, "allow"))
    assert run.out == f"Logged in to {stack.url} as {USERNAME}.\n"
    assert "Waiting for approval" in run.err and "approved" in run.err
    assert stat.S_IMODE(cli.credentials.stat().st_mode) == 0o600
    token = ok(cli("token")).out.strip()
    assert userinfo(stack, token)["preferred_username"] == USERNAME
    ok(cli("logout"))


def test_device_login_denied(cli, stack):
    run = device_login(cli, stack, "deny")
    assert run.code == 1 and run.out == ""
    assert "latchkey: login denied: the request was not approved (access_denied)" in run.err
    assert not cli.credentials.exists()


def test_the_console_script_is_installed():
    assert shutil.which("latchkey", path=str(Path(sys.executable).parent))
