"""REST API v1 for integrators (issue 15): conversations, messages, customers, agents, teams and webhook
subscriptions.

Every route is under `/api/v1` and described in `GET /api/v1/openapi.json`, an OpenAPI 3.1 document
built from `OPERATIONS` and `SCHEMAS` below: the one source of truth (a test checks that every v1
route of the app is in it and every path in it is a route).

Authentication is a bearer token (inbox/web/tokens.py): GET needs the scope `read`, writes need
`write`, and the webhook subscriptions (`ADMIN_ENDPOINTS`, checked and audited by inbox/webhooks_out.py
as /admin/webhooks does) need `admin`. A token acts for the whole installation, like an admin: it sees every team's
conversations. (Tokens belong to no agent and no team; the agent who made a token may leave, and an
integration that syncs a CRM needs every conversation. Keeping tokens out of the team rule keeps
that rule in one place, inbox/access.py.) Replies and notes written through the API carry no agent:
their author is "API: <token name>" and the audit log names the token (`token:ID`).

Errors are RFC 9457 problem details (`application/problem+json`) with `type`, `title`, `status`,
`detail`, and for bad input `errors: [{"field", "message"}]`; the API speaks English whatever the
caller's language. Writes accept an `Idempotency-Key` header: the same key, token and request replay
the stored answer (header `Idempotency-Replayed: true`) without acting again; the same key with a
different request is a 422; the key is claimed before the write acts, so a second request with it
while the first is in flight is a 409. Requests are rate-limited per token. Everything under
`/api/v1` answers with problems, also a path no route serves (404) or a method it does not take
(405, `Allow`): those are refused while routing, so the app's handler answers them
(`_answer_unrouted_paths_with_problems`).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import logging
import uuid
from typing import Any

from flask import Blueprint, Flask, Response, g, request
from flask_babel import force_locale
from werkzeug.exceptions import HTTPException

from inbox import access, clock, sendability, webhooks_out
from inbox import answers as answer_library
from inbox.lifecycle import SETTABLE, TransitionRefused, transition
from inbox.outbox import ReplyRefused, queue_reply
from inbox.store import NotFound as StoreNotFound
from inbox.store.api import IN_PROGRESS
from inbox.store.base import iso
from inbox.store.queue import (
    ASSIGNEE_NONE,
    MAX_LABEL_NAME,
    NO_TEAM,
    PRIORITIES,
    STATUS_GROUPS,
    QueueQuery,
    SearchQueryError,
    fts_query,
)
from inbox.web import get_store, mainland
from inbox.web.security import csrf, limiter
from inbox.web.tokens import ApiCaller, bearer_caller

log = logging.getLogger(__name__)

bp = Blueprint("api_v1", __name__, url_prefix="/api/v1")

#: Requests per minute per token (per client address for requests without a valid token).
API_V1_LIMIT = "600 per minute"
MAX_BODY_BYTES = 256 * 1024
MAX_TEXT_CHARS = 100_000
DEFAULT_LIMIT, MAX_LIMIT = 25, 100
MAX_IDEMPOTENCY_KEY = 255
MAX_LABELS = 50
PROBLEM_TYPE = "https://mainland.invalid/problems/"
PROBLEM_MIME = "application/problem+json"
#: Routes anyone may read without a token.
PUBLIC_ENDPOINTS = frozenset({"api_v1.openapi"})
#: Routes only a token with the scope `admin` may use, for every method: webhook subscriptions send
#: customers' messages to any address, so they are an admin's, as at /admin/webhooks.
ADMIN_ENDPOINTS = frozenset({"api_v1.webhooks", "api_v1.webhook", "api_v1.webhook_deliveries",
                             "api_v1.replay_webhook_delivery", "api_v1.send_webhook_test"})
#: Statuses a reply can leave a conversation in (the composer's "Send + status").
SEND_STATUSES = ("open", "pending", "resolved")


# Problems -----------------------------------------------------------------------------------

class Problem(Exception):
    """An RFC 9457 problem to answer with; raised anywhere in a view."""

    def __init__(self, status: int, title: str, detail: str, *, kind: str | None = None,
                 errors: list[dict[str, str]] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.errors, self.extra = status, title, detail, errors, extra
        self.kind = kind or title.lower().replace(" ", "-")

    def response(self) -> Response:
        body: dict[str, Any] = {"type": PROBLEM_TYPE + self.kind, "title": self.title, "status": self.status,
                                "detail": self.detail, **self.extra}
        if self.errors is not None:
            body["errors"] = self.errors
        response = Response(json.dumps(body), status=self.status, mimetype=PROBLEM_MIME)
        if self.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="mainland"'
        return response


def invalid(errors: list[dict[str, str]], status: int = 422) -> Problem:
    title = "Invalid request" if status == 422 else "Bad request"
    return Problem(status, title, "; ".join(f"{e['field']}: {e['message']}" for e in errors), errors=errors,
                   kind="invalid-request")


def not_found(what: str, ident: int) -> Problem:
    return Problem(404, "Not found", f"there is no {what} {ident}")


@bp.errorhandler(Problem)
def _problem(exc: Problem):
    return exc.response()


@bp.errorhandler(HTTPException)
def _http_problem(exc: HTTPException):
    code = exc.code or 500
    response = Problem(code, exc.name, exc.description or exc.name).response()
    if code == 405 and getattr(exc, "valid_methods", None):
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    if code == 429:
        response.headers["Retry-After"] = "60"
    return response


def _is_api_path() -> bool:
    return request.path == bp.url_prefix or request.path.startswith(f"{bp.url_prefix}/")


def _answer_unrouted_paths_with_problems(app: Flask) -> None:
    """A path under /api/v1 that no route serves (404) or a method none of its routes takes (405) is
    refused while routing, before any blueprint's handler can see it: the app's handler answers. This
    one answers those with a problem and hands every other path to the handler registered before it
    (the web pages' error page, inbox/web/security.py)."""
    previous = app.error_handler_spec[None][None].get(HTTPException)

    def handle(exc: HTTPException):
        if _is_api_path() and exc.code is not None and exc.code >= 400:
            return _http_problem(exc)
        return previous(exc) if previous is not None else exc

    app.register_error_handler(HTTPException, handle)


@bp.errorhandler(Exception)
def _unexpected(exc: Exception):
    # Never a bare 500 page: the fault is logged and the caller gets a problem without internals.
    log.exception("REST API v1: %s %s failed", request.method, request.path)
    return Problem(500, "Internal error", "the request could not be completed; it is logged").response()


# Authentication, limits, idempotency ------------------------------------------------------------

def caller() -> ApiCaller:
    found = bearer_caller()
    assert found is not None  # _authenticate ran first  # noqa: S101
    return found


def _rate_key() -> str:
    found = bearer_caller()
    return found.actor if found is not None else f"ip:{request.remote_addr}"


def _options() -> Response:
    """OPTIONS: the methods the path takes, for anyone (the OpenAPI document says as much); nothing runs."""
    response = Response(status=204)
    response.headers["Allow"] = ", ".join(sorted(request.url_rule.methods)) if request.url_rule else "GET"
    return response


@bp.before_request
def _authenticate():
    if request.method == "OPTIONS":
        return _options()
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    found = bearer_caller()
    if found is None:
        raise Problem(401, "Unauthorized", "a valid bearer token is required")
    scope = ("admin" if request.endpoint in ADMIN_ENDPOINTS
             else "read" if request.method in ("GET", "HEAD", "OPTIONS") else "write")
    if scope not in found.scopes and "admin" not in found.scopes:
        raise Problem(403, "Forbidden", f"this token lacks the scope {scope}", kind="missing-scope",
                      missing_scope=scope)
    return _replay()


def _request_hash() -> str:
    digest = hashlib.sha256(f"{request.method} {request.path}\n".encode())
    digest.update(request.get_data(cache=True)[:MAX_BODY_BYTES + 1])
    return digest.hexdigest()


def _replay() -> Response | None:
    """Claim the request's Idempotency-Key before it acts (None: claimed, go on); the stored answer of a
    repeated write; a 409 while the first request with the key is still in progress; a 422 for a key
    reused for another request."""
    key = request.headers.get("Idempotency-Key")
    if request.method not in ("POST", "PATCH") or key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY:
        raise invalid([{"field": "Idempotency-Key", "message": f"1 to {MAX_IDEMPOTENCY_KEY} characters"}], 400)
    what, body_hash = f"{request.method} {request.path}", _request_hash()
    kept = get_store().api_idempotency.claim(caller().actor, key, request=what, body_hash=body_hash, now=clock.now())
    if kept is None:
        g.idempotency = (key, body_hash)
        return None
    if kept.body_hash != body_hash or kept.request != what:
        raise Problem(422, "Idempotency key reused", "this Idempotency-Key was used for a different request",
                      kind="idempotency-key-reused")
    if kept.status == IN_PROGRESS:
        # As Stripe does: the first request may still succeed or fail; the caller retries after it.
        raise Problem(409, "Request in progress", "a request with this Idempotency-Key is in progress; "
                      "send it again once that one is answered", kind="idempotency-key-in-progress")
    response = Response(kept.response_body, status=kept.status,
                        mimetype=PROBLEM_MIME if kept.status >= 400 else "application/json")
    response.headers["Idempotency-Replayed"] = "true"
    return response


@bp.after_request
def _keep_answer(response: Response) -> Response:
    claimed = g.pop("idempotency", None)
    if claimed is None:
        return response
    store = get_store()
    if response.status_code < 500 and response.status_code != 429:
        # A view may keep less than it answered (a signing secret is shown once, never stored in clear).
        kept_body = g.pop("kept_body", None) or response.get_data(as_text=True)
        store.api_idempotency.keep(caller().actor, claimed[0], request=f"{request.method} {request.path}",
                                   body_hash=claimed[1], status=response.status_code,
                                   response_body=kept_body, now=clock.now())
    else:
        # Not answered (a fault, the rate limit): the same request may be tried again.
        store.api_idempotency.release(caller().actor, claimed[0])
    return response


def _json_body() -> dict[str, Any]:
    raw = request.get_data(cache=True)
    if len(raw) > MAX_BODY_BYTES:
        raise Problem(413, "Content too large", f"the body is larger than {MAX_BODY_BYTES} bytes")
    if raw and not _is_json_type(request.mimetype):
        raise Problem(415, "Unsupported media type", "send the body as application/json",
                      kind="unsupported-media-type")
    try:
        data = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise invalid([{"field": "body", "message": "not valid JSON"}], 400) from None
    if not isinstance(data, dict):
        raise invalid([{"field": "body", "message": "must be a JSON object"}], 400)
    return data


def _is_json_type(mimetype: str) -> bool:
    return mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, mimetype="application/json")


