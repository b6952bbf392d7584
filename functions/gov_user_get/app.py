"""GET /api/oauth/user/id/{userid} (governor, scope gov.user.oauth.user:read): one user."""

from latchkey import bearer, useradmin
from latchkey.http import Protocol, create_app, header, json_response, lambda_handler

app = create_app(Protocol.GOVERNOR)


@app.get("/api/oauth/user/id/<userid>")
def get_user(userid: str):
    bearer.require(header(app, "Authorization"), useradmin.SCOPE_USER_READ)
    return json_response(useradmin.render(useradmin.get(userid)))


handler = lambda_handler(app)
