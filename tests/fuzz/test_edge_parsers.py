"""Property tests of the parsers at the edge (issue 9, "Hostile input"): whatever the bytes, headers or
query strings, only typed errors (subclasses of :class:`latchkey.errors.LatchkeyError`, which every route
renders as a 4xx in its protocol) may escape, never another exception; and what comes back keeps the
parser's promises. Nothing here touches the store.
"""

from __future__ import annotations

import base64
import io
import json
import urllib.parse

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from latchkey import bearer, logo, neosync, proto3json, rfc8628
from latchkey.errors import LatchkeyError
from latchkey.http import request as edge
from latchkey.http.router import Event, Router
from latchkey.rfc6749 import client_auth
from latchkey.sessions import read_cookie

PROPERTY = settings(max_examples=300, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
FORM = "application/x-www-form-urlencoded"

# --- strategies ------------------------------------------------------------------------------------------
_FORM_PIECES = st.sampled_from(["a", "b", "=", "&", "%", "%2", "%ff", "%FE%FF", "%zz", "+", "%00", "%3D", "%26",
                                "é", "\x00", ";", "grant_type", "client_id", " ", "%C3", "%C3%A9", "\ud7ff"])
FORM_TEXT = st.lists(_FORM_PIECES, max_size=25).map("".join) | st.text(max_size=200)
RAW_BYTES = st.binary(max_size=400) | FORM_TEXT.map(lambda t: t.encode("utf-8", "surrogatepass"))
CONTENT_TYPES = st.sampled_from([FORM, f"{FORM}; charset=utf-8", "APPLICATION/X-WWW-FORM-URLENCODED", "text/plain",
                                 "application/json", "application/json; charset=utf-8", "", " ;;",
                                 "multipart/form-data"])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20)


@st.composite
def events(draw, *, method: str = "POST"):
    """An API Gateway v2 event as the gateway builds it: text bodies as is, others base64 (sometimes a body
    that claims to be base64 but is not)."""
    data = draw(RAW_BYTES)
    encoded = draw(st.sampled_from(["text", "base64", "bad-base64"]))
    if encoded == "text":
        body, flag = data.decode("utf-8", "replace"), False
    elif encoded == "base64":
        body, flag = base64.b64encode(data).decode(), True
    else:
        body, flag = draw(st.text(max_size=60)), True
    return {"version": "2.0", "rawPath": "/x", "rawQueryString": draw(FORM_TEXT), "body": body,
            "isBase64Encoded": flag, "headers": {"content-type": draw(CONTENT_TYPES)},
            "requestContext": {"http": {"method": method, "sourceIp": "203.0.113.9"}}}


def app_for(event: dict) -> Router:
    app = Router()
    app.current_event = Event(event)
    return app


def typed(function, *args, allow: tuple[type[LatchkeyError], ...] = ()):
    """``function``'s result, or None when it raised a typed error (a 4xx, or one of ``allow``); anything
    else fails the test."""
    try:
        return function(*args)
    except LatchkeyError as exc:
        assert 400 <= exc.status < 500 or isinstance(exc, allow), (type(exc).__name__, exc.status)
        return None


# --- latchkey.http.request -----------------------------------------------------------------------------
@PROPERTY
@given(events())
@example({"body": "YQ", "isBase64Encoded": True, "headers": {"content-type": FORM}, "rawQueryString": ""})
@example({"body": "a=%ff", "isBase64Encoded": False, "headers": {"content-type": FORM}, "rawQueryString": ""})
@example({"body": "a=1&a=2", "isBase64Encoded": False, "headers": {"content-type": FORM}, "rawQueryString": ""})
def test_form_params_only_typed_errors(event):
    params = typed(edge.form_params, app_for(event))
    if params is not None:
        assert all(isinstance(k, str) and isinstance(v, str) and v for k, v in params.items())


