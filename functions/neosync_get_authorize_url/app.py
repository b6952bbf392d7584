"""POST|GET /mgmt.v1alpha1.AuthService/GetAuthorizeUrl: Neosync's AuthService (Connect unary): the CLI
app's authorization URL, with PKCE added server-side."""

from latchkey import neosync
from latchkey.http import Protocol, create_app, json_response, lambda_handler

app = create_app(Protocol.CONNECT)


@app.post(neosync.PATHS["GetAuthorizeUrl"])
@app.get(neosync.PATHS["GetAuthorizeUrl"])
def get_authorize_url():
    return json_response(neosync.get_authorize_url(neosync.request_message(app)))


handler = lambda_handler(app)
