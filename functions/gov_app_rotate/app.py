"""PUT /api/oauth/app/id/{clientid}/rotate (governor, scope gov.user.oauth.app:write): a new client
secret, answered once (200 {client_id, key}); the old secret stops working at once."""

from latchkey import apps, bearer
from latchkey.http import Protocol, create_app, header, json_response, lambda_handler

app = create_app(Protocol.GOVERNOR)


@app.put("/api/oauth/app/id/<clientid>/rotate")
def rotate_app_secret(clientid: str):
    bearer.require(header(app, "Authorization"), apps.SCOPE_APP_WRITE)
    return json_response(apps.rotate(clientid).to_json())


handler = lambda_handler(app)
