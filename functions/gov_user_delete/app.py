"""DELETE /api/oauth/user/id/{userid} (governor, scope gov.user.oauth.user:write): remove a user; every
session, connection and token of the user ends with them (204)."""

from latchkey import bearer, useradmin
from latchkey.http import NO_STORE, Protocol, Response, create_app, header, lambda_handler

app = create_app(Protocol.GOVERNOR)


@app.delete("/api/oauth/user/id/<userid>")
def delete_user(userid: str):
    claims = bearer.require(header(app, "Authorization"), useradmin.SCOPE_USER_WRITE)
    useradmin.delete(userid, client_id=claims["client_id"])
    return Response(status_code=204, headers=NO_STORE)


handler = lambda_handler(app)
