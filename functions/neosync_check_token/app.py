"""POST /mgmt.v1alpha1.AuthService/CheckToken: Neosync's AuthService (Connect unary): {} for a valid bearer
token, else unauthenticated."""

from latchkey import neosync
from latchkey.http import Protocol, create_app, header, json_response, lambda_handler

app = create_app(Protocol.CONNECT)


@app.post(neosync.PATHS["CheckToken"])
def check_token():
    return json_response(neosync.check_token(neosync.request_message(app), header(app, "Authorization")))


handler = lambda_handler(app)