def _audit(action: str, conversation_id: int, **details: Any) -> None:
    store = get_store()
    with store.write():
        store.audit(iso(clock.now()), caller().actor, action, "conversation", conversation_id, **details)


def _author_name() -> str:
    found = caller()
    if found.token_id is not None:
        row = get_store().api_tokens.get(found.token_id)
        if row is not None:
            return f"API: {row.name}"
    return "API"


# Conversations ----------------------------------------------------------------------------------

def _conversation_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"], "channel": row["channel"], "subject": row["subject"], "status": row["status"],
        "priority": row["priority"], "assignee_id": row["assignee_id"], "team_id": row["team_id"],
        "customer_id": row["customer_id"], "customer_name": row["customer_name"],
        "labels": [label["name"] for label in row.get("labels", ())],
        "public": bool(row["is_public"]), "message_count": row["message_count"],
        "created_at": row["created_at"], "last_message_at": row["last_message_at"],
        "waiting_since": row["waiting_since"],
    }


def _conversation_row(conversation_id: int) -> dict[str, Any]:
    rows = get_store().conversation_rows([conversation_id], agent_id=None) if conversation_id < 2**63 else []
    if not rows:
        raise not_found("conversation", conversation_id)
    return rows[0]


def _encode_cursor(sort_value: str, conversation_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([sort_value, conversation_id]).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, int]:
    try:
        sort_value, conversation_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if isinstance(sort_value, str) and isinstance(conversation_id, int) and 0 < conversation_id < 2**63:
            return sort_value, conversation_id
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        pass
    raise invalid([{"field": "cursor", "message": "not a cursor of this API"}], 400)


