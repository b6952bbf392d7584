"""PUT /api/oauth/app/id/{clientid} (governor, scope gov.user.oauth.app:write): change an app (204)."""

from latchkey import apps, bearer
from latchkey.http import NO_STORE, Protocol, Response, create_app, header, lambda_handler
from latchkey.http.request import json_object

app = create_app(Protocol.GOVERNOR)


@app.put("/api/oauth/app/id/<clientid>")
def update_app(clientid: str):
    bearer.require(header(app, "Authorization"), apps.SCOPE_APP_WRITE)
    apps.update(clientid, json_object(app))
    return Response(status_code=204, headers=NO_STORE)


handler = lambda_handler(app)
