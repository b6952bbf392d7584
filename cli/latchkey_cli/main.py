"""The ``latchkey`` command: sign in to a Latchkey server and manage its apps, users and platforms.

Only the server's public HTTP API is used (discovery, the token, device, revocation endpoints and
governor's admin routes), with the standard library alone.

- ``latchkey login`` signs in with the authorization code flow (PKCE S256, ``state``, a one-shot loopback
  server at ``http://127.0.0.1:<port>/api/auth/callback``) or, with ``--device``, the device flow (RFC 8628).
  Tokens go to ``credentials.json`` in ``$LATCHKEY_CONFIG_DIR`` (default ``$XDG_CONFIG_HOME/latchkey``,
  i.e. ``~/.config/latchkey``), created with mode 0600 in a 0700 directory.
- ``latchkey token`` prints a fresh access token (refreshing it, with rotation, within 60 s of expiry);
  ``status`` names who is signed in; ``logout`` revokes the refresh token and forgets the tokens.
- ``latchkey app|user|platform ...`` call governor's admin API with ``--token``/``LATCHKEY_TOKEN``, a
  client credentials token of ``--client-id``/``--client-secret`` (``LATCHKEY_ADMIN_CLIENT_ID``/``_SECRET``)
  or the signed-in user's token.

Exit codes: 0 success, 1 failure (the server's message on stderr as ``latchkey: <message> (<code>)``),
2 usage errors, 130 interrupted.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import hashlib
import http.server
import itertools
import json
import mimetypes
import os
import secrets
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import webbrowser
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from latchkey_cli import __version__

DEFAULT_SERVER = "http://127.0.0.1:3000"
DEFAULT_CLIENT_ID = "latchkey-cli"
DEFAULT_SCOPE = "openid profile email offline_access"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
CALLBACK_PATH = "/api/auth/callback"
REFRESH_MARGIN = 60  # seconds: a token this close to expiry is refreshed first
ADMIN_SCOPES = {
    "app": "gov.user.oauth.app:read gov.user.oauth.app:write",
    "user": "gov.user.oauth.user:read gov.user.oauth.user:write",
    "platform": "gov.user.oauth.platform:read gov.user.oauth.platform:write",
}
NOT_LOGGED_IN = "not logged in, run `latchkey login`"
FORM = "application/x-www-form-urlencoded"


class CliError(Exception):
    """A failure to report as ``latchkey: <message>`` with exit code ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


