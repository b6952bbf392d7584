"""GET /api/oauth/platforms/{platformId}/callback: third-party login, back from the upstream platform.

The upstream's code is exchanged and its answer validated (the id_token per OIDC Core §3.1.3.7, or the
OAuth 2.0 userinfo); the local user is found, linked or created, signed in, and the pending authorization
request goes on. Every failure is the error page (or ``access_denied`` to the app when the user declined).
"""

from latchkey import pages, thirdparty
from latchkey.http import Protocol, create_app, lambda_handler
from latchkey.http.request import browser, query_params
from latchkey.rfc6749.authorization_request import PageError

app = create_app(Protocol.PAGE)


@app.get(thirdparty.CALLBACK_ROUTE)
def callback(platform_id: str):
    params = query_params(app, error=lambda message: PageError("invalid_request", message))
    return pages.respond(thirdparty.callback(platform_id, params, browser(app)))


handler = lambda_handler(app)