@PROPERTY
@given(events())
def test_raw_body_and_json_object_only_typed_errors(event):
    data = typed(edge.raw_body, app_for(event))
    assert data is None or len(data) <= edge.MAX_BODY
    document = typed(edge.json_object, app_for(event))
    assert document is None or isinstance(document, dict)


@PROPERTY
@given(FORM_TEXT)
@example("a=1&a=2")
@example("%ff=1")
@example("a=%")
def test_query_params_only_typed_errors(raw):
    params = typed(edge.query_params, app_for({"rawQueryString": raw, "headers": {}}))
    if params is not None:
        assert all(isinstance(v, str) and v for v in params.values())
        pairs = urllib.parse.parse_qsl(raw, keep_blank_values=True)
        assert len({name for name, _ in pairs}) == len(pairs)  # a repeated name never passes


# --- client authentication and bearer tokens -----------------------------------------------------------
_B64 = st.binary(max_size=80).map(lambda b: base64.b64encode(b).decode())
_CREDENTIALS = st.tuples(FORM_TEXT, FORM_TEXT).map(
    lambda pair: base64.b64encode(f"{pair[0]}:{pair[1]}".encode("utf-8", "surrogatepass")).decode())
AUTHORIZATION = st.none() | st.builds(
    lambda scheme, space, value: f"{scheme}{space}{value}",
    st.sampled_from(["Basic", "basic", "BASIC", "Bearer", "Digest", ""]), st.sampled_from([" ", "  ", "\t", ""]),
    _B64 | _CREDENTIALS | st.text(max_size=60)) | st.text(max_size=40)
PARAMS = st.dictionaries(st.sampled_from(sorted(client_auth.PARAMETERS)),
                         st.text(min_size=1, max_size=40) | st.sampled_from([client_auth.JWT_BEARER,
                                                                              "e30.e30.", "a.b.c"]), max_size=4)


@PROPERTY
@given(PARAMS, AUTHORIZATION)
@example({}, "Basic Og==")  # ":"
@example({}, "Basic JTpiYWQ=")  # "%:bad"
@example({}, "Basic //79")  # not UTF-8
@example({"client_id": "a"}, "Basic YjpzZWNyZXQ=")  # b:secret, another client_id
@example({"client_assertion_type": client_auth.JWT_BEARER, "client_assertion": "e30.e30."}, None)
def test_client_credentials_only_typed_errors(params, authorization):
    found = typed(client_auth.credentials, params, authorization)
    if found is not None:
        assert found.method in client_auth.METHODS and isinstance(found.client_id, str) and found.client_id


@PROPERTY
@given(st.none() | st.text(max_size=80) | st.builds(lambda t: f"Bearer {t}", st.text(max_size=80)))
def test_bearer_header_only_typed_errors(authorization):
    token = typed(bearer.token_from_header, authorization)
    assert token is None or (token and " " not in token)


# --- Connect (Neosync), proto3 JSON, device codes, cookies ----------------------------------------------
@PROPERTY
@given(st.dictionaries(st.sampled_from(["connect-protocol-version", "content-encoding", "x"]),
                       st.text(max_size=10), max_size=3),
       st.sampled_from(["application/json", "application/proto", "", "text/plain"]),
       RAW_BYTES | JSON_VALUES.map(lambda v: json.dumps(v).encode()))
def test_connect_post_message_only_typed_errors(headers, content_type, body):
    # Connect's `unimplemented` (HTTP 501) is what the protocol asks for an unsupported compression
    message = typed(neosync.post_message, headers, content_type, body, allow=(neosync.Unimplemented,))
    assert message is None or isinstance(message, dict)


@PROPERTY
@given(st.dictionaries(st.sampled_from(["connect", "encoding", "message", "base64", "compression"]),
                       FORM_TEXT | st.sampled_from(["v1", "json", "1", "0", "e30", "{}", "identity"]), max_size=5))
def test_connect_get_message_only_typed_errors(query):
    message = typed(neosync.get_message, query, allow=(neosync.Unimplemented,))
    assert message is None or isinstance(message, dict)