# --- HTTP ------------------------------------------------------------------------------------------------
class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def http_request(method: str, url: str, *, body: bytes | None = None, headers: dict[str, str] | None = None,
                 timeout: float = 30) -> tuple[int, bytes]:
    """One request; HTTP errors are answers too, an unreachable server is a :class:`CliError`."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise CliError(f"not an http(s) URL: {url}", 2)
    request = urllib.request.Request(url, data=body, method=method,  # noqa: S310 - the scheme is checked above
                                     headers={"User-Agent": f"latchkey-cli/{__version__}", **(headers or {})})
    try:
        with _OPENER.open(request, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        origin = "{0.scheme}://{0.netloc}".format(urllib.parse.urlsplit(url))
        raise CliError(f"cannot reach {origin}: {reason}") from error


def error_message(status: int, data: bytes) -> str:
    """governor's ``{message, code}`` or OAuth's ``{error, error_description}`` as one line."""
    try:
        body = json.loads(data)
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("message"):
        return f"{body['message']} ({body.get('code', status)})"
    if isinstance(body, dict) and body.get("error"):
        return f"{body.get('error_description') or body['error']} ({body['error']})"
    return f"the server answered HTTP {status}"


def post_form(url: str, form: dict[str, str], headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    status, data = http_request("POST", url, body=urllib.parse.urlencode(form).encode(),
                                headers={"Content-Type": FORM, "Accept": "application/json", **(headers or {})})
    try:
        body = json.loads(data) if data else {}
    except ValueError:
        body = {}
    if status >= 400 and not isinstance(body, dict):
        body = {}
    if status >= 400 and "error" not in body:
        body = {"error": "server_error", "error_description": error_message(status, data)}
    return status, body if isinstance(body, dict) else {}


def oauth_error(body: dict[str, Any]) -> str:
    return f"{body.get('error_description') or body.get('error')} ({body.get('error')})"


_DISCOVERY: dict[str, dict[str, Any]] = {}


def discovery(server: str) -> dict[str, Any]:
    if server not in _DISCOVERY:
        status, data = http_request("GET", f"{server}/.well-known/openid-configuration",
                                    headers={"Accept": "application/json"})
        if status != 200:
            raise CliError(f"{server} is not a Latchkey server (discovery answered HTTP {status})")
        _DISCOVERY[server] = json.loads(data)
    return _DISCOVERY[server]


def basic_auth(client_id: str, secret: str) -> str:
    raw = f"{urllib.parse.quote(client_id, safe='')}:{urllib.parse.quote(secret, safe='')}"
    return "Basic " + base64.b64encode(raw.encode()).decode()


# --- the credentials file --------------------------------------------------------------------------------
def config_dir() -> Path:
    if os.environ.get("LATCHKEY_CONFIG_DIR"):
        return Path(os.environ["LATCHKEY_CONFIG_DIR"])
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "latchkey"


def credentials_path() -> Path:
    return config_dir() / "credentials.json"


def load_credentials() -> dict[str, Any] | None:
    path = credentials_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise CliError(f"cannot read {path}: {error}; run `latchkey logout` and sign in again") from error
    return data if isinstance(data, dict) and data.get("access_token") else None


def save_credentials(data: dict[str, Any]) -> Path:
    """Write atomically: a 0600 file in a 0700 directory, never readable by others even for a moment."""
    directory = config_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    path = directory / "credentials.json"
    temporary = directory / f".credentials-{uuid.uuid4().hex}.tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2)
            out.write("\n")
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def token_record(tokens: dict[str, Any], *, server: str, client_id: str,
                 previous: dict[str, Any] | None = None) -> dict[str, Any]:
    previous = previous or {}
    return {
        "access_token": tokens["access_token"],
        "refresh_token": tokens.get("refresh_token") or previous.get("refresh_token"),
        "id_token": tokens.get("id_token") or previous.get("id_token"),
        "expires_at": int(time.time()) + int(tokens.get("expires_in") or 0),
        "scope": tokens.get("scope") or previous.get("scope", ""),
        "server": server,
        "client_id": client_id,
    }


def jwt_claims(token: str | None) -> dict[str, Any]:
    """A JWT's payload, unverified (for display only: the server verifies what it issued)."""
    try:
        payload = (token or "").split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}


def refresh(credentials: dict[str, Any]) -> dict[str, Any]:
    if not credentials.get("refresh_token"):
        raise CliError("the session has expired, run `latchkey login`")
    server, client_id = credentials["server"], credentials["client_id"]
    status, body = post_form(discovery(server)["token_endpoint"], {
        "grant_type": "refresh_token", "refresh_token": credentials["refresh_token"], "client_id": client_id})
    if status != 200:
        raise CliError(f"cannot refresh the session: {oauth_error(body)}; run `latchkey login`")
    updated = token_record(body, server=server, client_id=client_id, previous=credentials)
    save_credentials(updated)
    return updated


def fresh_credentials() -> dict[str, Any]:
    credentials = load_credentials()
    if credentials is None:
        raise CliError(NOT_LOGGED_IN)
    if int(credentials.get("expires_at") or 0) - REFRESH_MARGIN <= time.time():
        credentials = refresh(credentials)
    return credentials


