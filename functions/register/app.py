"""POST /api/oauth/register: dynamic client registration (RFC 7591 §3), answered in the OAuth shape."""

from latchkey import rfc7591
from latchkey.http import Protocol, create_app, header, json_response, lambda_handler
from latchkey.http.request import json_object

app = create_app(Protocol.OAUTH)


@app.post("/api/oauth/register")
def register():
    rfc7591.authorize(header(app, "Authorization"))  # before the body: strangers learn nothing
    return json_response(rfc7591.register(json_object(app)), status=201)


handler = lambda_handler(app)