def _limit() -> int:
    raw = request.args.get("limit", "")
    if not raw:
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise invalid([{"field": "limit", "message": f"a whole number from 1 to {MAX_LIMIT}"}], 400)
    return int(raw)


def _list_query() -> QueueQuery:
    """The queue's filters from the query string (the queue's own allow-lists, inbox/web/queue.py)."""
    from inbox.web.queue import InvalidFilter, parse_query

    args = {k: request.args.get(k, "") for k in ("status", "channel", "team", "assignee", "label", "priority")}
    if args["assignee"].strip() == "mine":
        raise invalid([{"field": "assignee", "message": "a token is nobody's: use an agent id or unassigned"}], 400)
    try:
        return parse_query(args)
    except InvalidFilter as exc:
        raise invalid([{"field": str(exc), "message": "not a value this filter allows"}], 400) from None


def _searched_rows(q: str, query: QueueQuery, after: tuple[str, int] | None, limit: int) -> list[dict[str, Any]]:
    """With `q`: the search's matches (newest first, at most the search's candidate bound), filtered."""
    try:
        match = fts_query(q)
    except SearchQueryError:
        raise invalid([{"field": "q", "message": "the search text is too long"}], 400) from None
    if match is None:
        return []
    store = get_store()
    ids = [group.conversation["id"] for group in store.search(match, team_ids=None, agent_id=None).groups]
    rows = [r for r in store.conversation_rows(ids, agent_id=None) if _matches(r, query)]
    rows.sort(key=lambda r: (r["last_message_at"], r["id"]), reverse=True)
    if after is not None:
        rows = [r for r in rows if (r["last_message_at"], r["id"]) < after]
    for row in rows:
        row["sort_value"] = row["last_message_at"]
    return rows[:limit]


def _matches(row: dict[str, Any], query: QueueQuery) -> bool:
    label_ids = {label["id"] for label in row.get("labels", ())}
    return (row["status"] in STATUS_GROUPS[query.status]
            and (query.channel is None or row["channel"] == query.channel)
            and (query.team is None or row["team_id"] == (None if query.team == NO_TEAM else query.team))
            and (query.assignee is None
                 or row["assignee_id"] == (None if query.assignee == ASSIGNEE_NONE else query.assignee))
            and (query.label is None or query.label in label_ids)
            and (query.priority is None or row["priority"] == query.priority))


@bp.get("/conversations")
@limiter.limit(API_V1_LIMIT, key_func=_rate_key)
def list_conversations():
    query = _list_query()
    limit = _limit()
    cursor = request.args.get("cursor") or None
    after = _decode_cursor(cursor) if cursor else None
    q = (request.args.get("q") or "").strip()
    if q:
        rows = _searched_rows(q, query, after, limit + 1)
    else:
        rows = get_store().queue_page(query, team_ids=None, agent_id=None, after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = _encode_cursor(rows[-1]["sort_value"], rows[-1]["id"]) if more and rows else None
    return _json({"data": [_conversation_json(r) for r in rows], "next_cursor": next_cursor})


# One rule per path for all its methods: with a rule per method, Werkzeug answers a too-large id with
# 405 for the second method instead of 404 (tests/test_head_options.py).
@bp.route("/conversations/<int:conversation_id>", methods=["GET", "PATCH"])
@limiter.limit(API_V1_LIMIT, key_func=_rate_key)
def conversation(conversation_id: int):
    return update_conversation(conversation_id) if request.method == "PATCH" else get_conversation(conversation_id)


def get_conversation(conversation_id: int):
    return _json(_conversation_json(_conversation_row(conversation_id)))


def _check_patch(data: dict[str, Any], conversation: dict[str, Any]) -> dict[str, Any]:
    """The PATCH body's changes, checked; a 422 listing every bad field."""
    store = get_store()
    allowed = {"status", "snooze_until", "assignee_id", "team_id", "labels", "priority"}
    errors = [{"field": k, "message": "not a field of a conversation that can be changed"}
              for k in sorted(set(data) - allowed)]
    changes: dict[str, Any] = {}
    if "status" in data:
        if data["status"] not in SETTABLE:
            errors.append({"field": "status", "message": f"one of {', '.join(SETTABLE)}"})
        else:
            changes["status"] = data["status"]
    if "snooze_until" in data:
        try:
            changes["snooze_until"] = _moment(data["snooze_until"]) if data["snooze_until"] is not None else None
        except (TypeError, ValueError):
            errors.append({"field": "snooze_until", "message": "a date and time (ISO 8601)"})
    for field, exists in (("assignee_id", lambda i: (a := store.agent(i)) is not None and a["active"]),
                          ("team_id", lambda i: store.team(i) is not None)):
        if field not in data:
            continue
        value = data[field]
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**63
                                  or not exists(value)):
            errors.append({"field": field, "message": "no such " + field.removesuffix("_id") + " (or null)"})
        else:
            changes[field] = value
    if "priority" in data:
        if data["priority"] not in PRIORITIES or isinstance(data["priority"], bool):
            errors.append({"field": "priority", "message": "0 (none) to 4 (urgent)"})
        else:
            changes["priority"] = data["priority"]
    if "labels" in data:
        labels = data["labels"]
        if (not isinstance(labels, list) or len(labels) > MAX_LABELS
                or not all(isinstance(n, str) and 0 < len(" ".join(n.split())) <= MAX_LABEL_NAME for n in labels)):
            errors.append({"field": "labels", "message": f"a list of label names of 1 to {MAX_LABEL_NAME} characters"})
        else:
            changes["labels"] = sorted({" ".join(n.split()) for n in labels})
    if "assignee_id" in changes and changes["assignee_id"] is not None and not errors:
        team_id = changes.get("team_id", conversation["team_id"])
        if not access.can_see_conversation(store, store.agent(changes["assignee_id"]),
                                           {**conversation, "team_id": team_id}):
            errors.append({"field": "assignee_id", "message": "this agent is not in the conversation's team"})
    if errors:
        raise invalid(errors)
    return changes