# --- progress ----------------------------------------------------------------------------------------------
class Progress:
    """A spinner on a terminal's stderr, dots elsewhere."""

    def __init__(self, message: str) -> None:
        self.message = message
        self.tty = sys.stderr.isatty()
        self.frames = itertools.cycle("|/-\\")
        self.started = False

    def tick(self) -> None:
        if self.tty:
            sys.stderr.write(f"\r{self.message} {next(self.frames)}")
        else:
            sys.stderr.write(self.message if not self.started else ".")
        self.started = True
        sys.stderr.flush()

    def done(self, outcome: str = "") -> None:
        if self.started:
            sys.stderr.write(f"\r{self.message} {outcome}\n" if self.tty else f" {outcome}\n")
            sys.stderr.flush()


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- login -------------------------------------------------------------------------------------------------
def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


PAGE = ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>latchkey</title></head>"
        "<body><h1>{title}</h1><p>{text}</p></body></html>")


class _CallbackServer(http.server.HTTPServer):
    result: dict[str, str] | None = None


class _CallbackHandler(http.server.BaseHTTPRequestHandler):
    server: _CallbackServer

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        parts = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        if parts.path != CALLBACK_PATH or not ({"code", "error"} & set(query)):
            self.send_error(404)
            return
        self.server.result = query
        if "code" in query:
            page = PAGE.format(title="Signed in", text="You can close this tab and return to the terminal.")
        else:
            page = PAGE.format(title="Sign-in failed", text="Return to the terminal for details.")
        body = page.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def login_browser(args: argparse.Namespace, server: str, client_id: str) -> dict[str, Any]:
    metadata = discovery(server)
    callback = _CallbackServer(("127.0.0.1", 0), _CallbackHandler)
    callback.timeout = 0.5
    try:
        redirect_uri = f"http://127.0.0.1:{callback.server_address[1]}{CALLBACK_PATH}"
        verifier, challenge = pkce_pair()
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        url = metadata["authorization_endpoint"] + "?" + urllib.parse.urlencode({
            "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "scope": args.scope,
            "state": state, "nonce": nonce, "code_challenge": challenge, "code_challenge_method": "S256"})
        if args.no_browser or not webbrowser.open(url):
            say(f"Open this URL in a browser to sign in:\n\n  {url}\n")
        else:
            say(f"Opened a browser to sign in. If it did not open, visit:\n\n  {url}\n")
        progress = Progress("Waiting for the browser sign-in")
        deadline = time.monotonic() + args.timeout
        while callback.result is None:
            if time.monotonic() > deadline:
                progress.done("timed out")
                raise CliError(f"no sign-in within {args.timeout} s")
            progress.tick()
            callback.handle_request()
        result = callback.result
    finally:
        callback.server_close()
    if result.get("state") != state:
        progress.done("failed")
        raise CliError("login failed: the answer's state does not match the request (try again)")
    if result.get("iss") and result["iss"] != metadata.get("issuer"):  # RFC 9207: the answer is from our server
        progress.done("failed")
        raise CliError(f"login failed: the answer came from {result['iss']}, not {metadata.get('issuer')}")
    if "error" in result:
        progress.done("failed")
        raise CliError(f"login failed: {result.get('error_description') or result['error']} ({result['error']})")
    progress.done("ok")
    status, body = post_form(metadata["token_endpoint"], {
        "grant_type": "authorization_code", "code": result["code"], "redirect_uri": redirect_uri,
        "client_id": client_id, "code_verifier": verifier})
    if status != 200:
        raise CliError(f"login failed: {oauth_error(body)}")
    if body.get("id_token") and jwt_claims(body["id_token"]).get("nonce") != nonce:
        raise CliError("login failed: the id_token's nonce does not match the request")
    return body


