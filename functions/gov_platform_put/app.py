"""PUT /api/oauth/platform/id/{platformId} (governor, scope gov.user.oauth.platform:write): create (201 with
the platform) or replace (204) a third-party login platform; the client secret is stored sealed."""

from latchkey import bearer, platform_admin
from latchkey.http import NO_STORE, Protocol, Response, create_app, header, json_response, lambda_handler
from latchkey.http.request import json_object

app = create_app(Protocol.GOVERNOR)


@app.put("/api/oauth/platform/id/<platform_id>")
def put_platform(platform_id: str):
    bearer.require(header(app, "Authorization"), platform_admin.SCOPE_PLATFORM_WRITE)
    platform, created = platform_admin.put(platform_id, json_object(app))
    if created:
        return json_response(platform_admin.render(platform), status=201)
    return Response(status_code=204, headers=NO_STORE)


handler = lambda_handler(app)
