"""GET /api/oauth/jwks: the published signing keys (RFC 7517 §5), cacheable, with an ETag."""

from latchkey.discovery import jwks
from latchkey.http import Protocol, Response, create_app, header, lambda_handler

app = create_app(Protocol.GOVERNOR)


@app.get("/api/oauth/jwks")
def get_jwks():
    document = jwks()
    if document.not_modified(header(app, "If-None-Match")):
        # RFC 9110 §15.4.5: a 304 repeats the validators and caching headers, not the content type.
        headers = {k: v for k, v in document.headers().items() if k != "Content-Type"}
        return Response(status_code=304, headers=headers)
    return Response(status_code=200, body=document.body, headers=document.headers())


handler = lambda_handler(app)