def login_device(args: argparse.Namespace, server: str, client_id: str) -> dict[str, Any]:
    metadata = discovery(server)
    endpoint = metadata.get("device_authorization_endpoint")
    if not endpoint:
        raise CliError(f"{server} does not offer the device flow")
    status, start = post_form(endpoint, {"client_id": client_id, "scope": args.scope})
    if status != 200:
        raise CliError(f"login failed: {oauth_error(start)}")
    complete = start.get("verification_uri_complete") or start["verification_uri"]
    say(f"On any device with a browser, open:\n\n  {complete}\n\nand check that it shows the code "
        f"{start['user_code']}  (or open {start['verification_uri']} and type the code).\n")
    interval = int(start.get("interval") or 5)
    deadline = time.monotonic() + min(int(start.get("expires_in") or 600), args.timeout)
    progress = Progress("Waiting for approval")
    while True:
        waited = time.monotonic() + interval
        while time.monotonic() < waited:
            progress.tick()
            time.sleep(min(0.25, max(0.0, waited - time.monotonic())))
        if time.monotonic() > deadline:
            progress.done("timed out")
            raise CliError("the code expired before it was approved; run `latchkey login --device` again")
        status, body = post_form(metadata["token_endpoint"], {
            "grant_type": DEVICE_GRANT, "device_code": start["device_code"], "client_id": client_id})
        if status == 200:
            progress.done("approved")
            return body
        error = body.get("error")
        if error == "authorization_pending":
            continue
        if error == "slow_down":
            interval += 5
            continue
        progress.done("failed")
        if error == "access_denied":
            raise CliError("login denied: the request was not approved (access_denied)")
        if error == "expired_token":
            raise CliError("the code expired before it was approved (expired_token); run `latchkey login --device` "
                           "again")
        raise CliError(f"login failed: {oauth_error(body)}")


