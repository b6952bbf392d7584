"""GET /api/oauth/app/id/{clientid}/image (governor, public): the app's 256×256 PNG logo, with an ETag."""

from latchkey import apps, logo
from latchkey.http import Protocol, Response, create_app, header, lambda_handler

app = create_app(Protocol.GOVERNOR)
CACHE_CONTROL = "public, max-age=300"


@app.get("/api/oauth/app/id/<clientid>/image")
def get_app_image(clientid: str):
    stored = apps.get_logo(clientid)
    headers = {"ETag": stored.etag, "Cache-Control": CACHE_CONTROL}
    if logo.not_modified(stored.etag, header(app, "If-None-Match")):
        return Response(status_code=304, headers=headers)  # RFC 9110 §15.4.5: validators, no content type
    return Response(status_code=200, content_type=stored.content_type, body=stored.png, headers=headers)


handler = lambda_handler(app)
