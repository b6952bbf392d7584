"""GET /api/oauth/connection/id/{id} (governor, a user's token with scope gov.user.oauth.connection:read):
the user's connection to one app."""

from latchkey import governor_connections
from latchkey.http import Protocol, create_app, header, json_response, lambda_handler

app = create_app(Protocol.GOVERNOR)


@app.get("/api/oauth/connection/id/<client_id>")
def get_connection(client_id: str):
    user_id = governor_connections.caller(header(app, "Authorization"), governor_connections.SCOPE_CONNECTION_READ)
    return json_response(governor_connections.get(user_id, client_id).render())


handler = lambda_handler(app)
