"""POST /api/oauth/app (governor, scope gov.user.oauth.app:write): register an app; its secret is
answered once (201 {client_id, key})."""

from latchkey import apps, bearer
from latchkey.http import Protocol, create_app, header, json_response, lambda_handler
from latchkey.http.request import json_object

app = create_app(Protocol.GOVERNOR)


@app.post("/api/oauth/app")
def create_app_route():
    bearer.require(header(app, "Authorization"), apps.SCOPE_APP_WRITE)
    return json_response(apps.create(json_object(app)).to_json(), status=201)


handler = lambda_handler(app)
