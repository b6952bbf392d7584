"""GET|POST /api/oauth/consent: the hosted consent page; decision=allow issues the code, deny refuses."""

from latchkey import interaction, pages
from latchkey.http import Protocol, create_app, lambda_handler
from latchkey.http.request import browser, form_params, query_param

app = create_app(Protocol.PAGE)


@app.get(interaction.CONSENT_PATH)
def show():
    return pages.respond(interaction.consent_page(query_param(app, "request"), browser(app)))


@app.post(interaction.CONSENT_PATH)
def submit():
    return pages.respond(interaction.consent_submit(form_params(app), browser(app)))


handler = lambda_handler(app)
