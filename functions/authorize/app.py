"""GET /api/oauth/authorize: the authorization endpoint (RFC 6749 §4.1.1, OIDC Core §3.1.2.1).

Errors about the client or its redirect URI are shown on the error page; all others go back to the app.
"""

from latchkey import interaction, pages
from latchkey.http import Protocol, create_app, lambda_handler
from latchkey.http.request import browser, query_params
from latchkey.rfc6749.authorization_request import AUTHORIZE_PATH, PageError

app = create_app(Protocol.PAGE)


@app.get(AUTHORIZE_PATH)
def authorize():
    params = query_params(app, error=lambda message: PageError("invalid_request", message))
    return pages.respond(interaction.authorize(params, browser(app)))


handler = lambda_handler(app)
