"""The JSON API for CRMs: create or update customers, read one back.

    POST /api/customers          body: {"crm_ref", "name", "language", "owner", "emails": [...],
                                        "phones": [...], "handles": {"telegram": "...", ...},
                                        "attributes": {...}}
    GET  /api/customers/<id>

Authentication is a bearer token (`Authorization: Bearer <token>`): one made by an admin at
`/admin/tokens`, or one of the config key `api_tokens` (a list, each normally `{"$env": NAME}`;
these have every scope). Without a valid token the API answers 401; a token without the route's
scope (`customers:read` for GET, `customers:write` for POST) gets 403 naming it (inbox/web/tokens.py).
The session cookie counts for nothing here, which is why these routes can be exempt from CSRF: a
browser's cross-site request carries a cookie, never our bearer token.

Matching and conflicts are those of the CSV import (`inbox.customer_import.apply_record`):
by CRM reference, else by email address or account; a body that points at two different
customers is a 409 conflict and nothing is merged. Errors are JSON: `{"ok": false, "error": ...}`.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from inbox.customer_import import apply_record, record_from_json
from inbox.store import NotFound, now_iso
from inbox.web import get_store, mainland
from inbox.web.security import csrf, limiter
from inbox.web.tokens import bearer_caller, json_error, scope_refusal

bp = Blueprint("api", __name__, url_prefix="/api")

#: Largest request body accepted.
MAX_BODY_BYTES = 256 * 1024
#: Requests per minute per client address.
API_LIMIT = "600 per minute"

_STATUS = {"create": 201, "update": 200, "unchanged": 200, "conflict": 409, "invalid": 400}


#: The scope each route needs (inbox.web.tokens.SCOPES); a path under /api that is no route needs a token only.
ROUTE_SCOPES = {"api.upsert_customer": "customers:write", "api.get_customer": "customers:read"}


def _error(status: int, message: str) -> tuple[Response, int]:
    return json_error(status, message), status


@bp.before_request
def _authenticate():
    scope = ROUTE_SCOPES.get(request.endpoint or "")
    if scope is None:
        return None if bearer_caller() is not None else json_error(401, "a valid bearer token is required")
    return scope_refusal(scope)


def _customer_json(customer_id: int) -> dict[str, Any]:
    store = get_store()
    record = store.customer_record(customer_id)
    return {
        "id": record["id"],
        "name": record["display_name"],
        "language": record["locale"],
        "crm_ref": record["crm_ref"],
        "owner_agent_id": record["owner_agent_id"],
        "identities": [{"kind": i["kind"], "value": i["value"]} for i in store.identities_of(customer_id)],
        "phones": [c["value"] for c in store.claims_of(customer_id) if c["kind"] == "phone"],
        "attributes": store.customer_attributes(customer_id),
        "created_at": record["created_at"],
        "updated_at": record["updated_at"],
    }


@bp.post("/customers")
@limiter.limit(API_LIMIT)
def upsert_customer():
    if (request.content_length or 0) > MAX_BODY_BYTES:
        return _error(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    raw = request.get_data(cache=False)[:MAX_BODY_BYTES + 1]
    if len(raw) > MAX_BODY_BYTES:
        return _error(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        data = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        return _error(400, "the body is not valid JSON")
    try:
        record = record_from_json(data)
    except ValueError as exc:
        return _error(400, str(exc))
    store = get_store()
    now = now_iso()
    with store.write():
        outcome = apply_record(store, record, now=now, region=mainland().config.extra.get("default_phone_region"),
                               source="api")
        if outcome.action in ("create", "update"):
            store.audit(now, bearer_caller().actor, f"customer_api_{outcome.action}", "customer",
                        outcome.customer_id, changes=len(outcome.changes))
    if outcome.action in ("conflict", "invalid"):
        body, status = _error(_STATUS[outcome.action], outcome.detail)
        if outcome.customer_id is not None:
            body.set_data(json.dumps({"ok": False, "error": outcome.detail, "id": outcome.customer_id}))
        return body, status
    return jsonify(ok=True, action=outcome.action, id=outcome.customer_id,
                   customer=_customer_json(outcome.customer_id)), _STATUS[outcome.action]


@bp.get("/customers/<int:customer_id>")
@limiter.limit(API_LIMIT)
def get_customer(customer_id: int):
    store = get_store()
    live = store.live_customer_id(customer_id)
    if live is None:
        return _error(404, f"no customer {customer_id}")
    try:
        customer = _customer_json(live)
    except NotFound:
        return _error(404, f"no customer {customer_id}")
    return jsonify(ok=True, id=live, merged=live != customer_id, customer=customer)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    return _error(exc.code or 500, exc.description or exc.name)


def init_app(app: Flask) -> None:
    csrf.exempt(bp)
