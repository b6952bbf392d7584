"""GET|POST /api/oauth/userinfo: the UserInfo endpoint (OIDC Core §5.3), an RFC 6750 protected resource."""

from latchkey.http import Protocol, create_app, header, json_response, lambda_handler
from latchkey.http.request import content_type, form_params
from latchkey.oidc import userinfo

app = create_app(Protocol.OAUTH)


@app.get(userinfo.USERINFO_PATH)
def get_userinfo():
    return json_response(userinfo.userinfo(header(app, "Authorization")))


@app.post(userinfo.USERINFO_PATH)
def post_userinfo():
    # RFC 6750 §2.2: the token may come as a form parameter; any other body carries nothing for us.
    form = form_params(app) if content_type(app) == "application/x-www-form-urlencoded" else {}
    return json_response(userinfo.userinfo(header(app, "Authorization"), form))


handler = lambda_handler(app)
