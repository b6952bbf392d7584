"""GET /api/oauth/connection?amount=&offset= (governor, a user's token with scope
gov.user.oauth.connection:read): a page of the user's app connections."""

from latchkey import apps, governor_connections
from latchkey.http import Protocol, create_app, header, json_response, lambda_handler
from latchkey.http.request import query_param

app = create_app(Protocol.GOVERNOR)


@app.get("/api/oauth/connection")
def list_connections():
    user_id = governor_connections.caller(header(app, "Authorization"), governor_connections.SCOPE_CONNECTION_READ)
    amount = apps.parse_amount(query_param(app, "amount"))
    offset = apps.parse_offset(query_param(app, "offset"))
    connections = governor_connections.list_connections(user_id, amount, offset)
    return json_response(governor_connections.render_many(connections))


handler = lambda_handler(app)
