"""latchkey.http.router: routing v2 events, path parameters, error handlers and the response object."""

import base64

import pytest

from latchkey.http.router import Cookie, Response, Router


def event(method, path, *, stage="$default", headers=None):
    return {"version": "2.0", "rawPath": path, "rawQueryString": "", "headers": headers or {},
            "requestContext": {"stage": stage, "http": {"method": method, "path": path}}}


@pytest.fixture
def app():
    app = Router()

    @app.get("/items/<item_id>")
    def get_item(item_id):
        return Response(200, "application/json", {"id": item_id})

    @app.delete("/items/<item_id>")
    def delete_item(item_id):
        raise KeyError(item_id)

    @app.post("/items")
    def post_item():
        return {"header": app.current_event.headers.get("x-thing")}

    @app.exception_handler(LookupError)  # KeyError reaches it through its MRO
    def lookup(exc):
        return Response(410, "text/plain", f"gone {exc}")

    return app


def test_path_parameters_are_passed_as_keywords_raw(app):
    result = app.resolve(event("GET", "/items/a%2Fb"), None)
    assert result == {"statusCode": 200, "body": '{"id":"a%2Fb"}', "isBase64Encoded": False,
                      "headers": {"Content-Type": "application/json"}, "cookies": []}


def test_a_parameter_is_one_segment(app):
    assert app.resolve(event("GET", "/items/a/b"), None)["statusCode"] == 404


def test_method_must_match(app):
    assert app.resolve(event("PUT", "/items/a"), None)["statusCode"] == 404


def test_the_stage_prefix_is_removed_unless_default(app):
    assert app.resolve(event("GET", "/prod/items/x", stage="prod"), None)["statusCode"] == 200
    assert app.resolve(event("GET", "/prod/items/x"), None)["statusCode"] == 404


def test_exception_handlers_follow_the_mro(app):
    result = app.resolve(event("DELETE", "/items/7"), None)
    assert (result["statusCode"], result["body"]) == (410, "gone '7'")


def test_an_unhandled_exception_propagates(app):
    @app.get("/boom")
    def boom():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        app.resolve(event("GET", "/boom"), None)


def test_headers_are_read_case_insensitively_and_plain_values_become_json(app):
    result = app.resolve(event("POST", "/items", headers={"X-Thing": "v"}), None)
    assert (result["statusCode"], result["body"]) == (200, '{"header":"v"}')


def test_not_found_handler_is_used():
    app = Router()

    @app.not_found
    def missing(exc):
        return Response(404, "application/json", '{"error":"not_found"}')

    assert app.resolve(event("GET", "/nothing"), None)["body"] == '{"error":"not_found"}'


def test_bytes_are_base64_and_list_headers_are_joined():
    built = Response(200, "image/png", b"\x89PNG", headers={"Vary": ["Accept", "Origin"], "X-None": None}).build()
    assert built["isBase64Encoded"] is True
    assert base64.b64decode(built["body"]) == b"\x89PNG"
    assert built["headers"] == {"Content-Type": "image/png", "Vary": "Accept, Origin"}


def test_an_explicit_content_type_header_wins():
    assert Response(200, "text/plain", "x", headers={"Content-Type": "text/html"}).build()["headers"] == {
        "Content-Type": "text/html"}


def test_cookie_serialisation():
    assert str(Cookie("sid", "abc", max_age=60)) == "sid=abc; Path=/; Max-Age=60; HttpOnly; Secure; SameSite=Lax"
    assert str(Cookie("sid", "", secure=False, max_age=-5)) == "sid=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"
