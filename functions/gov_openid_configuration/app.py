"""GET /api/oauth/openid-configuration: governor's route to the same discovery metadata."""

from latchkey.discovery import metadata_document
from latchkey.http import Protocol, create_app, json_response, lambda_handler

app = create_app(Protocol.GOVERNOR)


@app.get("/api/oauth/openid-configuration")
def get_metadata():
    return json_response(metadata_document(), cache={"Cache-Control": "public, max-age=300"})


handler = lambda_handler(app)
