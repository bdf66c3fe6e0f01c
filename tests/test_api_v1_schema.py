"""The REST API v1's OpenAPI document (inbox/web/api_v1.py) against the official 3.1 meta-schema and the
app's routes, and a property-based run of the live app from that document (Schemathesis over WSGI).

The property-based run is marked `slow`: it belongs to the full tier, not the fast one. Its size is
bounded by `MAX_EXAMPLES` per operation; it asserts no server error and no answer outside the document
(status, content type, body schema).
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from inbox.web.api_v1 import OPERATIONS, openapi_document
from tests.test_api_v1 import ADMIN, world  # noqa: F401

MAX_EXAMPLES = 8
PREFIX = "/api/v1"


def test_document_is_valid_openapi_3_1(world):  # noqa: F811
    document = world.app.test_client().get(f"{PREFIX}/openapi.json").get_json()
    assert document == openapi_document() and document["openapi"] == "3.1.0"
    # Schemathesis ships the official OpenAPI 3.1 meta-schema; validate() raises on any violation.
    schemathesis.openapi.from_dict(document).validate()
    assert document["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            problem = operation["responses"]["default"]["content"]["application/problem+json"]["schema"]
            assert problem == {"$ref": "#/components/schemas/Problem"}, f"{method} {path}"


def _flask_path(rule: str) -> str:
    return rule.removeprefix(PREFIX).replace("<int:", "{").replace(">", "}")


def test_every_v1_route_is_documented_and_nothing_else(world):  # noqa: F811
    routes = set()
    for rule in world.app.url_map.iter_rules():
        if rule.rule.startswith(PREFIX + "/"):
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                routes.add((_flask_path(rule.rule), method.lower()))
    assert routes == set(OPERATIONS)
    documented = {(path, method) for path, methods in openapi_document()["paths"].items() for method in methods}
    assert documented == routes


@pytest.mark.slow
def test_the_live_app_keeps_to_its_document(world):  # noqa: F811
    """Every operation, MAX_EXAMPLES generated requests each, as a token with every scope (admin: the
    webhook subscriptions need it): no 5xx, and every answer's status, content type and body as the
    document says."""
    schema = schemathesis.openapi.from_wsgi(f"{PREFIX}/openapi.json", world.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    # Schemathesis leaves out the document's own path; every other operation is run.
    assert {o.label for o in operations} == {f"{m.upper()} {p}" for p, m in OPERATIONS if p != "/openapi.json"}
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def keeps_to_the_document(case):
            case.call_and_validate(headers={"Authorization": f"Bearer {ADMIN}"}, checks=checks)

        keeps_to_the_document()
