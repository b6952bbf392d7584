"""Development seeds, created idempotently by ``make dev``: an admin client allowed every admin scope,
a user with profile and email claims, and a public PKCE app for trying the sign-in flow. Ids and secrets
come from the environment when set.

Running it again changes nothing unless a secret or password in the environment changed, in which
case the stored hash is replaced (so ``DEV_ADMIN_CLIENT_SECRET=... make dev`` just works).
"""

from __future__ import annotations

import os
import uuid

from latchkey import clock, services
from latchkey.apps import ADMIN_SCOPES
from latchkey.clients import Client
from latchkey.config import Settings
from latchkey.crypto.passwords import hash_password, verify_password
from latchkey.crypto.secrets import keyed_hash, verify_keyed_hash
from latchkey.users import User

DEV_APP = "dev-app"


def seed(settings: Settings) -> dict[str, str]:
    """Create (or bring up to date) the dev admin client and dev user; return what to print."""
    del settings  # the services are already configured from the same environment
    client_id = os.environ.get("DEV_ADMIN_CLIENT_ID", "dev-admin")
    client_secret = os.environ.get("DEV_ADMIN_CLIENT_SECRET", "dev-admin-secret")
    username = os.environ.get("DEV_USER", "alice")
    password = os.environ.get("DEV_PASSWORD", "alice-password")
    now = clock.now()
    hash_key = services.secret_hash_key()

    clients = services.client_store()
    existing = clients.get(client_id)
    if existing is None:
        clients.create(Client(
            client_id=client_id, name="Latchkey dev admin", url="http://127.0.0.1", grant_types=("client_credentials",),
            scope=ADMIN_SCOPES, token_endpoint_auth_method="client_secret_basic",
            secret_hash=keyed_hash(hash_key, client_secret), created_at=now, updated_at=now))
    elif not (existing.secret_hash and verify_keyed_hash(hash_key, client_secret, existing.secret_hash)) \
            or existing.scope != ADMIN_SCOPES:
        clients.replace(existing.model_copy(update={"secret_hash": keyed_hash(hash_key, client_secret),
                                                    "scope": ADMIN_SCOPES, "updated_at": now}))

    if clients.get(DEV_APP) is None:  # a public PKCE app to try the sign-in flow with a browser
        clients.create(Client(
            client_id=DEV_APP, name="Latchkey dev app", url="http://127.0.0.1",
            redirect_uris=("http://127.0.0.1/callback",), grant_types=("authorization_code", "refresh_token"),
            response_types=("code",), token_endpoint_auth_method="none",
            post_logout_redirect_uris=("http://127.0.0.1/",), created_at=now, updated_at=now))

    cli = services.settings().cli_client_id  # the command-line tools' app (Neosync's CLI, `latchkey login`)
    if clients.get(cli) is None:
        clients.create(Client(
            client_id=cli, name="Latchkey CLI", url="http://127.0.0.1",
            redirect_uris=("http://127.0.0.1/api/auth/callback",),
            grant_types=("authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"),
            response_types=("code",), token_endpoint_auth_method="none", created_at=now, updated_at=now))

    users = services.user_store()
    user = users.get_by_username(username)
    if user is None:
        users.create(User(
            user_id=uuid.uuid4().hex, username=username, password_hash=hash_password(password),
            email=f"{username}@example.com", email_verified=True, name=f"{username.capitalize()} Example",
            given_name=username.capitalize(), family_name="Example", created_at=now, updated_at=now))
    elif not verify_password(password, user.password_hash):
        users.replace(user.model_copy(update={"password_hash": hash_password(password), "updated_at": now}))

    return {"admin client": f"{client_id} / {client_secret}", "user": f"{username} / {password}",
            "public app (PKCE)": f"{DEV_APP}, redirect http://127.0.0.1:<any port>/callback",
            "CLI app": f"{services.settings().cli_client_id}, redirect http://127.0.0.1:<any port>/api/auth/callback"}
