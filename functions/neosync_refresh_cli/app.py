"""POST /mgmt.v1alpha1.AuthService/RefreshCli: Neosync's AuthService (Connect unary): the refresh grant."""

from latchkey import neosync
from latchkey.http import Protocol, create_app, json_response, lambda_handler

app = create_app(Protocol.CONNECT)


@app.post(neosync.PATHS["RefreshCli"])
def refresh_cli():
    return json_response(neosync.refresh_cli(neosync.request_message(app)))


handler = lambda_handler(app)
