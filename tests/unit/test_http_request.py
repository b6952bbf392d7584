"""Parsing bodies once at the edge (latchkey.http.request): form encoding, JSON, base64, limits."""

import base64

import pytest

from latchkey.errors import InvalidClient, InvalidRequest, PayloadTooLarge
from latchkey.http.request import MAX_BODY, form_params, json_object, query_param
from latchkey.http.router import Event, Router


def resolver(body, content_type="application/x-www-form-urlencoded", b64=False, query=None):
    app = Router()
    event = {"version": "2.0", "rawPath": "/t", "rawQueryString": "", "headers": {"content-type": content_type},
             "body": base64.b64encode(body.encode()).decode() if b64 else body, "isBase64Encoded": b64,
             "queryStringParameters": query, "requestContext": {"http": {"method": "POST", "path": "/t"}}}
    app.current_event = Event(event)
    return app


def test_form_params_decode_and_drop_empty_values():
    app = resolver("grant_type=client_credentials&scope=a+b%20c&empty=",
                   content_type="application/x-www-form-urlencoded; charset=UTF-8")
    assert form_params(app) == {"grant_type": "client_credentials", "scope": "a b c"}


def test_form_params_from_a_base64_body():
    assert form_params(resolver("a=1", b64=True)) == {"a": "1"}


def test_repeated_parameters_are_invalid_request():
    with pytest.raises(InvalidRequest, match="scope is repeated"):
        form_params(resolver("scope=a&scope=b"))


def test_wrong_content_type_and_bad_encoding_raise_the_chosen_error():
    with pytest.raises(InvalidRequest, match="x-www-form-urlencoded"):
        form_params(resolver('{"a":1}', content_type="application/json"))
    with pytest.raises(InvalidClient):
        form_params(resolver("a=1", content_type="text/plain"), error=InvalidClient)
    with pytest.raises(InvalidRequest, match="form encoding"):
        form_params(resolver("a=%ZZ&&"))


def test_oversized_bodies_are_refused():
    with pytest.raises(PayloadTooLarge):
        form_params(resolver("a=" + "x" * MAX_BODY))


def test_json_object():
    assert json_object(resolver('{"name":"App"}', content_type="application/json")) == {"name": "App"}
    with pytest.raises(InvalidRequest, match="valid JSON"):
        json_object(resolver("{nope", content_type="application/json"))
    with pytest.raises(InvalidRequest, match="JSON object"):
        json_object(resolver("[1]", content_type="application/json"))
    with pytest.raises(InvalidRequest, match="application/json"):
        json_object(resolver("{}", content_type="text/plain"))


def test_query_param():
    assert query_param(resolver("", query={"amount": "10"}), "amount") == "10"
    assert query_param(resolver(""), "amount") is None
