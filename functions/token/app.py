"""POST /api/oauth/token: the token endpoint (RFC 6749 §3.2), a pipeline over the grant registry."""

from latchkey.http import Protocol, create_app, header, json_response, lambda_handler
from latchkey.http.request import form_params
from latchkey.rfc6749 import TOKEN_PATH, token_endpoint

app = create_app(Protocol.OAUTH)


@app.post(TOKEN_PATH)
def post_token():
    return json_response(token_endpoint.token(form_params(app), header(app, "Authorization")))


handler = lambda_handler(app)
