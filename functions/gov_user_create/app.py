"""POST /api/oauth/user (governor, scope gov.user.oauth.user:write): create a user (201 {userid, username})."""

from latchkey import bearer, useradmin
from latchkey.http import Protocol, create_app, header, json_response, lambda_handler
from latchkey.http.request import json_object

app = create_app(Protocol.GOVERNOR)


@app.post("/api/oauth/user")
def create_user():
    bearer.require(header(app, "Authorization"), useradmin.SCOPE_USER_WRITE)
    return json_response(useradmin.render_created(useradmin.create(json_object(app))), status=201)


handler = lambda_handler(app)