def _moment(value: Any) -> dt.datetime:
    """An ISO 8601 date and time; without an offset it is taken as UTC."""
    moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else None
    if moment is None:
        raise ValueError("not a date and time")
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _apply_status(conversation: dict[str, Any], target: str, snooze_until: dt.datetime | None,
                  now: dt.datetime) -> None:
    """The lifecycle rules and audit of the web app's status buttons (conversations.apply_status)."""
    try:
        change = transition(conversation["status"], target, now=now, snooze_until=snooze_until,
                            merged=bool(conversation.get("merged_into")))
    except TransitionRefused as exc:
        raise Problem(409, "Status change refused", str(exc), kind="transition-refused", code=exc.code) from None
    if (change.status, change.snoozed_until) == (conversation["status"], conversation.get("snoozed_until")):
        return
    get_store().set_conversation_status(conversation["id"], change.status, change.snoozed_until, iso(now))
    _audit("status", conversation["id"], before=conversation["status"], after=change.status,
           snoozed_until=change.snoozed_until)


def _apply_assignment(conversation: dict[str, Any], changes: dict[str, Any], now: dt.datetime) -> None:
    store = get_store()
    assignee_id = changes.get("assignee_id", conversation["assignee_id"])
    team_id = changes.get("team_id", conversation["team_id"])
    if (assignee_id, team_id) == (conversation["assignee_id"], conversation["team_id"]):
        return
    store.assign_conversation(conversation["id"], assignee_id=assignee_id, team_id=team_id, now=iso(now))
    if assignee_id and assignee_id != conversation["assignee_id"]:
        store.notifications.add([assignee_id], kind="assigned", conversation_id=conversation["id"], message_id=None,
                                actor_id=None, now=iso(now))
    _audit("assign", conversation["id"], assignee_before=conversation["assignee_id"], assignee=assignee_id,
           team_before=conversation["team_id"], team=team_id)


def _apply_labels(conversation_id: int, names: list[str]) -> None:
    store = get_store()
    current = {label["name"].lower(): label["id"] for label in store.labels_of([conversation_id]).get(conversation_id, [])}
    wanted = {name.lower(): name for name in names}
    for key, name in wanted.items():
        if key not in current:
            store.bulk_update([conversation_id], action="label_add", value=store.ensure_label(name),
                              actor=caller().actor)
    for key, label_id in current.items():
        if key not in wanted:
            store.bulk_update([conversation_id], action="label_remove", value=label_id, actor=caller().actor)


def update_conversation(conversation_id: int):
    store = get_store()
    _conversation_row(conversation_id)
    conversation = store.conversation(conversation_id)
    changes = _check_patch(_json_body(), conversation)
    if conversation.get("merged_into") and changes:
        raise Problem(409, "Conversation merged", "this conversation was merged into another one",
                      kind="transition-refused", code="merged")
    now = clock.now()
    if "status" in changes:
        _apply_status(conversation, changes["status"], changes.get("snooze_until"), now)
    elif changes.get("snooze_until") is not None:
        raise invalid([{"field": "snooze_until", "message": "only with status snoozed"}])
    if "assignee_id" in changes or "team_id" in changes:
        _apply_assignment(conversation, changes, now)
    if "priority" in changes and changes["priority"] != conversation["priority"]:
        store.set_conversation_priority(conversation_id, changes["priority"], iso(now))
        _audit("priority", conversation_id, before=conversation["priority"], after=changes["priority"])
    if "labels" in changes:
        _apply_labels(conversation_id, changes["labels"])
    return _json(_conversation_json(_conversation_row(conversation_id)))


# Messages ---------------------------------------------------------------------------------------

def _message_json(m: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": m["id"], "conversation_id": m["conversation_id"], "channel": m["channel"],
        "direction": m["direction"], "author_name": m["author_name"], "author_handle": m["author_handle"],
        "subject": m["subject"], "text": None if m.get("deleted_at") else m["text"],
        "received_at": m["received_at"], "sent_at": m["sent_at"], "delivery_status": m["delivery_status"],
        "outbox_state": m.get("outbox_state"),
    }


@bp.route("/conversations/<int:conversation_id>/messages", methods=["GET", "POST"])
@limiter.limit(API_V1_LIMIT, key_func=_rate_key)
def messages(conversation_id: int):
    return create_message(conversation_id) if request.method == "POST" else list_messages(conversation_id)


def list_messages(conversation_id: int):
    _conversation_row(conversation_id)
    return _json({"data": [_message_json(m) for m in get_store().thread_messages(conversation_id)]})


def _check_message(data: dict[str, Any]) -> tuple[str, str]:
    errors = [{"field": k, "message": "not a field of a message"} for k in sorted(set(data) - {"kind", "text"})]
    kind, text = data.get("kind"), data.get("text")
    if kind not in ("reply", "note"):
        errors.append({"field": "kind", "message": "reply or note"})
    if not isinstance(text, str) or not text.strip():
        errors.append({"field": "text", "message": "the text to send, not empty"})
    elif len(text) > MAX_TEXT_CHARS:
        errors.append({"field": "text", "message": f"at most {MAX_TEXT_CHARS} characters"})
    elif answer_library.VARIABLE.search(text):
        errors.append({"field": "text", "message": f"fill in {answer_library.VARIABLE.search(text).group(0)} first"})
    if errors:
        raise invalid(errors)
    return kind, text.replace("\r\n", "\n")


def _send_reply(conversation: dict[str, Any], text: str) -> dict[str, Any]:
    """A reply as the composer sends it: sendability decides, the outbox queues, the team's send status."""
    store = get_store()
    now = clock.now()
    decision = sendability.decide(mainland(), store, conversation, kind=sendability.AGENT_REPLY, text=text,
                                  answering=None, outside_window=False, override_guard=False, now=now)
    if not decision.allowed:
        raise Problem(422, "Reply refused", str(decision.reason), kind="reply-refused", code=decision.code)
    then_status = store.team_default_send_status(conversation.get("team_id"))
    try:
        with store.write():
            outbox_id = queue_reply(mainland(), store, conversation["id"], text,
                                    agent={"id": None, "name": _author_name()}, target=decision.target, now=now)
            if then_status in SEND_STATUSES:
                _apply_status(store.conversation(conversation["id"]), then_status, None, now)
    except ReplyRefused:
        raise Problem(422, "Reply refused", "there is no message from the customer to answer",
                      kind="reply-refused") from None
    message = next((m for m in reversed(store.thread_messages(conversation["id"])) if m.get("outbox_id") == outbox_id),
                   None)
    return {"kind": "reply", "outbox_id": outbox_id, "message": _message_json(message) if message else None,
            "conversation_status": store.conversation(conversation["id"])["status"]}


