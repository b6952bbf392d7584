"""``python -m latchkey.admin``: operator commands run against a deployment's table.

    bootstrap [--client-id ID] [--name NAME]
        Create the first admin client: every governor admin scope (:data:`latchkey.apps.ADMIN_SCOPES`),
        the ``client_credentials`` grant and ``client_secret_basic``. Its id and secret are printed once
        (the secret is stored only as a keyed hash). Refuses, with exit code 1, when the id is taken.

The store and keys come from the same environment the functions read (:mod:`latchkey.config`):
``TABLE_NAME``, ``AWS_REGION``, ``KMS_KEY_ID`` (or ``LOCAL_KEK`` for the local stack),
``DYNAMODB_ENDPOINT`` for DynamoDB Local, and AWS credentials from the usual places. The caller needs
``dynamodb:GetItem``/``PutItem`` on the table and ``kms:Decrypt`` (``kms:GenerateDataKey`` too when
this is the deployment's first secret).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

DEFAULT_CLIENT_ID = "latchkey-admin"
DEFAULT_NAME = "Latchkey admin"


def bootstrap(client_id: str, name: str) -> dict[str, str]:
    """Create the admin client; returns ``{client_id, client_secret, scope}`` (raises
    :class:`latchkey.errors.Conflict` when ``client_id`` exists, :class:`latchkey.errors.LatchkeyError`
    on a bad id or name)."""
    from . import apps
    from .client_metadata import parse_metadata

    metadata = parse_metadata({"name": name, "grant_types": ["client_credentials"], "scope": apps.ADMIN_SCOPES,
                               "token_endpoint_auth_method": "client_secret_basic"})
    created = apps.create_from(metadata, client_id=client_id)
    assert created.key is not None  # client_secret_basic always gets a secret
    return {"client_id": created.client_id, "client_secret": created.key, "scope": apps.ADMIN_SCOPES}


def _parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m latchkey.admin", description="Latchkey operator commands.")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    boot = commands.add_parser("bootstrap", help="create the first admin client and print its secret once")
    boot.add_argument("--client-id", default=DEFAULT_CLIENT_ID,
                      help=f"the admin client's id (default: {DEFAULT_CLIENT_ID})")
    boot.add_argument("--name", default=DEFAULT_NAME, help=f"its display name (default: {DEFAULT_NAME!r})")
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from botocore.exceptions import BotoCoreError, ClientError

    from .errors import Conflict, LatchkeyError

    try:
        created = bootstrap(args.client_id, args.name)
    except Conflict:
        print(f"latchkey admin: a client with the id {args.client_id!r} already exists; nothing was changed "
              "(choose another --client-id, or rotate that client's secret)", file=sys.stderr)
        return 1
    except LatchkeyError as exc:
        print(f"latchkey admin: {exc.description}", file=sys.stderr)
        return 1
    except (RuntimeError, BotoCoreError, ClientError) as exc:  # no KMS_KEY_ID/LOCAL_KEK, no credentials ...
        print(f"latchkey admin: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(created, indent=2))
    print("latchkey admin: the secret is shown only this once; store it now "
          "(token: POST /api/oauth/token with grant_type=client_credentials and HTTP Basic auth)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
