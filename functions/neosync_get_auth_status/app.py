"""POST|GET /mgmt.v1alpha1.AuthService/GetAuthStatus: Neosync's AuthService (Connect unary) → {isEnabled}."""

from latchkey import neosync
from latchkey.http import Protocol, create_app, json_response, lambda_handler

app = create_app(Protocol.CONNECT)


@app.post(neosync.PATHS["GetAuthStatus"])
@app.get(neosync.PATHS["GetAuthStatus"])
def get_auth_status():
    return json_response(neosync.get_auth_status(neosync.request_message(app)))


handler = lambda_handler(app)
