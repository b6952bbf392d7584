"""GET /api/oauth/jwks: the published signing keys (RFC 7517 §5), cacheable, with an ETag."""

from aws_lambda_powertools.event_handler import Response

from latchkey.discovery import jwks
from latchkey.http import Protocol, create_app, header, lambda_handler

app = create_app(Protocol.GOVERNOR)


@app.get("/api/oauth/jwks")
def get_jwks():
    document = jwks()
    if document.not_modified(header(app, "If-None-Match")):
        return Response(status_code=304, headers=document.headers())
    return Response(status_code=200, body=document.body, headers=document.headers())


handler = lambda_handler(app)
