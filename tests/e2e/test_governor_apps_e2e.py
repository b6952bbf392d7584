"""governor's app management end to end: the local stack (``python -m devstack up``, DynamoDB Local) in a
subprocess, driven over HTTP.

The admin token is signed in this process with the stack's own signing key: this process points
Latchkey's services at the stack's table and key-encryption key (``.dev/stack.env`` and ``kek`` in the
stack's state directory), so the key ring reads the very keys the stack's handlers verify against.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re

import pytest
from PIL import Image

from tests.e2e.test_local_stack import start_stack
from tests.helpers import Answer, http

pytestmark = pytest.mark.e2e

BOUNDARY = "latchkey-e2e-boundary-7MA4YWxkTrZu0gW"


def request(url, *, method="GET", body: bytes | None = None, headers=None) -> Answer:
    return http(method, url, body=body, headers=headers, timeout=20)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = start_stack(tmp_path_factory.mktemp("apps-stack") / "state")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def issue(stack):
    """Sign admin tokens with the stack's current ES256 key (its table, its kek), in this process."""
    from latchkey import rfc9068, services

    env = stack.env
    values = {"STORE": "dynamodb", "TABLE_NAME": env["TABLE_NAME"], "DYNAMODB_ENDPOINT": env["DYNAMODB_ENDPOINT"],
              "ISSUER": env["ISSUER"], "AWS_REGION": "us-east-1",
              "LOCAL_KEK": (stack.state_dir / "kek").read_text(encoding="ascii").strip(),
              "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID") or "local",
              "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY") or "local"}
    saved = {name: os.environ.get(name) for name in [*values, "KMS_KEY_ID"]}
    os.environ.update(values)
    os.environ.pop("KMS_KEY_ID", None)
    services.reset()

    def token(*scopes: str) -> str:
        return rfc9068.issue(services.key_ring(), issuer=env["ISSUER"], alg="ES256", client_id="dev-admin",
                             subject="dev-admin", audience=env["ISSUER"], scopes=scopes, ttl=300).token

    yield token
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    services.reset()


def png_logo() -> bytes:
    image = Image.new("RGB", (300, 150), "white")
    for x in range(300):
        image.putpixel((x, 75), (20, 90, 200))
    out = io.BytesIO()
    image.save(out, format="JPEG")  # sent as JPEG, stored as PNG
    return out.getvalue()


def multipart(content: bytes) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"logo.jpg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + content + f"\r\n--{BOUNDARY}--\r\n".encode()