@PROPERTY
@given(st.dictionaries(st.text(max_size=12), JSON_VALUES, max_size=6))
def test_proto3json_fields_only_typed_errors(message):
    names = {"grantType": "grant_type", "clientId": "client_id", "scope": "scope", "refreshToken": "refresh_token"}
    found = typed(proto3json.fields, message, names)
    assert found is None or set(found) <= set(names)


@PROPERTY
@given(st.none() | st.text(max_size=80))
def test_user_code_normalization_never_raises(value):
    code = rfc8628.normalize_user_code(value)
    assert code is None or (len(code) == rfc8628.USER_CODE_LENGTH and set(code) <= set(rfc8628.ALPHABET))


@PROPERTY
@given(st.lists(st.text(max_size=60), max_size=4), st.text(max_size=20))
def test_cookie_reading_never_raises(cookies, name):
    value = read_cookie(cookies, name)
    assert value is None or isinstance(value, str)


# --- the logo upload: multipart parsing and image decoding -----------------------------------------------
def _image(kind: str) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (5, 3), (10, 200, 30)).save(out, format=kind)
    return out.getvalue()


IMAGES = [_image("PNG"), _image("GIF"), _image("JPEG")]


@st.composite
def damaged_images(draw):
    """A valid PNG, GIF or JPEG with some bytes changed, cut short or grown."""
    data = bytearray(draw(st.sampled_from(IMAGES)))
    for _ in range(draw(st.integers(0, 6))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(data)))
    return bytes(data[:cut]) + draw(st.binary(max_size=20))


@settings(PROPERTY, max_examples=200)
@given(st.binary(max_size=300) | damaged_images())
def test_logo_decoding_only_typed_errors(data):
    stored = typed(logo.process, data)
    assert stored is None or stored.png.startswith(b"\x89PNG")


@st.composite
def multipart(draw):
    boundary = draw(st.sampled_from(["b", "fuzz", "x" * 70, "x" * 71, "a b", "", "\u00e9"]))
    parts = draw(st.lists(st.tuples(
        st.sampled_from(['form-data; name="image"', 'form-data; name="other"', "attachment", 'form-data; name=""',
                         "form-data", 'form-data; name="image"; filename="a.png"']) | st.text(max_size=30),
        st.binary(max_size=40)), max_size=3))
    body = b"".join(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode("utf-8", "replace")
                    + content + b"\r\n" for disposition, content in parts)
    body += draw(st.sampled_from([f"--{boundary}--\r\n".encode("utf-8", "replace"), b"", b"--"]))
    content_type = draw(st.sampled_from([f"multipart/form-data; boundary={boundary}",
                                         f'multipart/form-data; boundary="{boundary}"', "multipart/form-data",
                                         "text/plain", ""]))
    return content_type, draw(st.just(body) | st.binary(max_size=200))


@PROPERTY
@given(multipart())
def test_multipart_form_file_only_typed_errors(form):
    content_type, body = form
    content = typed(logo.form_file, content_type, body)
    assert content is None or isinstance(content, bytes)


def test_the_properties_see_valid_input_too():
    """The strategies are not all noise: valid input parses."""
    event = {"body": "grant_type=client_credentials&scope=a+b", "isBase64Encoded": False,
             "headers": {"content-type": FORM}, "rawQueryString": "a=1&b=2"}
    assert edge.form_params(app_for(event)) == {"grant_type": "client_credentials", "scope": "a b"}
    assert edge.query_params(app_for(event)) == {"a": "1", "b": "2"}
    assert client_auth.credentials({}, "Basic " + base64.b64encode(b"app:s%3Acret").decode()).secret == "s:cret"
    assert logo.process(IMAGES[0]).png.startswith(b"\x89PNG")
    with pytest.raises(LatchkeyError):
        edge.form_params(app_for({**event, "body": "a=1&a=2"}))
