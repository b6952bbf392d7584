"""GET /api/oauth/platform (governor, scope gov.user.oauth.platform:read): every third-party login platform,
by platform id."""

from latchkey import bearer, platform_admin
from latchkey.http import Protocol, create_app, header, json_response, lambda_handler

app = create_app(Protocol.GOVERNOR)


@app.get("/api/oauth/platform")
def list_platforms():
    bearer.require(header(app, "Authorization"), platform_admin.SCOPE_PLATFORM_READ)
    return json_response(platform_admin.render_many(platform_admin.list_platforms()))


handler = lambda_handler(app)