def test_app_lifecycle_over_http(stack, issue):
    from latchkey import services
    from latchkey.crypto.secrets import verify_keyed_hash

    api = f"{stack.url}/api/oauth/app"
    admin = {"Authorization": f"Bearer {issue('gov.user.oauth.app:read', 'gov.user.oauth.app:write')}"}
    json_headers = {**admin, "Content-Type": "application/json"}

    # the guard: no token, then a token without the write scope
    denied = request(api, method="POST", body=b'{"name": "x"}', headers={"Content-Type": "application/json"})
    assert denied.status == 401 and denied.json()["code"] == "invalid_token"
    assert denied.headers["www-authenticate"].startswith("Bearer ")
    reader = {"Authorization": f"Bearer {issue('gov.user.oauth.app:read')}", "Content-Type": "application/json"}
    forbidden = request(api, method="POST", body=b'{"name": "x"}', headers=reader)
    assert forbidden.status == 403 and forbidden.json()["code"] == "insufficient_scope"

    # create
    bad = request(api, method="POST", headers=json_headers,
                  body=json.dumps({"name": "Shop", "redirect_uri": "http://shop.example/cb"}).encode())
    assert bad.status == 400 and bad.json()["code"] == "invalid_redirect_uri"
    created = request(api, method="POST", headers=json_headers, body=json.dumps({
        "name": "Shop", "url": "https://shop.example", "redirect_uri": "https://shop.example/cb",
        "scope": "openid profile"}).encode())
    assert created.status == 201, created.body
    assert created.headers["cache-control"] == "no-store"
    client_id, key = created.json()["client_id"], created.json()["key"]
    assert re.fullmatch(r"[0-9a-f]{32}", client_id) and key.startswith("lk_cs_")

    # get, list, ids
    app = request(f"{api}/id/{client_id}")
    assert app.status == 200
    body = app.json()
    assert {k: body[k] for k in ("client_id", "name", "url", "redirect_uri", "logo", "scope")} == {
        "client_id": client_id, "name": "Shop", "url": "https://shop.example", "redirect_uri": "https://shop.example/cb",
        "logo": "", "scope": "openid profile"}
    assert body["time"] == body["creation_time"] and isinstance(body["time"], int)
    listed = request(f"{api}?amount=255&offset=0", headers=admin)
    assert listed.status == 200 and client_id in [a["client_id"] for a in listed.json()["apps"]]
    assert request(f"{api}?amount=0", headers=admin).status == 400
    by_ids = request(f"{api}/ids?ids={client_id},dev-admin,nobody")
    assert by_ids.status == 200
    assert sorted(a["client_id"] for a in by_ids.json()["apps"]) == sorted([client_id, "dev-admin"])

    # update
    updated = request(f"{api}/id/{client_id}", method="PUT", headers=json_headers,
                      body=json.dumps({"name": "Shop EU", "url": "https://eu.shop.example",
                                       "redirect_uri": "https://eu.shop.example/cb"}).encode())
    assert (updated.status, updated.body) == (204, b"")
    after = request(f"{api}/id/{client_id}").json()
    assert (after["name"], after["scope"]) == ("Shop EU", "openid profile")  # RFC 7591 members kept

    # logo: multipart over HTTP, then the image with its ETag and a 304
    assert request(f"{api}/id/{client_id}/image").status == 404
    uploaded = request(f"{api}/id/{client_id}/image", method="PUT", body=multipart(png_logo()),
                       headers={**admin, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    assert uploaded.status == 204, uploaded.body
    not_image = request(f"{api}/id/{client_id}/image", method="PUT", body=multipart(b"plain text, not a picture"),
                        headers={**admin, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    assert not_image.status == 400 and not_image.json()["code"] == "invalid_request"
    image = request(f"{api}/id/{client_id}/image")
    assert image.status == 200
    assert image.headers["content-type"] == "image/png"
    assert image.headers["cache-control"] == "public, max-age=300"
    etag = image.headers["etag"]
    assert re.fullmatch(r'"[0-9a-f]{32}"', etag)
    stored = Image.open(io.BytesIO(image.body))
    assert (stored.format, stored.size) == ("PNG", (256, 256))
    again = request(f"{api}/id/{client_id}/image", headers={"If-None-Match": etag})
    assert (again.status, again.body, again.headers["etag"]) == (304, b"", etag)
    preview = request(f"{api}/id/{client_id}").json()["logo"]
    assert preview.startswith("data:image/png;base64,")
    assert Image.open(io.BytesIO(base64.b64decode(preview.split(",", 1)[1]))).size == (8, 8)

    # rotate: the old secret stops matching at once
    rotated = request(f"{api}/id/{client_id}/rotate", method="PUT", headers=admin)
    assert rotated.status == 200
    new_key = rotated.json()["key"]
    assert rotated.json() == {"client_id": client_id, "key": new_key} and new_key != key
    stored_hash = services.client_store().get(client_id).secret_hash
    assert verify_keyed_hash(services.secret_hash_key(), new_key, stored_hash)
    assert not verify_keyed_hash(services.secret_hash_key(), key, stored_hash)

    # delete: the app and its logo
    deleted = request(f"{api}/id/{client_id}", method="DELETE", headers=admin)
    assert (deleted.status, deleted.body) == (204, b"")
    gone = request(f"{api}/id/{client_id}")
    assert gone.status == 404 and gone.json()["code"] == "not_found"
    assert request(f"{api}/id/{client_id}/image").status == 404
    assert request(f"{api}/id/{client_id}", method="DELETE", headers=admin).status == 404
    assert services.item_store().get(f"CLIENT#{client_id}", "LOGO") is None


def test_a_revoked_admin_token_is_refused(stack, issue):
    from latchkey import rfc9068, services

    token = issue("gov.user.oauth.app:read")
    api = f"{stack.url}/api/oauth/app?amount=1"
    assert request(api, headers={"Authorization": f"Bearer {token}"}).status == 200
    claims = rfc9068.verify(services.key_ring(), token, issuer=stack.env["ISSUER"])
    services.denylist().revoke(claims["jti"], claims["exp"])
    refused = request(api, headers={"Authorization": f"Bearer {token}"})
    assert refused.status == 401 and refused.json()["code"] == "invalid_token"


def test_admin_bootstrap_against_the_stack(stack, issue):
    import subprocess
    import sys

    from tests.e2e.test_local_stack import ROOT

    env = {**os.environ}  # the issue fixture pointed this environment at the stack
    args = [sys.executable, "-m", "latchkey.admin", "bootstrap", "--client-id", "e2e-admin", "--name", "E2E admin"]
    first = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert first.returncode == 0, first.stderr
    printed = json.loads(first.stdout)
    assert printed["client_id"] == "e2e-admin" and printed["client_secret"].startswith("lk_cs_")
    assert "shown only this once" in first.stderr
    app = request(f"{stack.url}/api/oauth/app/id/e2e-admin").json()
    assert app["grant_types"] == ["client_credentials"] and "gov.user.oauth.app:write" in app["scope"].split()

    second = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert second.returncode == 1
    assert "already exists" in second.stderr and second.stdout == ""