def _add_note(conversation: dict[str, Any], text: str) -> dict[str, Any]:
    store = get_store()
    message_id = store.add_note(conversation["id"], agent_id=None, author_name=_author_name(), text=text,
                                external_id=f"note:{uuid.uuid4().hex}", now=iso(clock.now()))
    message = next(m for m in store.thread_messages(conversation["id"], after_id=message_id - 1)
                   if m["id"] == message_id)
    return {"kind": "note", "outbox_id": None, "message": _message_json(message),
            "conversation_status": conversation["status"]}


def create_message(conversation_id: int):
    _conversation_row(conversation_id)
    conversation = get_store().conversation(conversation_id)
    kind, text = _check_message(_json_body())
    if conversation.get("merged_into"):
        raise Problem(409, "Conversation merged", "this conversation was merged into another one",
                      kind="transition-refused", code="merged")
    result = _send_reply(conversation, text) if kind == "reply" else _add_note(conversation, text)
    return _json(result, 201)


# Customers, agents, teams -----------------------------------------------------------------------

@bp.get("/customers")
@limiter.limit(API_V1_LIMIT, key_func=_rate_key)
def list_customers():
    from inbox.web.customers import _search_terms  # the customer page's reading of a search box

    q = " ".join((request.args.get("q") or "").split())
    limit = _limit()
    rows = get_store().search_customers(team_ids=None, limit=limit, **(_search_terms(q) if q else {}))
    return _json({"data": [{"id": r["id"], "name": r["display_name"], "crm_ref": r["crm_ref"],
                            "language": r["locale"], "last_activity": r["last_activity"]} for r in rows]})


@bp.get("/customers/<int:customer_id>")
@limiter.limit(API_V1_LIMIT, key_func=_rate_key)
def get_customer(customer_id: int):
    from inbox.web.api import _customer_json

    live = get_store().live_customer_id(customer_id) if customer_id < 2**63 else None
    if live is None:
        raise not_found("customer", customer_id)
    try:
        return _json({**_customer_json(live), "merged_from": customer_id if live != customer_id else None})
    except StoreNotFound:
        raise not_found("customer", customer_id) from None


@bp.get("/agents")
@limiter.limit(API_V1_LIMIT, key_func=_rate_key)
def list_agents():
    return _json({"data": [{"id": a["id"], "name": a["name"], "email": a["email"], "role": a["role"],
                            "active": bool(a["active"])} for a in get_store().agents()]})


@bp.get("/teams")
@limiter.limit(API_V1_LIMIT, key_func=_rate_key)
def list_teams():
    return _json({"data": [{"id": t["id"], "name": t["name"], "member_count": t["member_count"]}
                           for t in get_store().teams()]})


# Webhook subscriptions (scope admin; inbox/webhooks_out.py checks, changes and audits, as for /admin/webhooks) --

def _subscription_json(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "url": row["url"], "events": row["events"], "state": row["state"],
            "paused_at": row["paused_at"], "paused_reason": row["paused_reason"],
            "failing_since": row["failing_since"], "created_at": row["created_at"], "updated_at": row["updated_at"]}


def _delivery_json(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "subscription_id": row["subscription_id"], "event_id": row["event_id"],
            "event_type": row["event_type"], "state": row["state"], "attempts": row["attempts"],
            "status_code": row["status_code"], "response_body": row["response_body"],
            "duration_ms": row["duration_ms"], "error": row["last_error"], "replay_of": row["replay_of"],
            "next_at": row["next_at"], "created_at": row["created_at"], "finished_at": row["finished_at"]}


def _subscription(subscription_id: int) -> dict[str, Any]:
    row = get_store().webhook_subscription(subscription_id)
    if row is None:
        raise not_found("webhook subscription", subscription_id)
    return row


