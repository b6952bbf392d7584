"""POST /iam/v2/oauth/token: Tetrate Service Bridge's Token RPC (GrantRequest → GrantResponse, proto3 JSON)."""

from latchkey import tetrate
from latchkey.http import Protocol, create_app, header, json_response, lambda_handler
from latchkey.http.request import json_object

app = create_app(Protocol.TETRATE)


@app.post(tetrate.TOKEN_PATH)
def grant():
    return json_response(tetrate.token(json_object(app), header(app, "Authorization")))


handler = lambda_handler(app)
