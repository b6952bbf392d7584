"""POST /api/oauth/device/code: the device authorization endpoint (RFC 8628 §3.1, §3.2)."""

from latchkey import rfc8628
from latchkey.http import Protocol, create_app, header, json_response, lambda_handler
from latchkey.http.request import form_params

app = create_app(Protocol.OAUTH)


@app.post(rfc8628.DEVICE_AUTHORIZATION_PATH)
def post_device_code():
    return json_response(rfc8628.device_authorization(form_params(app), header(app, "Authorization")))


handler = lambda_handler(app)