def _check_subscription_body(data: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    """The body's url, events and state, checked for shape; a 422 listing every bad field. What the
    values may be (a receiver the SSRF guard allows, known events) is checked by inbox/webhooks_out.py."""
    allowed = {"url", "events"} if creating else {"url", "events", "state"}
    errors = [{"field": k, "message": "not a field of a webhook subscription that can be set"}
              for k in sorted(set(data) - allowed)]
    fields: dict[str, Any] = {}
    for name in ("url", "events") if creating else ():
        if name not in data:
            errors.append({"field": name, "message": "required"})
    if "url" in data:
        if not isinstance(data["url"], str) or not data["url"].strip():
            errors.append({"field": "url", "message": "the receiver's address, a string"})
        else:
            fields["url"] = data["url"].strip()
    if "events" in data:
        events = data["events"]
        if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
            errors.append({"field": "events", "message": "a list of event types"})
        else:
            fields["events"] = list(dict.fromkeys(events))
    if "state" in data:
        if data["state"] not in ("active", "paused"):
            errors.append({"field": "state", "message": "active or paused"})
        else:
            fields["state"] = data["state"]
    if errors:
        raise invalid(errors)
    return fields


def _refused(refused: webhooks_out.SubscriptionRefused) -> Problem:
    return invalid([{"field": field, "message": message} for field, message in refused.errors.items()])


@bp.route("/webhooks", methods=["GET", "POST"])
@limiter.limit(API_V1_LIMIT, key_func=_rate_key)
def webhooks():
    if request.method == "POST":
        return create_webhook()
    return _json({"data": [_subscription_json(r) for r in get_store().webhook_subscriptions()]})


def create_webhook():
    fields = _check_subscription_body(_json_body(), creating=True)
    store = get_store()
    try:
        with force_locale("en"):
            subscription_id, secret = webhooks_out.subscribe(
                store, mainland().secret_box(), url=fields["url"], events=fields["events"],
                allow_hosts=mainland().config.fetch_allow_hosts, actor=caller().actor, created_by=None)
    except webhooks_out.SubscriptionRefused as refused:
        raise _refused(refused) from None
    created = _subscription_json(_subscription(subscription_id))
    # The secret is shown once: a replay of this request answers without it.
    g.kept_body = json.dumps({**created, "secret": None})
    response = _json({**created, "secret": secret}, 201)
    response.headers["Location"] = f"{bp.url_prefix}/webhooks/{subscription_id}"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/webhooks/<int:subscription_id>", methods=["GET", "PATCH", "DELETE"])
@limiter.limit(API_V1_LIMIT, key_func=_rate_key)
def webhook(subscription_id: int):
    subscription = _subscription(subscription_id)
    if request.method == "PATCH":
        return update_webhook(subscription)
    if request.method == "DELETE":
        webhooks_out.remove_subscription(get_store(), subscription, actor=caller().actor)
        return Response(status=204)
    return _json(_subscription_json(subscription))


def update_webhook(subscription: dict[str, Any]):
    fields = _check_subscription_body(_json_body(), creating=False)
    store = get_store()
    try:
        with force_locale("en"):
            webhooks_out.change_subscription(store, subscription, url=fields.get("url"), events=fields.get("events"),
                                              allow_hosts=mainland().config.fetch_allow_hosts, actor=caller().actor)
    except webhooks_out.SubscriptionRefused as refused:
        raise _refused(refused) from None
    if "state" in fields:
        webhooks_out.set_subscription_state(store, subscription, fields["state"], actor=caller().actor)
    return _json(_subscription_json(_subscription(subscription["id"])))


def _encode_id_cursor(row_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([row_id]).encode()).decode().rstrip("=")


def _decode_id_cursor(cursor: str) -> int:
    try:
        [row_id] = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if isinstance(row_id, int) and not isinstance(row_id, bool) and 0 < row_id < 2**63:
            return row_id
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        pass
    raise invalid([{"field": "cursor", "message": "not a cursor of this API"}], 400)


@bp.get("/webhooks/<int:subscription_id>/deliveries")
@limiter.limit(API_V1_LIMIT, key_func=_rate_key)
def webhook_deliveries(subscription_id: int):
    _subscription(subscription_id)
    limit = _limit()
    cursor = request.args.get("cursor") or None
    before = _decode_id_cursor(cursor) if cursor else None
    rows = get_store().webhook_deliveries(subscription_id, before=before, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return _json({"data": [_delivery_json(r) for r in rows],
                  "next_cursor": _encode_id_cursor(rows[-1]["id"]) if more and rows else None})


@bp.post("/webhooks/<int:subscription_id>/deliveries/<int:delivery_id>/replay")
@limiter.limit(API_V1_LIMIT, key_func=_rate_key)
def replay_webhook_delivery(subscription_id: int, delivery_id: int):
    replayed = webhooks_out.replay(get_store(), _subscription(subscription_id), delivery_id, actor=caller().actor)
    if replayed is None:
        raise not_found("delivery of this subscription", delivery_id)
    return _json(_delivery_json(replayed), 201)


@bp.post("/webhooks/<int:subscription_id>/test")
@limiter.limit(API_V1_LIMIT, key_func=_rate_key)
def send_webhook_test(subscription_id: int):
    store = get_store()
    delivery_id = webhooks_out.send_test(store, _subscription(subscription_id), actor=caller().actor)
    return _json(_delivery_json(store.webhook_log_entry(delivery_id)), 201)


@bp.get("/openapi.json")
def openapi():
    return _json(openapi_document())


# The OpenAPI document: the one description of every route above ---------------------------------

def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_NULLABLE_STR = {"type": ["string", "null"]}
_NULLABLE_INT = {"type": ["integer", "null"]}
SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object", "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
            "detail": {"type": "string"}, "missing_scope": {"type": "string"}, "code": {"type": "string"},
            "errors": {"type": "array", "items": {"type": "object", "required": ["field", "message"],
                                                  "properties": {"field": {"type": "string"},
                                                                 "message": {"type": "string"}}}},
        },
    },
    "Conversation": {
        "type": "object",
        "required": ["id", "channel", "status", "priority", "assignee_id", "team_id", "customer_id", "labels",
                     "last_message_at"],
        "properties": {
            "id": {"type": "integer"}, "channel": {"type": "string"}, "subject": _NULLABLE_STR,
            "status": {"type": "string", "enum": list(STATUS_GROUPS["all"]) + ["spam"]},
            "priority": {"type": "integer", "enum": list(PRIORITIES)},
            "assignee_id": _NULLABLE_INT, "team_id": _NULLABLE_INT, "customer_id": {"type": "integer"},
            "customer_name": _NULLABLE_STR, "labels": {"type": "array", "items": {"type": "string"}},
            "public": {"type": "boolean"}, "message_count": {"type": "integer"},
            "created_at": {"type": "string"}, "last_message_at": {"type": "string"}, "waiting_since": _NULLABLE_STR,
        },
    },
    "ConversationPage": {
        "type": "object", "required": ["data", "next_cursor"],
        "properties": {"data": {"type": "array", "items": _ref("Conversation")}, "next_cursor": _NULLABLE_STR},
    },
    "ConversationChange": {
        "type": "object", "additionalProperties": False,
        "properties": {
            "status": {"type": "string", "enum": list(SETTABLE)},
            "snooze_until": {"type": ["string", "null"], "format": "date-time"},
            "assignee_id": {"type": ["integer", "null"], "minimum": 1},
            "team_id": {"type": ["integer", "null"], "minimum": 1},
            "labels": {"type": "array", "maxItems": MAX_LABELS,
                       "items": {"type": "string", "minLength": 1, "maxLength": MAX_LABEL_NAME}},
            "priority": {"type": "integer", "enum": list(PRIORITIES)},
        },
    },
    "Message": {
        "type": "object", "required": ["id", "conversation_id", "direction", "text"],
        "properties": {
            "id": {"type": "integer"}, "conversation_id": {"type": "integer"}, "channel": {"type": "string"},
            "direction": {"type": "string", "enum": ["in", "out", "note"]}, "author_name": _NULLABLE_STR,
            "author_handle": _NULLABLE_STR, "subject": _NULLABLE_STR, "text": _NULLABLE_STR,
            "received_at": _NULLABLE_STR, "sent_at": _NULLABLE_STR, "delivery_status": _NULLABLE_STR,
            "outbox_state": _NULLABLE_STR,
        },
    },
    "MessageList": {"type": "object", "required": ["data"],
                    "properties": {"data": {"type": "array", "items": _ref("Message")}}},
    "NewMessage": {
        "type": "object", "required": ["kind", "text"], "additionalProperties": False,
        "properties": {"kind": {"type": "string", "enum": ["reply", "note"]},
                       "text": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT_CHARS}},
    },
    "MessageCreated": {
        "type": "object", "required": ["kind", "outbox_id", "message", "conversation_status"],
        "properties": {"kind": {"type": "string", "enum": ["reply", "note"]}, "outbox_id": _NULLABLE_STR,
                       "message": {"oneOf": [_ref("Message"), {"type": "null"}]},
                       "conversation_status": {"type": "string"}},
    },
    "CustomerSummary": {
        "type": "object", "required": ["id", "name"],
        "properties": {"id": {"type": "integer"}, "name": _NULLABLE_STR, "crm_ref": _NULLABLE_STR,
                       "language": _NULLABLE_STR, "last_activity": _NULLABLE_STR},
    },
    "CustomerList": {"type": "object", "required": ["data"],
                     "properties": {"data": {"type": "array", "items": _ref("CustomerSummary")}}},
    "Customer": {
        "type": "object", "required": ["id", "name", "identities"],
        "properties": {
            "id": {"type": "integer"}, "name": _NULLABLE_STR, "language": _NULLABLE_STR, "crm_ref": _NULLABLE_STR,
            "owner_agent_id": _NULLABLE_INT, "merged_from": _NULLABLE_INT,
            "identities": {"type": "array", "items": {"type": "object", "properties": {
                "kind": {"type": "string"}, "value": {"type": "string"}}}},
            "phones": {"type": "array", "items": {"type": "string"}}, "attributes": {"type": "object"},
            "created_at": _NULLABLE_STR, "updated_at": _NULLABLE_STR,
        },
    },
    "AgentList": {"type": "object", "required": ["data"], "properties": {"data": {"type": "array", "items": {
        "type": "object", "required": ["id", "name", "email", "role", "active"],
        "properties": {"id": {"type": "integer"}, "name": _NULLABLE_STR, "email": {"type": "string"},
                       "role": {"type": "string"}, "active": {"type": "boolean"}}}}}},
    "TeamList": {"type": "object", "required": ["data"], "properties": {"data": {"type": "array", "items": {
        "type": "object", "required": ["id", "name"],
        "properties": {"id": {"type": "integer"}, "name": {"type": "string"},
                       "member_count": {"type": "integer"}}}}}},
    "WebhookSubscription": {
        "type": "object",
        "required": ["id", "url", "events", "state", "paused_at", "paused_reason", "failing_since", "created_at",
                     "updated_at"],
        "properties": {
            "id": {"type": "integer"}, "url": {"type": "string"},
            "events": {"type": "array", "items": {"type": "string", "enum": list(webhooks_out.EVENT_TYPES)}},
            "state": {"type": "string", "enum": ["active", "paused"]}, "paused_at": _NULLABLE_STR,
            "paused_reason": _NULLABLE_STR, "failing_since": _NULLABLE_STR, "created_at": {"type": "string"},
            "updated_at": {"type": "string"},
        },
    },
    "WebhookSubscriptionCreated": {
        "allOf": [_ref("WebhookSubscription"), {
            "type": "object", "required": ["secret"],
            "properties": {"secret": {"type": ["string", "null"],
                                      "description": "the signing secret, shown once (null in a replay)"}}}],
    },
    "WebhookSubscriptionList": {"type": "object", "required": ["data"], "properties": {
        "data": {"type": "array", "items": _ref("WebhookSubscription")}}},
    "NewWebhookSubscription": {
        "type": "object", "required": ["url", "events"], "additionalProperties": False,
        "properties": {
            "url": {"type": "string", "minLength": 1, "maxLength": webhooks_out.MAX_URL_CHARS,
                    "description": "https, a public address (or one in fetch_allow_hosts)"},
            "events": {"type": "array", "minItems": 1,
                       "items": {"type": "string", "enum": list(webhooks_out.EVENT_TYPES)}},
        },
    },
    "WebhookSubscriptionChange": {
        "type": "object", "additionalProperties": False,
        "properties": {
            "url": {"type": "string", "minLength": 1, "maxLength": webhooks_out.MAX_URL_CHARS},
            "events": {"type": "array", "minItems": 1,
                       "items": {"type": "string", "enum": list(webhooks_out.EVENT_TYPES)}},
            "state": {"type": "string", "enum": ["active", "paused"]},
        },
    },
    "WebhookDelivery": {
        "type": "object",
        "required": ["id", "subscription_id", "event_id", "event_type", "state", "attempts", "created_at"],
        "properties": {
            "id": {"type": "integer"}, "subscription_id": {"type": "integer"}, "event_id": {"type": "string"},
            "event_type": {"type": "string"},
            "state": {"type": "string", "enum": ["pending", "sending", "retry_wait", "delivered", "dead"]},
            "attempts": {"type": "integer"}, "status_code": _NULLABLE_INT, "response_body": _NULLABLE_STR,
            "duration_ms": _NULLABLE_INT, "error": _NULLABLE_STR, "replay_of": _NULLABLE_INT,
            "next_at": _NULLABLE_STR, "created_at": {"type": "string"}, "finished_at": _NULLABLE_STR,
        },
    },
    "WebhookDeliveryPage": {
        "type": "object", "required": ["data", "next_cursor"],
        "properties": {"data": {"type": "array", "items": _ref("WebhookDelivery")}, "next_cursor": _NULLABLE_STR},
    },
}


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