def cmd_login(args: argparse.Namespace) -> int:
    server, client_id = args.server, args.client_id
    tokens = login_device(args, server, client_id) if args.device else login_browser(args, server, client_id)
    path = save_credentials(token_record(tokens, server=server, client_id=client_id))
    claims = jwt_claims(tokens.get("id_token"))
    who = claims.get("preferred_username") or claims.get("sub") or "the user"
    print(f"Logged in to {server} as {who}.")
    say(f"Tokens saved to {path}")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    print(fresh_credentials()["access_token"])
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    credentials = load_credentials()
    if credentials is None:
        if args.output == "json":
            print(json.dumps({"logged_in": False}))
        raise CliError("not logged in")
    claims = jwt_claims(credentials.get("id_token"))
    expires_at = int(credentials.get("expires_at") or 0)
    info = {"logged_in": True, "server": credentials.get("server"), "client_id": credentials.get("client_id"),
            "sub": claims.get("sub"), "username": claims.get("preferred_username"), "email": claims.get("email"),
            "scope": credentials.get("scope"),
            "expires_at": datetime.fromtimestamp(expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "expired": expires_at <= time.time(), "refreshable": bool(credentials.get("refresh_token"))}
    if args.output == "json":
        print(json.dumps(info, indent=2))
        return 0
    left = expires_at - int(time.time())
    print(f"Logged in to {info['server']} as {info['username'] or info['sub']} (sub {info['sub']})")
    print(f"Scope: {info['scope']}")
    when = f"in {left} s" if left > 0 else "expired; `latchkey token` refreshes it" if info["refreshable"] \
        else "expired"
    print(f"Access token expires {info['expires_at']} ({when})")
    return 0


def cmd_logout(args: argparse.Namespace) -> int:
    credentials = load_credentials()
    path = credentials_path()
    if credentials is None:
        path.unlink(missing_ok=True)
        say("Not logged in.")
        return 0
    server, client_id = credentials.get("server") or args.server, credentials.get("client_id") or args.client_id
    end_session = None
    try:
        metadata = discovery(server)
        end_session = metadata.get("end_session_endpoint")
        revocation = metadata.get("revocation_endpoint")
        for name in ("refresh_token", "access_token"):
            if revocation and credentials.get(name):
                post_form(revocation, {"token": credentials[name], "token_type_hint": name, "client_id": client_id})
    except CliError as error:  # best effort: the tokens are forgotten anyway
        say(f"latchkey: could not revoke the tokens: {error}")
    path.unlink(missing_ok=True)
    print(f"Logged out of {server}.")
    if end_session and credentials.get("id_token"):
        query = urllib.parse.urlencode({"id_token_hint": credentials["id_token"], "client_id": client_id})
        say(f"To end the browser session too, open:\n  {end_session}?{query}")
    return 0


# --- admin API ---------------------------------------------------------------------------------------------
def admin_token(args: argparse.Namespace) -> str:
    if getattr(args, "_admin_token", None):
        return args._admin_token
    token = args.token or os.environ.get("LATCHKEY_TOKEN")
    client_id = args.admin_client_id or os.environ.get("LATCHKEY_ADMIN_CLIENT_ID")
    secret = args.admin_client_secret or os.environ.get("LATCHKEY_ADMIN_CLIENT_SECRET")
    if not token and (client_id or secret):
        if not (client_id and secret):
            raise CliError("--client-id and --client-secret go together", 2)
        status, body = post_form(discovery(args.server)["token_endpoint"], {
            "grant_type": "client_credentials", "scope": ADMIN_SCOPES[args.group]},
            {"Authorization": basic_auth(client_id, secret)})
        if status != 200:
            raise CliError(f"cannot get an admin token for {client_id}: {oauth_error(body)}")
        token = body["access_token"]
    if not token:
        if load_credentials() is None:
            raise CliError("no credentials: pass --token, or --client-id and --client-secret, or run `latchkey login`")
        token = fresh_credentials()["access_token"]
    args._admin_token = token
    return token


def api(args: argparse.Namespace, method: str, path: str, *, body: Any = None, query: dict[str, Any] | None = None,
        raw: bytes | None = None, content_type: str | None = None) -> Any:
    headers = {"Accept": "application/json", "Authorization": f"Bearer {admin_token(args)}"}
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    elif content_type:
        headers["Content-Type"] = content_type
    url = args.server + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
    status, answer = http_request(method, url, body=data, headers=headers)
    if status >= 400:
        raise CliError(error_message(status, answer))
    return json.loads(answer) if answer else None


def quote(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(cell(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def emit(args: argparse.Namespace, value: Any, columns: tuple[str, ...] = ()) -> None:
    """JSON as the server answered, or a table: a list by ``columns``, an object as field/value rows."""
    if args.output == "json":
        print(json.dumps(value, indent=2))
        return
    if isinstance(value, list):
        rows = [[cell(item.get(column)) for column in columns] for item in value]
        header = [column.upper() for column in columns]
        widths = [max(len(text) for text in column) for column in zip(header, *rows, strict=False)]
        for row in (header, *rows):
            print("  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True)).rstrip())
        return
    width = max((len(key) for key in value), default=0)
    for key, item in value.items():
        text = cell(item)
        if key == "logo" and len(text) > 60:
            text = text[:57] + "..."
        print(f"{key.ljust(width)}  {text}".rstrip())


def done(args: argparse.Namespace, message: str, **fields: Any) -> int:
    if args.output == "json":
        print(json.dumps(fields, indent=2))
    else:
        print(message)
    return 0


def json_argument(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not JSON: {error}") from error
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def read_password(args: argparse.Namespace, *, required: bool) -> str | None:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if args.password is not None:
        return args.password
    if required:
        if not sys.stdin.isatty():
            raise CliError("a password is needed: pass --password or --password-stdin", 2)
        first, second = getpass.getpass("Password: "), getpass.getpass("Repeat: ")
        if first != second:
            raise CliError("the passwords do not match")
        return first
    return None


APP_COLUMNS = ("client_id", "name", "token_endpoint_auth_method", "grant_types", "redirect_uris")
USER_COLUMNS = ("userid", "username", "email", "name", "status")
PLATFORM_COLUMNS = ("platform_id", "type", "display_name", "enabled", "client_id")


def app_members(args: argparse.Namespace) -> dict[str, Any]:
    members: dict[str, Any] = {}
    for option, member in (("name", "name"), ("url", "url"), ("scope", "scope"), ("auth_method",
                           "token_endpoint_auth_method"), ("access_token_ttl", "access_token_ttl")):
        if getattr(args, option) is not None:
            members[member] = getattr(args, option)
    if args.public:
        members["token_endpoint_auth_method"] = "none"
    if args.redirect_uri is not None:
        members["redirect_uris"] = args.redirect_uri
        members["redirect_uri"] = args.redirect_uri[0] if args.redirect_uri else ""
    if args.grant_type is not None:
        members["grant_types"] = args.grant_type
        members["response_types"] = ["code"] if "authorization_code" in args.grant_type else []
    if args.post_logout_redirect_uri is not None:
        members["post_logout_redirect_uris"] = args.post_logout_redirect_uri
    members.update(args.data or {})
    return members


def cmd_app(args: argparse.Namespace) -> int:
    action = args.action
    if action == "list":
        apps = api(args, "GET", "/api/oauth/app", query={"amount": args.amount, "offset": args.offset})["apps"]
        emit(args, apps if args.output != "json" else {"apps": apps}, APP_COLUMNS)
        return 0
    if action == "create":
        emit(args, api(args, "POST", "/api/oauth/app", body=app_members(args)))
        return 0
    path = f"/api/oauth/app/id/{quote(args.client_id)}"
    if action == "get":
        emit(args, api(args, "GET", path))
    elif action == "update":
        current = api(args, "GET", path)
        body = {"name": current["name"], "url": current["url"], "redirect_uri": current["redirect_uri"]}
        changes = app_members(args)
        if "redirect_uris" in changes and "redirect_uri" not in (args.data or {}):
            changes["redirect_uri"] = changes["redirect_uris"][0] if changes["redirect_uris"] else ""
        body.update(changes)
        api(args, "PUT", path, body=body)
        return done(args, f"Updated app {args.client_id}.", client_id=args.client_id, updated=True)
    elif action == "rotate":
        emit(args, api(args, "PUT", f"{path}/rotate"))
    elif action == "delete":
        api(args, "DELETE", path)
        return done(args, f"Deleted app {args.client_id}.", client_id=args.client_id, deleted=True)
    elif action == "logo":
        image = Path(args.file)
        try:
            content = image.read_bytes()
        except OSError as error:
            raise CliError(f"cannot read {image}: {error.strerror or error}") from error
        boundary = f"latchkey-{uuid.uuid4().hex}"
        kind = mimetypes.guess_type(image.name)[0] or "application/octet-stream"
        form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{image.name}\"\r\n"
                f"Content-Type: {kind}\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
        api(args, "PUT", f"{path}/image", raw=form, content_type=f"multipart/form-data; boundary={boundary}")
        return done(args, f"Uploaded the logo of app {args.client_id}.", client_id=args.client_id, logo=True)
    return 0


def user_members(args: argparse.Namespace) -> dict[str, Any]:
    members = {member: getattr(args, member) for member in
               ("email", "email_verified", "name", "given_name", "family_name", "picture", "profile")
               if getattr(args, member) is not None}
    if getattr(args, "status", None) is not None:
        members["status"] = args.status
    members.update(args.data or {})
    return members


def cmd_user(args: argparse.Namespace) -> int:
    action = args.action
    if action == "list":
        users = api(args, "GET", "/api/oauth/user", query={"amount": args.amount, "offset": args.offset})["users"]
        emit(args, users if args.output != "json" else {"users": users}, USER_COLUMNS)
        return 0
    if action == "create":
        body = {"username": args.username, "password": read_password(args, required=True), **user_members(args)}
        emit(args, api(args, "POST", "/api/oauth/user", body=body))
        return 0
    path = f"/api/oauth/user/id/{quote(args.userid)}"
    if action == "get":
        emit(args, api(args, "GET", path))
    elif action == "update":
        body = user_members(args)
        password = read_password(args, required=False)
        if password is not None:
            body["password"] = password
        if not body:
            raise CliError("nothing to change: pass at least one option (see `latchkey user update --help`)", 2)
        api(args, "PUT", path, body=body)
        return done(args, f"Updated user {args.userid}.", userid=args.userid, updated=True)
    elif action == "revoke":
        api(args, "PUT", f"{path}/revoke")
        return done(args, f"Revoked every session and token of user {args.userid}.", userid=args.userid,
                    revoked=True)
    elif action == "delete":
        api(args, "DELETE", path)
        return done(args, f"Deleted user {args.userid}.", userid=args.userid, deleted=True)
    return 0


def cmd_platform(args: argparse.Namespace) -> int:
    action = args.action
    if action == "list":
        platforms = api(args, "GET", "/api/oauth/platform")["platforms"]
        emit(args, platforms if args.output != "json" else {"platforms": platforms}, PLATFORM_COLUMNS)
        return 0
    path = f"/api/oauth/platform/id/{quote(args.platform_id)}"
    if action == "get":
        emit(args, api(args, "GET", path))
    elif action == "put":
        if args.file:
            try:
                config = json_argument(Path(args.file).read_text(encoding="utf-8"))
            except (OSError, argparse.ArgumentTypeError) as error:
                raise CliError(f"cannot use {args.file}: {error}") from error
        else:
            config = {}
        config.update(args.data or {})
        created = api(args, "PUT", path, body=config)
        if created is not None:
            emit(args, created)
        else:
            return done(args, f"Replaced platform {args.platform_id}.", platform_id=args.platform_id, updated=True)
    elif action == "delete":
        api(args, "DELETE", path)
        return done(args, f"Deleted platform {args.platform_id}.", platform_id=args.platform_id, deleted=True)
    return 0


# --- arguments ---------------------------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--server", default=argparse.SUPPRESS,
                        help=f"the Latchkey server (env LATCHKEY_URL, default {DEFAULT_SERVER})")
    common.add_argument("--output", "-o", choices=("table", "json"), default=argparse.SUPPRESS,
                        help="output format (env LATCHKEY_OUTPUT, default table)")
    session = argparse.ArgumentParser(add_help=False)
    session.add_argument("--client-id", default=os.environ.get("LATCHKEY_CLIENT_ID", DEFAULT_CLIENT_ID),
                         help=f"the CLI's public app (env LATCHKEY_CLIENT_ID, default {DEFAULT_CLIENT_ID})")
    admin = argparse.ArgumentParser(add_help=False)
    admin.add_argument("--token", help="an admin access token (env LATCHKEY_TOKEN)")
    admin.add_argument("--client-id", dest="admin_client_id",
                       help="an admin client for the client credentials grant (env LATCHKEY_ADMIN_CLIENT_ID)")
    admin.add_argument("--client-secret", dest="admin_client_secret",
                       help="its secret (env LATCHKEY_ADMIN_CLIENT_SECRET)")

    top = argparse.ArgumentParser(prog="latchkey", parents=[common],
                                  description="Sign in to a Latchkey server and manage its apps, users and "
                                              "platforms.")
    top.add_argument("--version", action="version", version=f"latchkey {__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    login = commands.add_parser("login", parents=[common, session], help="sign in (browser, or --device)")
    login.add_argument("--device", action="store_true", help="use the device flow (no browser on this machine)")
    login.add_argument("--no-browser", action="store_true", help="print the sign-in URL instead of opening it")
    login.add_argument("--scope", default=DEFAULT_SCOPE, help=f"scopes to ask for (default {DEFAULT_SCOPE!r})")
    login.add_argument("--timeout", type=int, default=300, help="seconds to wait for the sign-in (default 300)")
    login.set_defaults(handler=cmd_login)
    for name, handler, text in (("token", cmd_token, "print a fresh access token"),
                                ("status", cmd_status, "who is signed in"),
                                ("logout", cmd_logout, "revoke and forget the tokens")):
        commands.add_parser(name, parents=[common, session], help=text).set_defaults(handler=handler)

    def group(name: str, handler: Any, text: str) -> Any:
        sub = commands.add_parser(name, parents=[common], help=text)
        sub.set_defaults(handler=handler, group=name)
        return sub.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(actions: Any, name: str, text: str) -> argparse.ArgumentParser:
        return actions.add_parser(name, parents=[common, admin], help=text)

    def paging(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--amount", type=int, default=32, help="how many (1-255, default 32)")
        sub.add_argument("--offset", type=int, default=0, help="how many to skip (default 0)")

    def data(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--data", type=json_argument, metavar="JSON", help="more members, as a JSON object")

    apps = group("app", cmd_app, "manage apps (OAuth clients)")
    paging(action(apps, "list", "list apps, newest first"))
    for name in ("create", "update"):
        sub = action(apps, name, f"{name} an app")
        if name == "update":
            sub.add_argument("client_id", metavar="CLIENT_ID")
        sub.add_argument("--name", required=name == "create")
        sub.add_argument("--url")
        sub.add_argument("--redirect-uri", action="append", help="repeat for several")
        sub.add_argument("--grant-type", action="append", help="repeat for several (default client_credentials)")
        sub.add_argument("--scope")
        sub.add_argument("--auth-method", choices=("client_secret_basic", "client_secret_post", "private_key_jwt",
                                                   "none"))
        sub.add_argument("--public", action="store_true", help="a public app (--auth-method none)")
        sub.add_argument("--post-logout-redirect-uri", action="append")
        sub.add_argument("--access-token-ttl", type=int, metavar="SECONDS")
        data(sub)
    for name, text in (("get", "show an app"), ("rotate", "rotate an app's secret (shown once)"),
                       ("delete", "delete an app")):
        action(apps, name, text).add_argument("client_id", metavar="CLIENT_ID")
    logo = action(apps, "logo", "upload an app's logo (PNG, JPEG or GIF)")
    logo.add_argument("client_id", metavar="CLIENT_ID")
    logo.add_argument("file", metavar="IMAGE")

    users = group("user", cmd_user, "manage users")
    paging(action(users, "list", "list users by username"))
    for name in ("create", "update"):
        sub = action(users, name, f"{name} a user")
        if name == "create":
            sub.add_argument("--username", required=True)
        else:
            sub.add_argument("userid", metavar="USERID")
            sub.add_argument("--status", choices=("active", "disabled"))
        passwords = sub.add_mutually_exclusive_group()
        passwords.add_argument("--password")
        passwords.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
        for member in ("email", "name", "given_name", "family_name", "picture", "profile"):
            sub.add_argument("--" + member.replace("_", "-"), dest=member)
        sub.add_argument("--email-verified", action=argparse.BooleanOptionalAction, default=None)
        data(sub)
    for name, text in (("get", "show a user"), ("revoke", "end every session and token of a user"),
                       ("delete", "delete a user")):
        action(users, name, text).add_argument("userid", metavar="USERID")

    platforms = group("platform", cmd_platform, "manage third-party login platforms")
    action(platforms, "list", "list platforms")
    for name, text in (("get", "show a platform"), ("delete", "delete a platform")):
        action(platforms, name, text).add_argument("platform_id", metavar="PLATFORM_ID")
    put = action(platforms, "put", "create or replace a platform")
    put.add_argument("platform_id", metavar="PLATFORM_ID")
    put.add_argument("--file", help="the configuration, a JSON file")
    data(put)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.server = (getattr(args, "server", None) or os.environ.get("LATCHKEY_URL") or DEFAULT_SERVER).rstrip("/")
    args.output = getattr(args, "output", None) or os.environ.get("LATCHKEY_OUTPUT") or "table"
    if args.output not in ("table", "json"):
        print(f"latchkey: LATCHKEY_OUTPUT must be table or json, not {args.output!r}", file=sys.stderr)
        return 2
    try:
        return args.handler(args)
    except CliError as error:
        print(f"latchkey: {error}", file=sys.stderr)
        return error.code
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
