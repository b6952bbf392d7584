"""DELETE /api/oauth/platform/id/{platformId} (governor, scope gov.user.oauth.platform:write): remove a
third-party login platform (204)."""

from latchkey import bearer, platform_admin
from latchkey.http import NO_STORE, Protocol, Response, create_app, header, lambda_handler

app = create_app(Protocol.GOVERNOR)


@app.delete("/api/oauth/platform/id/<platform_id>")
def delete_platform(platform_id: str):
    bearer.require(header(app, "Authorization"), platform_admin.SCOPE_PLATFORM_WRITE)
    platform_admin.delete(platform_id)
    return Response(status_code=204, headers=NO_STORE)


handler = lambda_handler(app)
