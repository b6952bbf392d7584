"""GET /api/oauth/register/{client_id}: read a dynamically registered client (RFC 7592 §2.1)."""

from latchkey import rfc7592
from latchkey.http import Protocol, create_app, header, json_response, lambda_handler

app = create_app(Protocol.OAUTH)


@app.get("/api/oauth/register/<client_id>")
def read_client(client_id: str):
    client, token = rfc7592.authenticate(client_id, header(app, "Authorization"))
    return json_response(rfc7592.read(client, token))


handler = lambda_handler(app)
