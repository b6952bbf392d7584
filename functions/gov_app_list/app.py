"""GET /api/oauth/app?amount=&offset= (governor, scope gov.user.oauth.app:read): a page of apps."""

from latchkey import apps, bearer
from latchkey.http import Protocol, create_app, header, json_response, lambda_handler
from latchkey.http.request import query_param

app = create_app(Protocol.GOVERNOR)


@app.get("/api/oauth/app")
def list_apps():
    bearer.require(header(app, "Authorization"), apps.SCOPE_APP_READ)
    amount = apps.parse_amount(query_param(app, "amount"))
    offset = apps.parse_offset(query_param(app, "offset"))
    return json_response(apps.render_many(apps.list_apps(amount, offset)))


handler = lambda_handler(app)
