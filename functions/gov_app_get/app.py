"""GET /api/oauth/app/id/{clientid} (governor, public): one app's public configuration."""

from latchkey import apps
from latchkey.http import Protocol, create_app, json_response, lambda_handler

app = create_app(Protocol.GOVERNOR)


@app.get("/api/oauth/app/id/<clientid>")
def get_app(clientid: str):
    return json_response(apps.render(apps.get(clientid)))


handler = lambda_handler(app)
