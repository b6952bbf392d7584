"""PUT /api/oauth/register/{client_id}: replace a dynamically registered client's metadata (RFC 7592 §2.2)."""

from latchkey import rfc7592
from latchkey.http import Protocol, create_app, header, json_response, lambda_handler
from latchkey.http.request import json_object

app = create_app(Protocol.OAUTH)


@app.put("/api/oauth/register/<client_id>")
def update_client(client_id: str):
    client, token = rfc7592.authenticate(client_id, header(app, "Authorization"))  # before the body
    return json_response(rfc7592.update(client, token, json_object(app)))


handler = lambda_handler(app)
