"""GET /api/oauth/platform/id/{platformId} (governor, scope gov.user.oauth.platform:read): one third-party
login platform, without its client secret."""

from latchkey import bearer, platform_admin
from latchkey.http import Protocol, create_app, header, json_response, lambda_handler

app = create_app(Protocol.GOVERNOR)


@app.get("/api/oauth/platform/id/<platform_id>")
def get_platform(platform_id: str):
    bearer.require(header(app, "Authorization"), platform_admin.SCOPE_PLATFORM_READ)
    return json_response(platform_admin.render(platform_admin.get(platform_id)))


handler = lambda_handler(app)
