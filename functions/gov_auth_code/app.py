"""POST /api/oauth/auth/code (governor, a user's token with scope gov.user.oauth.authorize): the user
consents to an app's authorization request and gets the code for the app's redirect."""

from latchkey import bearer, interaction
from latchkey.http import Protocol, create_app, header, json_response, lambda_handler
from latchkey.http.request import json_object

app = create_app(Protocol.GOVERNOR)


@app.post("/api/oauth/auth/code")
def auth_code():
    claims = bearer.require(header(app, "Authorization"), interaction.SCOPE_AUTHORIZE)
    return json_response(interaction.governor_auth_code(claims, json_object(app)))


handler = lambda_handler(app)
