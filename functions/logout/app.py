"""GET|POST /api/oauth/logout: RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0)."""

from latchkey import interaction, pages
from latchkey.http import Protocol, create_app, lambda_handler
from latchkey.http.request import browser, form_params, query_params

app = create_app(Protocol.PAGE)


@app.get(interaction.LOGOUT_PATH)
def from_app():
    return pages.respond(interaction.logout(query_params(app), browser(app)))


@app.post(interaction.LOGOUT_PATH)
def posted():
    form = form_params(app)
    if interaction.is_confirmation(form):
        return pages.respond(interaction.logout_submit(form, browser(app)))
    return pages.respond(interaction.logout(form, browser(app)))


handler = lambda_handler(app)
