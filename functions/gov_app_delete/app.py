"""DELETE /api/oauth/app/id/{clientid} (governor, scope gov.user.oauth.app:write): remove an app and its
logo (204)."""

from latchkey import apps, bearer
from latchkey.http import NO_STORE, Protocol, Response, create_app, header, lambda_handler

app = create_app(Protocol.GOVERNOR)


@app.delete("/api/oauth/app/id/<clientid>")
def delete_app(clientid: str):
    bearer.require(header(app, "Authorization"), apps.SCOPE_APP_WRITE)
    apps.delete(clientid)
    return Response(status_code=204, headers=NO_STORE)


handler = lambda_handler(app)
