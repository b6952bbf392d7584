"""POST /iam/v2/oauth/device-code: Tetrate Service Bridge's DeviceCode RPC (→ DeviceCodeResponse, proto3 JSON)."""

from latchkey import tetrate
from latchkey.http import Protocol, create_app, header, json_response, lambda_handler
from latchkey.http.request import json_object

app = create_app(Protocol.TETRATE)


@app.post(tetrate.DEVICE_CODE_PATH)
def device_code():
    return json_response(tetrate.device_code(json_object(app), header(app, "Authorization")))


handler = lambda_handler(app)
