"""`GET /openapi.json` (contract §1): an OpenAPI 3.1 document generated from the routes, listing
exactly what the functions serve, every error answer as the envelope."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openapi_spec_validator import validate

from local import template as tmpl
from shared.api.openapi import ROUTE_MODULES, build, security_schemes
from tests.factories import api_event, body_of

API_FUNCTIONS = sorted(name for name, fn in tmpl.functions().items() if fn.routes)


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build()


def operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}


def test_the_document_is_valid_openapi_3_1(document):
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_it_lists_exactly_the_routes_the_functions_serve(lambda_module, document):
    served: set[tuple[str, str]] = set()
    template_paths: set[str] = set()
    for name in API_FUNCTIONS:
        app = lambda_module(name).app
        served |= operations(json.loads(app.get_openapi_json_schema(security_schemes=security_schemes())))
        template_paths |= {route.path for route in tmpl.functions()[name].routes}
    assert operations(document) == served
    # ... and every path API Gateway routes to a function is in it, and nothing else.
    assert {path for _, path in served} == template_paths


def test_every_route_module_is_served_by_a_function(lambda_module):
    included = set()
    for name in API_FUNCTIONS:
        module = lambda_module(name)
        included |= {m for m in ROUTE_MODULES if m.rsplit(".", 1)[1] in module.__dict__}
    assert included == set(ROUTE_MODULES)
    assert "console" in lambda_module("ConsoleFunction").__dict__  # its router is built apart


def test_every_operation_documents_its_errors_as_the_envelope(document):
    envelope = {"$ref": "#/components/schemas/ErrorEnvelope"}
    for path, ops in document["paths"].items():
        for method, operation in ops.items():
            responses = operation["responses"]
            assert {"4XX", "5XX"} <= set(responses), (method, path)
            for status in ("4XX", "5XX", "422"):
                if status in responses:
                    assert responses[status]["content"]["application/json"]["schema"] == envelope
            assert any(s.startswith("2") or s == "302" for s in responses), (method, path)


def test_the_account_routes_name_their_security(document):
    for path, ops in document["paths"].items():
        for method, operation in ops.items():
            if path.startswith("/v1/"):
                assert operation.get("security") == [{"accountKey": []}], (method, path)
    schemes = document["components"]["securitySchemes"]
    assert schemes["accountKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["accountKey"]["description"],
    }


def test_the_status_codes_the_routes_answer_are_the_documented_ones(document):
    paths = document["paths"]
    assert set(paths["/admin/accounts"]["post"]["responses"]) >= {"201"}
    assert "202" in paths["/v1/campaigns/{campaign_id}/syncs"]["post"]["responses"]
    assert "204" in paths["/v1/intercom/connection"]["delete"]["responses"]
    callback = paths["/oauth/intercom/callback"]["get"]["responses"]
    assert {"200", "302", "400", "409", "502"} <= set(callback)
    assert "text/html" in callback["200"]["content"]


def test_get_openapi_json_serves_it_without_auth(call, document):
    response = call("AccountApiFunction", api_event("GET", "/openapi.json"))
    assert response["statusCode"] == 200
    assert response["multiValueHeaders"]["Content-Type"] == ["application/json"]
    assert body_of(response) == json.loads(json.dumps(document))
