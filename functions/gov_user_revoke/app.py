"""PUT /api/oauth/user/id/{userid}/revoke (governor, scope gov.user.oauth.user:write): end every session,
connection and token of the user (204)."""

from latchkey import bearer, useradmin
from latchkey.http import NO_STORE, Protocol, Response, create_app, header, lambda_handler

app = create_app(Protocol.GOVERNOR)


@app.put("/api/oauth/user/id/<userid>/revoke")
def revoke_user(userid: str):
    claims = bearer.require(header(app, "Authorization"), useradmin.SCOPE_USER_WRITE)
    useradmin.revoke(userid, client_id=claims["client_id"])
    return Response(status_code=204, headers=NO_STORE)


handler = lambda_handler(app)
