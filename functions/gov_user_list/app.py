"""GET /api/oauth/user?amount=&offset= (governor, scope gov.user.oauth.user:read): a page of users."""

from latchkey import apps, bearer, useradmin
from latchkey.http import Protocol, create_app, header, json_response, lambda_handler
from latchkey.http.request import query_param

app = create_app(Protocol.GOVERNOR)


@app.get("/api/oauth/user")
def list_users():
    bearer.require(header(app, "Authorization"), useradmin.SCOPE_USER_READ)
    amount = apps.parse_amount(query_param(app, "amount"))
    offset = apps.parse_offset(query_param(app, "offset"))
    return json_response(useradmin.render_many(useradmin.list_users(amount, offset)))


handler = lambda_handler(app)