def _path_id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1,
                                                                        "maximum": 2**63 - 1}}


_LIMIT = _query("limit", f"rows per page, 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT})",
                {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT})
_IDEMPOTENCY = {"name": "Idempotency-Key", "in": "header", "required": False,
                "description": "repeat a write safely: the same key and body replay the first answer for 24 h",
                "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY}}


def _ok(schema: str, status: str = "200", what: str = "OK") -> dict[str, Any]:
    return {status: {"description": what, "content": {"application/json": {"schema": _ref(schema)}}}}


def _body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(schema)}}}


#: (path, method) -> the operation: summary, parameters, request body, success response.
OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("/conversations", "get"): {
        "summary": "Conversations, newest activity first, with the queue's filters",
        "parameters": [
            _query("status", "a status or group (default active: new and open)", {"type": "string",
                                                                                  "enum": list(STATUS_GROUPS)}),
            _query("channel", "a channel name"), _query("team", "a team id or none"),
            _query("assignee", "an agent id, unassigned or anyone"),
            _query("priority", "0 to 4", {"type": "integer", "enum": list(PRIORITIES)}),
            _query("label", "a label id", {"type": "integer", "minimum": 1}),
            _query("q", "full-text search words"), _query("cursor", "next_cursor of the previous page"), _LIMIT,
        ],
        "responses": _ok("ConversationPage"),
    },
    ("/conversations/{conversation_id}", "get"): {
        "summary": "One conversation", "parameters": [_path_id("conversation_id")],
        "responses": _ok("Conversation"),
    },
    ("/conversations/{conversation_id}", "patch"): {
        "summary": "Change status, assignee, team, labels (the full list) or priority",
        "parameters": [_path_id("conversation_id"), _IDEMPOTENCY], "requestBody": _body("ConversationChange"),
        "responses": _ok("Conversation"),
    },
    ("/conversations/{conversation_id}/messages", "get"): {
        "summary": "The conversation's messages and notes, oldest first", "parameters": [_path_id("conversation_id")],
        "responses": _ok("MessageList"),
    },
    ("/conversations/{conversation_id}/messages", "post"): {
        "summary": "Reply to the customer (through the sendability rules and the outbox) or add a note",
        "parameters": [_path_id("conversation_id"), _IDEMPOTENCY], "requestBody": _body("NewMessage"),
        "responses": _ok("MessageCreated", "201", "Queued (reply) or stored (note)"),
    },
    ("/customers", "get"): {
        "summary": "Customers by email, phone, handle, CRM reference or name",
        "parameters": [_query("q", "what to look for"), _LIMIT], "responses": _ok("CustomerList"),
    },
    ("/customers/{customer_id}", "get"): {
        "summary": "One customer (a merged id answers with the customer it was merged into)",
        "parameters": [_path_id("customer_id")], "responses": _ok("Customer"),
    },
    ("/agents", "get"): {"summary": "Every agent", "parameters": [], "responses": _ok("AgentList")},
    ("/teams", "get"): {"summary": "Every team", "parameters": [], "responses": _ok("TeamList")},
    ("/webhooks", "get"): {
        "summary": "Every webhook subscription (scope admin)", "parameters": [],
        "responses": _ok("WebhookSubscriptionList"),
    },
    ("/webhooks", "post"): {
        "summary": "Subscribe a receiver to events (scope admin); the answer shows the signing secret once",
        "parameters": [_IDEMPOTENCY], "requestBody": _body("NewWebhookSubscription"),
        "responses": _ok("WebhookSubscriptionCreated", "201", "Subscribed"),
    },
    ("/webhooks/{subscription_id}", "get"): {
        "summary": "One webhook subscription (scope admin)", "parameters": [_path_id("subscription_id")],
        "responses": _ok("WebhookSubscription"),
    },
    ("/webhooks/{subscription_id}", "patch"): {
        "summary": "Change the receiver's address or the events, pause or resume (scope admin)",
        "parameters": [_path_id("subscription_id"), _IDEMPOTENCY], "requestBody": _body("WebhookSubscriptionChange"),
        "responses": _ok("WebhookSubscription"),
    },
    ("/webhooks/{subscription_id}", "delete"): {
        "summary": "Remove a subscription with its delivery log (scope admin)",
        "parameters": [_path_id("subscription_id")], "responses": {"204": {"description": "Removed"}},
    },
    ("/webhooks/{subscription_id}/deliveries", "get"): {
        "summary": "The subscription's delivery log, newest first (scope admin)",
        "parameters": [_path_id("subscription_id"), _query("cursor", "next_cursor of the previous page"), _LIMIT],
        "responses": _ok("WebhookDeliveryPage"),
    },
    ("/webhooks/{subscription_id}/deliveries/{delivery_id}/replay", "post"): {
        "summary": "Send a delivery's event again, same id and body, marked as a replay (scope admin)",
        "parameters": [_path_id("subscription_id"), _path_id("delivery_id"), _IDEMPOTENCY],
        "responses": _ok("WebhookDelivery", "201", "Queued"),
    },
    ("/webhooks/{subscription_id}/test", "post"): {
        "summary": "Send the subscription a webhook.test event (scope admin)",
        "parameters": [_path_id("subscription_id"), _IDEMPOTENCY],
        "responses": _ok("WebhookDelivery", "201", "Queued"),
    },
    ("/openapi.json", "get"): {
        "summary": "This document", "parameters": [], "security": [],
        "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {
            "schema": {"type": "object"}}}}},
    },
}


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 description of every v1 route, from OPERATIONS and SCHEMAS."""
    problem = {"description": "A problem (RFC 9457)", "content": {PROBLEM_MIME: {"schema": _ref("Problem")}}}
    paths: dict[str, dict[str, Any]] = {}
    for (path, method), operation in OPERATIONS.items():
        paths.setdefault(path, {})[method] = {
            "operationId": f"{method}_{path.strip('/').replace('/', '_').replace('{', '').replace('}', '')}",
            **operation, "responses": {**operation["responses"], "default": problem},
        }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Mainland REST API", "version": "1.0.0",
                 "description": "Conversations, messages, customers, agents, teams and webhook subscriptions. "
                                "GET needs the scope read, writes need write, webhook subscriptions admin. "
                                "Errors are application/problem+json, in English."},
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {"schemas": SCHEMAS, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


def init_app(app: Flask) -> None:
    csrf.exempt(bp)
    _answer_unrouted_paths_with_problems(app)
