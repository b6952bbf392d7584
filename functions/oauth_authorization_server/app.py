"""GET /.well-known/oauth-authorization-server: authorization server metadata (RFC 8414)."""

from latchkey.discovery import metadata_document
from latchkey.http import Protocol, create_app, json_response, lambda_handler

app = create_app(Protocol.OAUTH)


@app.get("/.well-known/oauth-authorization-server")
def get_metadata():
    return json_response(metadata_document(), cache={"Cache-Control": "public, max-age=300"})


handler = lambda_handler(app)
