"""GET /.well-known/openid-configuration: OpenID Provider metadata (OpenID Connect Discovery 1.0 §4)."""

from latchkey.discovery import metadata_document
from latchkey.http import Protocol, create_app, json_response, lambda_handler

app = create_app(Protocol.OAUTH)


@app.get("/.well-known/openid-configuration")
def get_metadata():
    return json_response(metadata_document(), cache={"Cache-Control": "public, max-age=300"})


handler = lambda_handler(app)
