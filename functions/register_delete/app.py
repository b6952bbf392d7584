"""DELETE /api/oauth/register/{client_id}: delete a dynamically registered client (RFC 7592 §2.3)."""

from latchkey import rfc7592
from latchkey.http import NO_STORE, Protocol, Response, create_app, header, lambda_handler

app = create_app(Protocol.OAUTH)


@app.delete("/api/oauth/register/<client_id>")
def delete_client(client_id: str):
    client, _token = rfc7592.authenticate(client_id, header(app, "Authorization"))
    rfc7592.delete(client)
    return Response(status_code=204, headers=dict(NO_STORE))


handler = lambda_handler(app)
