"""PUT /api/oauth/user/id/{userid} (governor, scope gov.user.oauth.user:write): change a user (204);
disabling the user or setting a password also ends everything the user holds."""

from latchkey import bearer, useradmin
from latchkey.http import NO_STORE, Protocol, Response, create_app, header, lambda_handler
from latchkey.http.request import json_object

app = create_app(Protocol.GOVERNOR)


@app.put("/api/oauth/user/id/<userid>")
def update_user(userid: str):
    claims = bearer.require(header(app, "Authorization"), useradmin.SCOPE_USER_WRITE)
    useradmin.update(userid, json_object(app), client_id=claims["client_id"])
    return Response(status_code=204, headers=NO_STORE)


handler = lambda_handler(app)
