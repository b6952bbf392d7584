"""DELETE /api/oauth/connection/id/{id} (governor, a user's token with scope gov.user.oauth.connection:write):
end the user's connection to one app and every token issued from it."""

from latchkey import governor_connections
from latchkey.http import NO_STORE, Protocol, Response, create_app, header, lambda_handler

app = create_app(Protocol.GOVERNOR)


@app.delete("/api/oauth/connection/id/<client_id>")
def delete_connection(client_id: str):
    user_id = governor_connections.caller(header(app, "Authorization"), governor_connections.SCOPE_CONNECTION_WRITE)
    governor_connections.delete(user_id, client_id)
    return Response(status_code=204, headers=dict(NO_STORE))


handler = lambda_handler(app)
