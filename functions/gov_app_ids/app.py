"""GET /api/oauth/app/ids?ids=a,b (governor, public): the apps among at most 255 client ids."""

from latchkey import apps
from latchkey.http import Protocol, create_app, json_response, lambda_handler
from latchkey.http.request import query_param

app = create_app(Protocol.GOVERNOR)


@app.get("/api/oauth/app/ids")
def get_apps_by_ids():
    return json_response(apps.render_many(apps.get_many(apps.parse_ids(query_param(app, "ids")))))


handler = lambda_handler(app)
