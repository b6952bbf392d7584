"""GET|POST /api/oauth/login: the hosted sign-in page and its form (CSRF-checked, throttled)."""

from latchkey import interaction, pages
from latchkey.http import Protocol, create_app, lambda_handler
from latchkey.http.request import browser, form_params, query_param

app = create_app(Protocol.PAGE)


@app.get(interaction.LOGIN_PATH)
def show():
    return pages.respond(interaction.login_page(query_param(app, "request"), browser(app)))


@app.post(interaction.LOGIN_PATH)
def submit():
    return pages.respond(interaction.login_submit(form_params(app), browser(app)))


handler = lambda_handler(app)
