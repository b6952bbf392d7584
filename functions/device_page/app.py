"""GET|POST /device: the device verification page (RFC 8628 §3.3): enter the user code, approve or deny."""

from latchkey import pages, rfc8628
from latchkey.http import Protocol, create_app, lambda_handler
from latchkey.http.request import browser, form_params, query_params

app = create_app(Protocol.PAGE)


@app.get(rfc8628.VERIFICATION_PATH)
def show():
    return pages.respond(rfc8628.verification_page(query_params(app), browser(app)))


@app.post(rfc8628.VERIFICATION_PATH)
def submit():
    return pages.respond(rfc8628.verification_submit(form_params(app), browser(app)))


handler = lambda_handler(app)
