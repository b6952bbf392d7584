"""GET /api/oauth/platforms/{platformId}/authorize: third-party login, from the login page to the upstream
platform's authorization endpoint (state, nonce and PKCE bound to the pending request and this browser)."""

from latchkey import pages, thirdparty
from latchkey.http import Protocol, create_app, lambda_handler
from latchkey.http.request import browser, query_param

app = create_app(Protocol.PAGE)


@app.get(thirdparty.AUTHORIZE_ROUTE)
def authorize(platform_id: str):
    return pages.respond(thirdparty.authorize(platform_id, query_param(app, "request"), browser(app)))


handler = lambda_handler(app)
