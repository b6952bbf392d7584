"""PUT /api/oauth/app/id/{clientid}/image (governor, scope gov.user.oauth.app:write): upload the app's
logo as the multipart/form-data field `image` (PNG, JPEG or GIF); stored as a 256×256 PNG (204)."""

from latchkey import apps, bearer, logo
from latchkey.http import NO_STORE, Protocol, Response, create_app, header, lambda_handler
from latchkey.http.request import raw_body

app = create_app(Protocol.GOVERNOR)


@app.put("/api/oauth/app/id/<clientid>/image")
def update_app_image(clientid: str):
    bearer.require(header(app, "Authorization"), apps.SCOPE_APP_WRITE)
    image = logo.form_file(header(app, "Content-Type"), raw_body(app, limit=logo.MAX_BODY))
    apps.set_logo(clientid, logo.process(image))
    return Response(status_code=204, headers=NO_STORE)


handler = lambda_handler(app)
