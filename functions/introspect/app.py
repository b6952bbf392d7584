"""POST /api/oauth/introspect: token introspection (RFC 7662) for authenticated callers."""

from latchkey import rfc7662
from latchkey.http import Protocol, create_app, header, json_response, lambda_handler
from latchkey.http.request import form_params

app = create_app(Protocol.OAUTH)


@app.post(rfc7662.INTROSPECT_PATH)
def post_introspect():
    return json_response(rfc7662.introspect(form_params(app), header(app, "Authorization")))


handler = lambda_handler(app)
