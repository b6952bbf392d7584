"""POST /mgmt.v1alpha1.AuthService/LoginCli: Neosync's AuthService (Connect unary): redeems the CLI's code."""

from latchkey import neosync
from latchkey.http import Protocol, create_app, json_response, lambda_handler

app = create_app(Protocol.CONNECT)


@app.post(neosync.PATHS["LoginCli"])
def login_cli():
    return json_response(neosync.login_cli(neosync.request_message(app)))


handler = lambda_handler(app)
