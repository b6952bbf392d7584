"""POST /api/oauth/revoke: token revocation (RFC 7009); 200 with an empty body whether or not the token
was valid (§2.2)."""

from latchkey import rfc7009
from latchkey.http import NO_STORE, Protocol, Response, create_app, header, lambda_handler
from latchkey.http.request import form_params

app = create_app(Protocol.OAUTH)


@app.post(rfc7009.REVOKE_PATH)
def post_revoke():
    rfc7009.revoke(form_params(app), header(app, "Authorization"))
    return Response(status_code=200, headers=dict(NO_STORE))


handler = lambda_handler(app)
