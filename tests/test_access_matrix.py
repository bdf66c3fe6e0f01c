"""Every route × every role: team B's objects asked for by anonymous, team A, team B and an admin (SEC-06).

The table `ROWS` below has at least one row per route of the app. Each row says how to call the
route with team B's objects (ids in the path, the query string or the form body) and what each
role must get: anonymous visitors are sent to sign in (or refused), the agent of team A gets a
404 (or 403 on admin pages) and never sees a trace of team B (no subject, name, address, snippet
or count), the agent of team B and the admin get the page. A request that is refused must also
change nothing of team B's (checked on a snapshot of B's conversations, customers, agent and team).

**A new route without a row fails `test_every_route_has_a_row`.** Add a row naming its endpoint,
the request to make with team B's objects, and the outcome per role. Rows that change things
(`mutates=True`) run each role on a fresh copy of the installation, so the table's order does not
matter.

The installation (tests/test_access.py `build_world`): channels `mail-a` (team A), `mail-b`
(team B) and `mail-x` (no team); plus, here, more of B's objects: a second and merged
conversations, a failed reply, a customer merge and a merge suggestion, a notification and a
saved view of agent B, and an open invitation.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

import pytest

from inbox.mail import parse_email
from inbox.models import FetchResult
from inbox.store.base import iso
from inbox.web.admin import token_hash
from tests.test_access import (
    B_SECRET,
    B_SENDER_NAME,
    B_SUBJECT,
    World,
    build_world,
    copy_world,
    mail_with_attachment,
)
from tests.test_web_auth import csrf_token

ANON, A, LEAD_A, B, ADMIN = "anonymous", "agent_a", "lead_a", "agent_b", "admin"
#: The roles every row is tried as. A row names the outcome for ANON, A, B and ADMIN; the lead of
#: team A gets agent A's unless the row says otherwise (pages for leads: review, routing, answers).
ROLES = (ANON, A, LEAD_A, B, ADMIN)
REQUIRED_ROLES = (ANON, A, B, ADMIN)

#: Text that only team B's objects hold: none of it may reach anyone outside team B.
B_MARKERS = (B_SECRET, B_SUBJECT, B_SENDER_NAME, "bettina@example.net", "invoice is wrong", "Bruno Bravo",
             "bruno@example.net", "Brenda Bravo", "brenda@example.net")
INVITE_TOKEN = "matrix-invitation-token-0123456789abcdefghijklmnop"
RESET_TOKEN = "matrix-password-reset-token-0123456789abcdefghijk"


# Outcomes --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Out:
    """What one role must get: one of `status`; `login` = a redirect to the sign-in page."""

    status: frozenset[int]
    login: bool = False
    no_b: bool = True        # nothing of team B's in the response
    shows_b: bool = False    # positive control: team B's data is there

    def __str__(self) -> str:
        return "sign-in redirect" if self.login else "/".join(map(str, sorted(self.status)))


def ok(*codes: int, shows_b: bool = False) -> Out:
    """Allowed: one of `codes` (default 200); for team B and admins B's data may (or must) show."""
    return Out(frozenset(codes or (200,)), no_b=False, shows_b=shows_b)


def clean(*codes: int) -> Out:
    """Allowed, but not one trace of team B in the answer (lists, search, counts for team A)."""
    return Out(frozenset(codes or (200,)))


LOGIN = Out(frozenset({302}), login=True)
#: Statuses that refuse a request: it must have changed nothing.
REFUSALS = frozenset({400, 401, 403, 404, 405, 410})
HIDDEN = Out(frozenset({404}))
FORBIDDEN = Out(frozenset({403}))
UNAUTHORIZED = Out(frozenset({401}))
SHOWS = ok(200, shows_b=True)
DONE = ok(200, 302, 303)


def team_object(b: Out = SHOWS, admin: Out | None = None, anon: Out = LOGIN) -> dict[str, Out]:
    """A page about one of team B's objects: team A must get 404."""
    return {ANON: anon, A: HIDDEN, B: b, ADMIN: admin or b}


def leads_only(lead: Out, admin: Out | None = None) -> dict[str, Out]:
    """A page for leads, managers and admins: agents get 403; the lead of team A gets `lead`."""
    return {ANON: LOGIN, A: FORBIDDEN, LEAD_A: lead, B: FORBIDDEN, ADMIN: admin or ok()}


def expected(row: Row, role: str) -> Out:
    return row.expect.get(role) or row.expect[A]


def team_list(b: Out = SHOWS, admin: Out | None = None, a: Out | None = None) -> dict[str, Out]:
    """A list, count or search every agent may use: team A's answer holds nothing of team B's."""
    return {ANON: LOGIN, A: a or clean(), B: b, ADMIN: admin or b}


def admin_only(admin: Out | None = None) -> dict[str, Out]:
    return {ANON: LOGIN, A: FORBIDDEN, B: FORBIDDEN, ADMIN: admin or ok()}


def manager_only(admin: Out | None = None) -> dict[str, Out]:
    return {ANON: LOGIN, A: FORBIDDEN, B: FORBIDDEN, ADMIN: admin or ok()}


def everyone(out: Out) -> dict[str, Out]:
    return dict.fromkeys(ROLES, out)


def signed_in(out: Out, anon: Out = LOGIN) -> dict[str, Out]:
    return {ANON: anon, A: out, B: out, ADMIN: out}


@dataclass(frozen=True)
class Row:
    """One request to make as each role. `{name}` in path, query and form values are world ids."""

    endpoint: str
    method: str
    path: str
    expect: dict[str, Out]
    query: dict = field(default_factory=dict)
    form: dict = field(default_factory=dict)
    json: dict | None = None
    mutates: bool = False
    note: str = ""


# The table -------------------------------------------------------------------------------------
# Ids: conv_b (B's conversation, 2 messages: msg_b with attachment att_b, msg_b2), conv_b2 (another
# of the same customer), merge_b (b3 merged into b4), reply_b (a failed reply in conv_b), cust_b,
# bruno_b (another B customer), cust_merge_b, suggestion_b, notification_b, view_b (agent B's),
# team_b, agent_b_id, conv_a, msg_a, cust_a, team_a.

ROWS: list[Row] = [
    # Sign-in, settings, operator and static routes: no team objects, same answer for everyone.
    Row("auth.login", "GET", "/login", {ANON: ok(), A: ok(302), B: ok(302), ADMIN: ok(302)}),
    Row("auth.login", "POST", "/login", everyone(clean(401)),
        form={"email": "bob@example.org", "password": "wrong password"}),
    # Single sign-on (tests/test_oidc.py walks it with a provider); this installation has no `oidc` section.
    Row("oidc.start", "GET", "/login/oidc", everyone(HIDDEN), note="single sign-on is off here"),
    Row("oidc.callback", "GET", "/login/oidc/callback", everyone(HIDDEN), query={"code": "x", "state": "y"},
        note="single sign-on is off here"),
    Row("auth.logout", "POST", "/logout", {ANON: ok(302), A: ok(302), B: ok(302), ADMIN: ok(302)}, mutates=True),
    Row("auth.settings", "GET", "/settings", signed_in(clean())),
    Row("auth.settings", "POST", "/settings", signed_in(clean(302)), form={"action": "language", "locale": "nl"},
        mutates=True),
    Row("introspect.health", "GET", "/-/health", everyone(clean()), note="totals only, no names or subjects"),
    Row("static", "GET", "/static/mainland.css", everyone(clean())),
    Row("health.connectors_json", "GET", "/-/connectors", {ANON: FORBIDDEN, A: FORBIDDEN, B: FORBIDDEN, ADMIN: ok()}),
    Row("health.page", "GET", "/admin/connectors", admin_only()),
    # Satisfaction surveys: the token is the key; an unknown one is a "closed" page for everyone.
    Row("survey.survey", "GET", "/survey/no-such-survey-token", everyone(clean())),
    Row("survey.survey", "POST", "/survey/no-such-survey-token", everyone(clean(410)), form={"score": "5"}),

    # Public channel entry points: mail-b is no web form and takes no webhooks.
    Row("forms.form", "GET", "/forms/mail-b", everyone(HIDDEN)),
    Row("forms.submit", "POST", "/forms/mail-b", everyone(HIDDEN), form={"message": "hi"}),
    Row("forms.embed_script", "GET", "/forms/mail-b/embed.js", everyone(HIDDEN)),
    Row("forms.api_token", "GET", "/api/forms/mail-b", everyone(HIDDEN)),
    Row("forms.api_submit", "POST", "/api/forms/mail-b", everyone(HIDDEN), json={"message": "hi"}),
    Row("forms.api_preflight", "OPTIONS", "/api/forms/mail-b", everyone(clean(200, 204, 404))),
    # The website chat (#18): mail-b is no chat channel; the script is the same for everyone.
    Row("chat.widget_script", "GET", "/chat/widget.js", everyone(clean())),
    Row("chat.widget_config", "GET", "/chat/mail-b/config", everyone(HIDDEN)),
    Row("chat.history", "GET", "/chat/mail-b/messages", everyone(HIDDEN)),
    Row("chat.post_message", "POST", "/chat/mail-b/messages", everyone(HIDDEN),
        json={"client_id": "00000000-0000-4000-8000-000000000000", "text": "hi"}),
    Row("chat.articles", "GET", "/chat/mail-b/articles", everyone(HIDDEN), query={"q": "refund"}),
    Row("chat.preflight", "OPTIONS", "/chat/mail-b/messages", everyone(HIDDEN)),
    Row("chat.preflight_config", "OPTIONS", "/chat/mail-b/config", everyone(HIDDEN)),
    Row("chat.preflight_articles", "OPTIONS", "/chat/mail-b/articles", everyone(HIDDEN)),
    Row("chat.receipts", "POST", "/chat/mail-b/receipts", everyone(HIDDEN), json={"read": [1]}),
    Row("chat.preflight_receipts", "OPTIONS", "/chat/mail-b/receipts", everyone(HIDDEN)),
    Row("chat.typing", "POST", "/chat/mail-b/typing", everyone(HIDDEN), json={"typing": True}),
    Row("chat.preflight_typing", "OPTIONS", "/chat/mail-b/typing", everyone(HIDDEN)),
    Row("chat.leave_email", "POST", "/chat/mail-b/email", everyone(HIDDEN), json={"email": "pat@example.net"}),
    Row("chat.request_signin", "POST", "/chat/mail-b/signin/request", everyone(HIDDEN),
        json={"email": "pat@example.net"}),
    Row("chat.redeem_signin", "POST", "/chat/mail-b/signin", everyone(HIDDEN), json={"token": "x.y"}),
    Row("chat.preflight_email", "OPTIONS", "/chat/mail-b/email", everyone(HIDDEN)),
    Row("chat.preflight_signin_request", "OPTIONS", "/chat/mail-b/signin/request", everyone(HIDDEN)),
    Row("chat.preflight_signin", "OPTIONS", "/chat/mail-b/signin", everyone(HIDDEN)),
    Row("chat.post_file", "POST", "/chat/mail-b/files", everyone(HIDDEN), json={"x": 1}),
    Row("chat.visitor_file", "GET", "/chat/mail-b/files/{att_b}", everyone(HIDDEN)),
    Row("chat.preflight_files", "OPTIONS", "/chat/mail-b/files", everyone(HIDDEN)),
    Row("chat.preflight_file", "OPTIONS", "/chat/mail-b/files/{att_b}", everyone(HIDDEN)),
    Row("webhooks.receive", "POST", "/webhooks/mail-b", everyone(HIDDEN), json={"x": 1}),
    Row("webhooks.challenge", "GET", "/webhooks/mail-b", everyone(HIDDEN)),

    # The queue, search and live updates: filtered in SQL; ids in the query string and form body.
    Row("queue.index", "GET", "/", team_list()),
    Row("queue.index", "GET", "/", team_list(), query={"team": "{team_b}"}),
    Row("queue.index", "GET", "/", team_list(), query={"status": "all", "assignee": "anyone", "sort": "waiting"}),
    Row("queue.search", "GET", "/search", team_list(), query={"q": B_SECRET}),
    Row("queue.search", "GET", "/search", team_list(), query={"q": "bettina"}),
    Row("queue.save_view", "POST", "/views", team_list(DONE, a=clean(302, 303)),
        form={"name": "Team B view", "team": "{team_b}"}, mutates=True),
    Row("queue.delete_view", "POST", "/views/{view_b}/delete", team_object(DONE, admin=HIDDEN), mutates=True,
        note="a saved view is its owner's alone"),
    Row("queue.bulk", "POST", "/bulk", team_list(DONE, a=clean(302, 303)),
        form={"ids": ["{conv_b}"], "op": "status:resolved"}, mutates=True),
    Row("queue.bulk", "POST", "/bulk", team_list(DONE, a=clean(302, 303)),
        form={"ids": ["{conv_b}", "{conv_a}"], "op": "assign:me"}, mutates=True),
    Row("live.events", "GET", "/events", team_list(ok()), query={"once": "1", "since": "0"}),
    Row("live.events", "GET", "/events", team_object(ok()), query={"once": "1", "since": "0",
                                                                   "conversation": "{conv_b}"}),
    Row("live.presence", "POST", "/conversations/{conv_b}/presence", team_object(ok(200, 204)),
        form={"state": "viewing"}, mutates=True),

    # One conversation and what is in it.
    Row("conversations.show", "GET", "/conversations/{conv_b}", team_object()),
    Row("conversations.messages_after", "GET", "/conversations/{conv_b}/messages", team_object(ok()),
        query={"after": "0"}),
    Row("conversations.message_body", "GET", "/messages/{msg_b}/body", team_object()),
    Row("conversations.message_raw", "GET", "/messages/{msg_b}/raw", team_object()),
    Row("conversations.attachment", "GET", "/attachments/{att_b}", team_object()),
    Row("media.inline", "GET", "/attachments/{att_b}/inline", team_object(clean(200, 404))),
    Row("conversations.reply", "POST", "/conversations/{conv_b}/reply", team_object(DONE),
        form={"text": "Thanks, we are looking into it.", "seen_up_to": "{last_b}"}, mutates=True),
    Row("conversations.add_note", "POST", "/conversations/{conv_b}/notes", team_object(DONE),
        form={"text": "Internal note"}, mutates=True),
    # Undo send with an id that is no reply of the caller's: refused (409) for B, hidden for A.
    Row("conversations.undo_send", "POST", "/conversations/{conv_b}/undo-send", team_object(ok(409)),
        form={"outbox_id": "no-such-reply"}, mutates=True),
    Row("conversations.forward", "POST", "/conversations/{conv_b}/forward", team_object(DONE),
        form={"to": "colleague@example.org"}, mutates=True),
    Row("conversations.save_draft", "POST", "/conversations/{conv_b}/draft", team_object(ok()),
        json={"kind": "reply", "text": "A draft"}, mutates=True),
    Row("conversations.change_status", "POST", "/conversations/{conv_b}/status", team_object(DONE),
        form={"status": "resolved"}, mutates=True),
    Row("conversations.assign", "POST", "/conversations/{conv_b}/assign", team_object(DONE),
        form={"assignee": "me"}, mutates=True),
    Row("conversations.set_priority", "POST", "/conversations/{conv_b}/priority", team_object(DONE),
        form={"priority": "2"}, mutates=True),
    Row("conversations.change_labels", "POST", "/conversations/{conv_b}/labels", team_object(DONE),
        form={"add": "urgent"}, mutates=True),
    Row("conversations.merge", "POST", "/conversations/{conv_b2}/merge", team_object(DONE),
        form={"into": "{conv_b}"}, mutates=True),
    # The merge target is an id in the form body: team A's own conversation into B's is a 404.
    Row("conversations.merge", "POST", "/conversations/{conv_a}/merge",
        {ANON: LOGIN, A: HIDDEN, B: HIDDEN, ADMIN: ok(200, 302, 303, 400, 409)},
        form={"into": "{conv_b}"}, mutates=True),
    Row("conversations.undo_merge", "POST", "/merges/{merge_b}/undo", team_object(DONE), mutates=True),
    Row("conversations.split", "POST", "/conversations/{conv_b}/split", team_object(DONE),
        form={"message_id": "{msg_b2}"}, mutates=True),
    # A message id of B's in the form body of team A's own conversation.
    Row("conversations.split", "POST", "/conversations/{conv_a}/split",
        {ANON: LOGIN, A: HIDDEN, B: HIDDEN, ADMIN: HIDDEN}, form={"message_id": "{msg_b2}"}, mutates=True),
    Row("conversations.retry_reply", "POST", "/messages/{reply_b}/retry", team_object(DONE), mutates=True),
    # reply_b was sent, so a team-B agent reaches the route and is told it is not possibly sent (400).
    Row("conversations.confirm_sent", "POST", "/messages/{reply_b}/confirm-sent", team_object(ok(303, 400)), mutates=True),
    Row("conversations.notifications", "GET", "/notifications", team_list(SHOWS, admin=clean())),
    Row("conversations.notifications", "GET", "/notifications", team_list(ok(), admin=clean()),
        query={"unread": "1"}),
    Row("conversations.notification_read", "POST", "/notifications/{notification_b}/read",
        team_list(DONE, admin=clean(200, 302, 303), a=clean(200, 302, 303, 404)), mutates=True,
        note="marks only the caller's own notification"),
    Row("conversations.notifications_read_all", "POST", "/notifications/read-all",
        team_list(DONE, admin=clean(200, 302, 303), a=clean(200, 302, 303)), mutates=True),

    # Customers.
    Row("customers.index", "GET", "/customers", team_list()),
    Row("customers.index", "GET", "/customers", team_list(), query={"q": "bettina"}),
    Row("customers.show", "GET", "/customers/{cust_b}", team_object()),
    Row("customers.add_note", "POST", "/customers/{cust_b}/notes", team_object(DONE),
        form={"text": "Called her back"}, mutates=True),
    Row("customers.edit", "POST", "/customers/{cust_b}/edit", team_object(DONE),
        form={"action": "attribute", "key": "plan", "value": "gold"}, mutates=True),
    Row("customers.merge_with", "POST", "/customers/{cust_b}/merge", team_object(DONE),
        form={"other": "{bruno_b}"}, mutates=True),
    # The other customer is an id in the form body.
    Row("customers.merge_with", "POST", "/customers/{cust_a}/merge",
        {ANON: LOGIN, A: HIDDEN, B: HIDDEN, ADMIN: DONE}, form={"other": "{cust_b}"}, mutates=True),
    Row("customers.undo_merge", "POST", "/customers/merges/{cust_merge_b}/undo", team_object(DONE), mutates=True),
    Row("customers.suggestions", "GET", "/customers/suggestions", team_list()),
    Row("customers.confirm", "POST", "/customers/suggestions/{suggestion_b}/confirm", team_object(DONE),
        mutates=True),
    Row("customers.reject", "POST", "/customers/suggestions/{suggestion_b}/reject", team_object(DONE),
        mutates=True),
    Row("customers.export", "POST", "/customers/{cust_b}/export",
        {ANON: LOGIN, A: Out(frozenset({403, 404})), B: FORBIDDEN, ADMIN: ok()}, mutates=True),
    Row("customers.erase", "POST", "/customers/{cust_b}/erase",
        {ANON: LOGIN, A: Out(frozenset({403, 404})), B: FORBIDDEN, ADMIN: DONE},
        form={"confirm": "{cust_b}"}, mutates=True),
    # Writing first (#12): a new conversation from B's customer's page, to a new address, a template.
    Row("outreach.new_for_customer", "GET", "/customers/{cust_b}/conversations/new", team_object()),
    Row("outreach.new_for_customer", "POST", "/customers/{cust_b}/conversations/new", team_object(ok(400)),
        form={"to": "0|mail-b", "subject": "Hello", "text": "We are writing first."}, mutates=True,
        note="an identity that is not the customer's: refused for B, hidden for A"),
    Row("outreach.new_to_address", "GET", "/conversations/new", signed_in(clean())),
    Row("outreach.new_to_address", "POST", "/conversations/new", signed_in(clean(303)),
        form={"address": "someone.new@example.org", "subject": "Hello", "text": "We are writing first.",
              "channel": "mail-a"}, mutates=True),
    Row("outreach.send_template", "POST", "/conversations/{conv_b}/template", team_object(DONE),
        form={"channel": "mail-b", "template:mail-b": "x|en"}, mutates=True,
        note="mail has no templates: B is told so, A gets 404"),
    # Check-ins (#14): suggestions are filtered like the customer pages (an agent: their own customers);
    # skipping or snoozing one the caller is not shown (here: none of B's is suggested) is a 404.
    Row("checkins.index", "GET", "/customers/check-ins", team_list(ok(), admin=ok())),
    Row("checkins.skip", "POST", "/customers/check-ins/{cust_b}/skip",
        {ANON: LOGIN, A: HIDDEN, B: HIDDEN, ADMIN: HIDDEN}, form={"basis": "rated:1"}, mutates=True,
        note="no suggestion of that basis: nothing to skip"),
    Row("checkins.snooze", "POST", "/customers/check-ins/{cust_b}/snooze",
        {ANON: LOGIN, A: HIDDEN, B: HIDDEN, ADMIN: HIDDEN}, form={"basis": "rated:1", "until": "2030-01-01"},
        mutates=True, note="no suggestion of that basis: nothing to snooze"),
    Row("customers.import_page", "GET", "/admin/customers/import", admin_only()),
    Row("customers.import_page", "POST", "/admin/customers/import", admin_only(ok(200, 302, 400)), mutates=True),

    # The CRM API takes a bearer token only; a session cookie counts for nothing (none configured here).
    Row("api.upsert_customer", "POST", "/api/customers", everyone(UNAUTHORIZED),
        json={"emails": ["bettina@example.net"], "name": "Taken over"}),
    Row("api.get_customer", "GET", "/api/customers/{cust_b}", everyone(UNAUTHORIZED)),
    # REST API v1: bearer tokens only, like the CRM API; a session counts for nothing. The document is open.
    Row("api_v1.list_conversations", "GET", "/api/v1/conversations", everyone(UNAUTHORIZED),
        query={"channel": "mail-b"}),
    Row("api_v1.conversation", "GET", "/api/v1/conversations/{conv_b}", everyone(UNAUTHORIZED)),
    Row("api_v1.conversation", "PATCH", "/api/v1/conversations/{conv_b}", everyone(UNAUTHORIZED),
        json={"status": "resolved"}),
    Row("api_v1.messages", "GET", "/api/v1/conversations/{conv_b}/messages", everyone(UNAUTHORIZED)),
    Row("api_v1.messages", "POST", "/api/v1/conversations/{conv_b}/messages", everyone(UNAUTHORIZED),
        json={"kind": "note", "text": "from outside"}),
    Row("api_v1.list_customers", "GET", "/api/v1/customers", everyone(UNAUTHORIZED), query={"q": "bettina"}),
    Row("api_v1.get_customer", "GET", "/api/v1/customers/{cust_b}", everyone(UNAUTHORIZED)),
    Row("api_v1.list_agents", "GET", "/api/v1/agents", everyone(UNAUTHORIZED)),
    Row("api_v1.list_teams", "GET", "/api/v1/teams", everyone(UNAUTHORIZED)),
    Row("api_v1.openapi", "GET", "/api/v1/openapi.json", everyone(clean(200))),
    Row("api_v1.webhooks", "GET", "/api/v1/webhooks", everyone(UNAUTHORIZED)),
    Row("api_v1.webhooks", "POST", "/api/v1/webhooks", everyone(UNAUTHORIZED),
        json={"url": "https://203.0.114.20/hook", "events": ["message.sent"]}),
    Row("api_v1.webhook", "GET", "/api/v1/webhooks/{webhook}", everyone(UNAUTHORIZED)),
    Row("api_v1.webhook", "PATCH", "/api/v1/webhooks/{webhook}", everyone(UNAUTHORIZED), json={"state": "paused"}),
    Row("api_v1.webhook", "DELETE", "/api/v1/webhooks/{webhook}", everyone(UNAUTHORIZED)),
    Row("api_v1.webhook_deliveries", "GET", "/api/v1/webhooks/{webhook}/deliveries", everyone(UNAUTHORIZED)),
    Row("api_v1.replay_webhook_delivery", "POST", "/api/v1/webhooks/{webhook}/deliveries/{webhook_delivery}/replay",
        everyone(UNAUTHORIZED)),
    Row("api_v1.send_webhook_test", "POST", "/api/v1/webhooks/{webhook}/test", everyone(UNAUTHORIZED)),

    # Reports: managers and admins see every team anyway.
    Row("reports.index", "GET", "/reports", manager_only()),
    Row("reports.export", "GET", "/reports/export.csv", manager_only()),
    Row("reports.chart", "GET", "/reports/charts/first_response.png", manager_only()),
    Row("reports.digests", "GET", "/reports/digests", manager_only()),
    Row("reports.digest_page", "GET", "/reports/digests/2026-W10", manager_only(ok(200, 404))),
    Row("reports.digest_body", "GET", "/reports/digests/2026-W10/body", manager_only(ok(200, 404))),
    Row("reports.digest_image", "GET", "/reports/digests/2026-W10/images/first_response.png",
        manager_only(ok(200, 404))),

    # Admin pages (B's agent and team as the objects).
    Row("admin.index", "GET", "/admin", admin_only(ok(302))),
    Row("admin.agents", "GET", "/admin/agents", admin_only()),
    Row("admin.invite", "POST", "/admin/agents", admin_only(),
        form={"email": "new@example.org", "name": "New", "role": "agent", "team": "{team_b}"}, mutates=True),
    Row("admin.agent", "GET", "/admin/agents/{agent_b_id}", admin_only()),
    Row("admin.rename_agent", "POST", "/admin/agents/{agent_b_id}/name", admin_only(ok(302)),
        form={"name": "Renamed"}, mutates=True),
    Row("admin.change_role", "POST", "/admin/agents/{agent_b_id}/role", admin_only(ok(302)),
        form={"role": "lead"}, mutates=True),
    Row("admin.set_teams", "POST", "/admin/agents/{agent_b_id}/teams", admin_only(ok(302)),
        form={"team": ["{team_a}"]}, mutates=True),
    Row("admin.disable", "POST", "/admin/agents/{agent_b_id}/disable", admin_only(ok(302)), mutates=True),
    Row("admin.enable", "POST", "/admin/agents/{agent_b_id}/enable", admin_only(ok(302)), mutates=True),
    Row("admin.end_sessions", "POST", "/admin/agents/{agent_b_id}/sessions", admin_only(ok(302)), mutates=True),
    Row("admin.reset_second_factor", "POST", "/admin/agents/{agent_b_id}/second-factor", admin_only(ok(302)),
        mutates=True),
    Row("admin.reinvite", "POST", "/admin/agents/{invitee_id}/invitation", admin_only(), mutates=True),
    Row("conversations.my_signature", "GET", "/settings/signature", signed_in(clean())),
    Row("conversations.my_signature", "POST", "/settings/signature", signed_in(clean(303)),
        form={"signature": "Kind regards, {{agent_name}}"}, mutates=True),
    Row("conversations.shared_signatures", "GET", "/settings/signatures", admin_only()),
    Row("conversations.shared_signatures", "POST", "/settings/signatures", admin_only(ok(303)),
        form={"channel:mail": "The support desk"}, mutates=True),
    Row("admin.teams", "GET", "/admin/teams", admin_only()),
    Row("admin.create_team", "POST", "/admin/teams", admin_only(ok(302)), form={"name": "Team C"}, mutates=True),
    Row("admin.team", "GET", "/admin/teams/{team_b}", admin_only()),
    Row("admin.rename_team", "POST", "/admin/teams/{team_b}/rename", admin_only(ok(302)),
        form={"name": "Team Bee"}, mutates=True),
    Row("admin.set_default_send_status", "POST", "/admin/teams/{team_b}/send-status", admin_only(ok(302)),
        form={"default_send_status": "resolved"}, mutates=True),
    Row("admin.delete_team", "POST", "/admin/teams/{team_b}/delete", admin_only(ok(302)), mutates=True),
    Row("admin.add_member", "POST", "/admin/teams/{team_b}/members", admin_only(ok(302)),
        form={"agent_id": "{agent_a_id}"}, mutates=True),
    Row("admin.remove_member", "POST", "/admin/teams/{team_b}/members/{agent_b_id}/remove", admin_only(ok(302)),
        mutates=True),
    # Service levels, business hours, surveys and the digest set in the browser (admins; issue #13).
    Row("service_admin.service_levels_page", "GET", "/admin/service-levels", admin_only()),
    Row("service_admin.security_page", "GET", "/admin/security", admin_only()),
    Row("service_admin.save_security", "POST", "/admin/security", admin_only(ok(302)), form={"role_lead": "1"},
        mutates=True),
    Row("service_admin.save_policy", "POST", "/admin/service-levels", admin_only(ok(302)),
        form={"first_response_on": "1", "first_response_desired": "30m", "first_response_adequate": "2h",
              "warn_before": "15m"}, mutates=True),
    Row("service_admin.add_override", "POST", "/admin/service-levels/overrides", admin_only(ok(302)),
        form={"channel": "mail-b", "first_response_mode": "set", "first_response_desired": "15m",
              "first_response_adequate": "1h"}, mutates=True),
    Row("service_admin.edit_override", "POST", "/admin/service-levels/overrides/0", admin_only(ok(302)),
        form={"key": "mail-b|", "channel": "mail-b", "resolution_mode": "off"}, mutates=True,
        note="no override yet: the admin is sent back to the list"),
    Row("service_admin.delete_override", "POST", "/admin/service-levels/overrides/0/delete", admin_only(ok(302)),
        form={"key": "mail-b|"}, mutates=True),
    Row("service_admin.business_hours_page", "GET", "/admin/business-hours", admin_only()),
    Row("service_admin.save_business_hours", "POST", "/admin/business-hours", admin_only(ok(302)),
        form={"timezone": "Europe/Amsterdam", "hours_mon": "09:00-17:00"}, mutates=True),
    Row("service_admin.save_team_hours", "POST", "/admin/business-hours/teams/{team_b}", admin_only(ok(302)),
        form={"timezone": "America/New_York", "hours_mon": "09:00-17:00"}, mutates=True),
    Row("service_admin.use_default_hours", "POST", "/admin/business-hours/teams/{team_b}/default",
        admin_only(ok(302)), mutates=True),
    Row("service_admin.surveys_page", "GET", "/admin/surveys", admin_only()),
    Row("service_admin.save_surveys", "POST", "/admin/surveys", admin_only(ok(302)),
        form={"enabled": "1", "delay": "10m", "expires": "7d", "channel:mail-b": "off"}, mutates=True),
    Row("service_admin.digest_page", "GET", "/admin/digest", admin_only()),
    Row("service_admin.save_digest", "POST", "/admin/digest", admin_only(ok(302)),
        form={"enabled": "1", "weekday": "mon", "hour": "8", "send": "send", "delivery": "channel",
              "channel": "mail-b", "recipients": "boss@example.com", "goal": "90"}, mutates=True),
    # Automation rules (admins; issue #15). The form names team B in a condition and an action.
    Row("rules_admin.index", "GET", "/admin/rules", admin_only()),
    Row("rules_admin.new", "GET", "/admin/rules/new", admin_only()),
    Row("rules_admin.create", "POST", "/admin/rules", admin_only(ok(302)), mutates=True,
        form={"name": "To team B", "trigger": "message_received", "enabled": "1", "condition_type_0": "team",
              "condition_choice_0": "team:{team_b}", "action_type_0": "assign_team",
              "action_choice_0": "team:{team_b}"}),
    Row("rules_admin.edit", "GET", "/admin/rules/{rule}", admin_only()),
    Row("rules_admin.update", "POST", "/admin/rules/{rule}/edit", admin_only(ok(302)), mutates=True,
        form={"name": "Matrix rule", "trigger": "status_changed", "action_type_0": "add_label",
              "action_value_0": "matrix"}),
    Row("rules_admin.delete", "POST", "/admin/rules/{rule}/delete", admin_only(ok(302)), mutates=True),
    Row("rules_admin.set_enabled", "POST", "/admin/rules/{rule}/enabled", admin_only(ok(302)), mutates=True,
        form={"enabled": "0"}),
    Row("rules_admin.move", "POST", "/admin/rules/{rule}/move", admin_only(ok(302)), mutates=True,
        form={"direction": "down"}),
    Row("rules_admin.dry_run", "GET", "/admin/rules/{rule}/dry-run", admin_only()),
    # The invitation link is the credential: it works for whoever holds it, signed in or not.
    Row("admin.accept_invitation", "GET", f"/invite/{INVITE_TOKEN}", everyone(clean())),
    Row("admin.accept_invitation", "POST", f"/invite/{INVITE_TOKEN}", everyone(clean(302)),
        form={"password": "invitee password 1", "repeat_password": "invitee password 1"}, mutates=True),
    Row("admin.accept_invitation", "GET", f"/invite/{INVITE_TOKEN.swapcase()}", everyone(HIDDEN)),
    # The audit log (admins): filtered by team B's customer, and its CSV export.
    Row("audit.index", "GET", "/admin/audit", admin_only(), query={"object_type": "customer", "object_id": "{cust_b}"}),
    Row("audit.export", "GET", "/admin/audit/export.csv", admin_only(), query={"actor": "agent:{agent_b_id}"}),
    # The quarantine (admins): an item held from team B's channel.
    Row("quarantine.index", "GET", "/admin/quarantine", admin_only(), query={"channel": "mail-b"}),
    Row("quarantine.show", "GET", "/admin/quarantine/{quarantine_b}", admin_only()),
    Row("quarantine.download", "GET", "/admin/quarantine/{quarantine_b}/raw", admin_only()),
    Row("quarantine.reprocess", "POST", "/admin/quarantine/{quarantine_b}/reprocess", admin_only(ok(302)),
        mutates=True),
    Row("quarantine.delete", "POST", "/admin/quarantine/{quarantine_b}/delete", admin_only(ok(302)), mutates=True),

    # Channels administered in the browser (admins only); `tg-stored` is a stored Telegram channel whose
    # API address is a closed local port, so a connection test fails at once and reaches nobody.
    Row("channels_admin.index", "GET", "/admin/channels", admin_only()),
    Row("channels_admin.new", "GET", "/admin/channels/new", admin_only(), query={"kind": "telegram"}),
    Row("channels_admin.new", "POST", "/admin/channels/new", admin_only(ok(302)), mutates=True,
        form={"kind": "telegram", "name": "tg-new", "setting-token": "123:matrix",
              "setting-api_url": "http://127.0.0.1:9"}),
    Row("channels_admin.detail", "GET", "/admin/channels/tg-stored", admin_only()),
    Row("channels_admin.detail", "POST", "/admin/channels/tg-stored", admin_only(ok(302)), mutates=True,
        form={"setting-page_size": "50", "setting-api_url": "http://127.0.0.1:9"}),
    Row("channels_admin.set_state", "POST", "/admin/channels/tg-stored/state", admin_only(ok(302)),
        form={"state": "paused"}, mutates=True),
    Row("channels_admin.test", "POST", "/admin/channels/tg-stored/test", admin_only()),
    Row("channels_admin.delete", "POST", "/admin/channels/tg-stored/delete", admin_only(ok(302)), mutates=True),
    # API tokens (admins only): the page, making one (shown once), revoking one.
    Row("tokens.index", "GET", "/admin/tokens", admin_only()),
    Row("tokens.create", "POST", "/admin/tokens", admin_only(),
        form={"name": "CRM sync", "scope": ["customers:read", "customers:write"], "expiry": "90"}, mutates=True),
    Row("tokens.revoke", "POST", "/admin/tokens/{api_token}/revoke", admin_only(ok(302)), mutates=True),
    # Outbound webhooks (admins only): the list, subscribing (secret shown once), one subscription and its
    # log, pause/resume, a test event, replay of a delivery, removal.
    Row("webhooks_admin.index", "GET", "/admin/webhooks", admin_only()),
    Row("webhooks_admin.create", "POST", "/admin/webhooks", admin_only(),
        form={"url": "https://203.0.114.20/mainland", "event": ["message.received"]}, mutates=True,
        note="an address literal: the test machine resolves no names"),
    Row("webhooks_admin.detail", "GET", "/admin/webhooks/{webhook}", admin_only()),
    Row("webhooks_admin.set_state", "POST", "/admin/webhooks/{webhook}/state", admin_only(ok(302)),
        form={"state": "paused"}, mutates=True),
    Row("webhooks_admin.test", "POST", "/admin/webhooks/{webhook}/test", admin_only(ok(302)), mutates=True),
    Row("webhooks_admin.replay", "POST", "/admin/webhooks/{webhook}/deliveries/{webhook_delivery}/replay",
        admin_only(ok(302)), mutates=True),
    Row("webhooks_admin.delete", "POST", "/admin/webhooks/{webhook}/delete", admin_only(ok(302)), mutates=True),
    # Password reset by email (no sign-in): the same answer for every address; the link is the key.
    Row("account.forgot_password", "GET", "/password/forgot", everyone(clean())),
    Row("account.forgot_password", "POST", "/password/forgot", everyone(clean(200, 429)),
        form={"email": "nobody@example.org"},
        note="the same answer as for a known address; the five roles ask for one address, so the per-account "
             "limit (3 per 15 minutes) answers the later ones with 429"),
    Row("account.reset_password", "GET", f"/password/reset/{RESET_TOKEN}", everyone(clean())),
    Row("account.reset_password", "POST", f"/password/reset/{RESET_TOKEN}", everyone(clean(302)),
        form={"password": "reset password 12", "repeat_password": "reset password 12"}, mutates=True),
    Row("account.reset_password", "GET", f"/password/reset/{RESET_TOKEN.swapcase()}", everyone(HIDDEN)),
    # Two-step sign-in: the code step needs a right password first; the security page is one's own.
    Row("account.sign_in_code", "GET", "/login/code", {ANON: LOGIN, A: ok(302), B: ok(302), ADMIN: ok(302)}),
    Row("account.sign_in_code", "POST", "/login/code", {ANON: LOGIN, A: ok(302), B: ok(302), ADMIN: ok(302)},
        form={"code": "123456"}),
    Row("account.security", "GET", "/account/security", signed_in(clean())),
    Row("account.security", "POST", "/account/security", signed_in(clean(302)), form={"action": "start"},
        mutates=True),
    Row("account.security", "POST", "/account/security", signed_in(clean(302)),
        form={"action": "sign_out_everywhere"}, mutates=True),
    # Remembered devices (#13): one's own only; a device id that is not one's own is a 404.
    Row("account.security", "POST", "/account/security", signed_in(clean(302)),
        form={"action": "forget_devices"}, mutates=True),
    Row("account.security", "POST", "/account/security", signed_in(HIDDEN),
        form={"action": "forget_device", "device_id": "999999"}),

    # The answer library is shared by every team; the conversation it is used in is a team object.
    Row("answers.index", "GET", "/answers", signed_in(clean())),
    Row("answers.show", "GET", "/answers/{answer}", signed_in(clean())),
    Row("answers.create", "GET", "/answers/new", leads_only(clean())),
    Row("answers.create", "POST", "/answers/new", leads_only(clean(302, 303), ok(302, 303)),
        form={"title": "Opening hours", "body": "We are open 9-17.", "language": "en", "tags": "hours"},
        mutates=True),
    Row("answers.edit", "GET", "/answers/{answer}/edit", leads_only(clean())),
    Row("answers.edit", "POST", "/answers/{answer}/edit", leads_only(clean(302, 303), ok(302, 303)),
        form={"title": "Refunds", "body": "Refunds take 5 days.", "language": "en", "tags": ""}, mutates=True),
    Row("answers.set_active", "POST", "/answers/{answer}/active", leads_only(clean(302, 303), ok(302, 303)),
        form={"active": "0"}, mutates=True),
    # Import and export of the library (#13): for leads, like writing it. Without a file or a preview
    # to confirm, the import is refused (400) and changes nothing.
    Row("answers.export", "POST", "/answers/export", leads_only(clean(), ok()), form={"format": "yaml"},
        mutates=True, note="the export is audited"),
    Row("answers.export", "POST", "/answers/export", leads_only(clean(), ok()), form={"format": "csv", "active": "1"},
        mutates=True),
    Row("answers.import_file", "GET", "/answers/import", leads_only(clean())),
    Row("answers.import_file", "POST", "/answers/import", leads_only(clean(400), ok(400))),
    Row("answers.import_confirm", "POST", "/answers/import/confirm", leads_only(clean(400), ok(400)),
        form={"token": "no-such-preview-token-0123456789abcdefghijk"}),
    Row("answers.suggested", "GET", "/conversations/{conv_b}/suggested-answers", team_object(ok())),
    Row("palette.commands", "GET", "/conversations/{conv_b}/commands", team_object(ok())),
    Row("answers.render", "POST", "/answers/{answer}/render", team_object(ok()), json={"conversation_id": "{conv_b}"},
        mutates=True),
    Row("answers.render", "POST", "/answers/{answer}/render", team_object(ok()), form={"conversation_id": "{conv_b}"},
        mutates=True),

    # The public help center (on in this installation): the same pages for everyone, signed in or not,
    # and nothing of any team's conversations in them (a search for B's secret finds no article).
    Row("helpcenter.home_best", "GET", "/help", everyone(clean())),
    Row("helpcenter.home", "GET", "/help/nl", everyone(clean())),
    Row("helpcenter.page", "GET", "/help/en/refund-steps", everyone(clean()), mutates=True,
        note="a read is counted (an article and a day, nothing about the reader)"),
    Row("helpcenter.page", "GET", "/help/en/refunds", everyone(clean()), note="a category"),
    Row("helpcenter.page", "GET", "/help/en/unpublished-steps", everyone(HIDDEN), note="an unpublished answer"),
    Row("helpcenter.search", "GET", "/help/search", everyone(clean()), query={"q": B_SECRET, "lang": "en"},
        mutates=True, note="a search that finds nothing is counted by its text"),
    Row("helpcenter.sitemap", "GET", "/help/sitemap.xml", everyone(clean())),
    Row("helpcenter.theme", "GET", "/help/theme.css", everyone(clean())),
    # Publishing and categories: those who may edit answers.
    Row("helpcenter.publish", "POST", "/answers/{answer}/publish", leads_only(clean(302, 303), ok(302, 303)),
        form={"slug": "refund-steps", "published": "0", "category": "{help_category}", "summary": "",
              "article_key": ""}, mutates=True),
    Row("helpcenter.categories", "GET", "/help-center/categories", leads_only(clean())),
    Row("helpcenter.create_category", "POST", "/help-center/categories", leads_only(clean(302, 303), ok(302, 303)),
        form={"position": "1", "name_en": "Payments", "name_nl": "Betalen"}, mutates=True),
    Row("helpcenter.update_category", "POST", "/help-center/categories/{help_category}",
        leads_only(clean(302, 303), ok(302, 303)), form={"position": "2", "name_en": "Money back"}, mutates=True),
    Row("helpcenter.delete_category", "POST", "/help-center/categories/{help_category}/delete",
        leads_only(clean(302, 303), ok(302, 303)), mutates=True),

    # Review of trainees' replies (leads): a held reply in team B's conversation.
    Row("review.index", "GET", "/review", leads_only(clean(), SHOWS)),
    Row("review.show", "GET", "/review/{review_b}", leads_only(HIDDEN, SHOWS)),
    Row("review.approve", "POST", "/review/{review_b}/approve", leads_only(HIDDEN, DONE), mutates=True),
    Row("review.return_reply", "POST", "/review/{review_b}/return", leads_only(HIDDEN, DONE),
        form={"comment": "Please add the order number."}, mutates=True),
    Row("review.agent", "GET", "/review/agents/{agent_b_id}", {ANON: LOGIN, A: HIDDEN, LEAD_A: HIDDEN, B: ok(),
                                                                ADMIN: ok()}),

    # Triage (#14, leads): a suspicious item of team B's conversation; blocks of B's customer's address.
    Row("triage.index", "GET", "/review/triage", leads_only(clean(), SHOWS)),
    Row("triage.decide", "POST", "/review/triage/{triage_b}/decide", leads_only(HIDDEN, DONE),
        form={"verdict": "spam"}, mutates=True),
    Row("triage.block", "POST", "/conversations/{conv_b}/block", leads_only(HIDDEN, DONE),
        form={"kind": "domain", "identity_kind": "email", "value": "example.net"}, mutates=True),
    Row("triage.unblock", "POST", "/conversations/{conv_b}/unblock", leads_only(HIDDEN, DONE),
        form={"kind": "address", "identity_kind": "email", "value": "bettina@example.net"}, mutates=True),
    Row("triage.blocks", "GET", "/admin/blocks", admin_only()),
    Row("triage.remove_block", "POST", "/admin/blocks/{block_b}/remove", admin_only(DONE), mutates=True),

    # Routing: everyone sets their own status; leads see and change their own teams only.
    Row("routing.status", "GET", "/routing/status", signed_in(clean())),
    Row("routing.status", "POST", "/routing/status", signed_in(clean(302, 303)), form={"status": "away"},
        mutates=True),
    Row("routing.overview", "GET", "/routing", leads_only(clean())),
    Row("routing.overview", "GET", "/routing", leads_only(HIDDEN), query={"conversation": "{conv_b}"}),
    Row("routing.set_mode", "POST", "/routing/mode", leads_only(FORBIDDEN, ok(302, 303)),
        form={"team": "{team_b}", "mode": "manual"}, mutates=True),
    Row("routing.agent_settings", "GET", "/routing/agents/{agent_b_id}", leads_only(HIDDEN)),
    Row("routing.agent_settings", "POST", "/routing/agents/{agent_b_id}", leads_only(HIDDEN, ok(302, 303)),
        form={"capacity": "3", "languages": "en", "topics": "", "trainee": "0"}, mutates=True),
]


# The installation ------------------------------------------------------------------------------

def _now() -> str:
    return iso(dt.datetime.now(dt.UTC))


def _ingest(world: World, channel: str, sender: str, subject: str, body: str, message_id: str, **kw) -> int:
    raw = mail_with_attachment(sender=sender, subject=subject, body=body, message_id=message_id)
    if kw.get("in_reply_to"):
        raw = raw.replace(b"Message-ID:", f"In-Reply-To: {kw['in_reply_to']}\nMessage-ID:".encode(), 1)
    ingestor = world.app.extensions["mainland"].ingestor(world.store)
    report = ingestor.ingest(channel, FetchResult(items=[parse_email(raw, channel=channel)], cursor=message_id))
    return report.message_ids[0]


def _more_of_team_b(world: World, rules: set[str]) -> dict[str, int]:
    """Team B objects beyond build_world's, each made only when the routes using it exist."""
    store, ids = world.store, {}
    bettina = f"{B_SENDER_NAME} <bettina@example.net>"
    msg_b2 = _ingest(world, "mail-b", bettina, f"Re: {B_SUBJECT}", f"More about the {B_SECRET}.",
                     "<b-2@example.net>", in_reply_to="<b-1@example.net>")
    ids["msg_b2"] = msg_b2
    assert store.message(msg_b2)["conversation_id"] == world.conversation["b"], "the reply joined conv_b"
    ids["conv_b2"] = store.message(_ingest(world, "mail-b", bettina, f"Another {B_SECRET} question",
                                           f"A second {B_SECRET} matter.", "<b2-1@example.net>"))["conversation_id"]
    bruno = _ingest(world, "mail-b", "Bruno Bravo <bruno@example.net>", f"Bruno's {B_SECRET}", "Hello",
                    "<bruno-1@example.net>")
    ids["bruno_b"] = store.conversation(store.message(bruno)["conversation_id"])["customer_id"]
    agent_b = world.agents["agent_b"]
    if "/merges/<int:merge_id>/undo" in rules:
        c3 = store.message(_ingest(world, "mail-b", bettina, f"Third {B_SECRET}", "x", "<b3@example.net>"))
        c4 = store.message(_ingest(world, "mail-b", bettina, f"Fourth {B_SECRET}", "y", "<b4@example.net>"))
        ids["merge_b"] = store.merge_conversations(c3["conversation_id"], c4["conversation_id"],
                                                   agent_id=agent_b["id"], now=_now())
    if "/messages/<int:message_id>/retry" in rules:
        from inbox.outbox import queue_reply

        outbox_id = queue_reply(world.app.extensions["mainland"], store, world.conversation["b"],
                                f"About your {B_SECRET}", agent=agent_b)
        store.mark_outbox_failed(outbox_id, "refused by the server", dead=True)
        [reply] = [m for m in store.conversation_messages(world.conversation["b"]) if m["direction"] == "out"]
        ids["reply_b"] = reply["id"]
    if "/customers/merges/<int:merge_id>/undo" in rules:
        brenda = _ingest(world, "mail-b", "Brenda Bravo <brenda@example.net>", f"Brenda's {B_SECRET}", "Hi",
                         "<brenda-1@example.net>")
        brenda_id = store.conversation(store.message(brenda)["conversation_id"])["customer_id"]
        brenda2 = _ingest(world, "mail-b", "Brenda Bravo <brenda.two@example.net>", f"Brenda again {B_SECRET}",
                          "Hi", "<brenda-2@example.net>")
        brenda2_id = store.conversation(store.message(brenda2)["conversation_id"])["customer_id"]
        ids["cust_merge_b"] = store.merge_customers(brenda_id, brenda2_id, agent_id=agent_b["id"], now=_now())
    if "/customers/suggestions/<int:suggestion_id>/confirm" in rules:
        with store.write():
            ids["suggestion_b"] = store.save_suggestion(world.customer["b"], ids["bruno_b"], 0.9,
                                                        [{"code": "same_name", "detail": "Bravo", "weight": 0.5}], _now())
    if "/notifications" in rules:
        store.notifications.add([agent_b["id"]], kind="mention", conversation_id=world.conversation["b"],
                                message_id=world.message["b"], actor_id=world.agents["admin"]["id"], now=_now())
        [note] = store.notifications.of(agent_b["id"], None)
        ids["notification_b"] = note.id
    if "/answers" in rules:
        ids["answer"] = store.answers.create(title="Refund steps", body="Refunds take 5 working days.",
                                             language="en", tags=["refund"], owner_id=world.agents["admin"]["id"],
                                             now=_now())
    if "/help" in rules:
        ids["help_category"] = store.save_help_category(None, position=0, names={"en": ("Refunds", "refunds")},
                                                        actor="test", now=_now())
        store.save_help_article(ids["answer"], slug="refund-steps", category_id=ids["help_category"], summary="",
                                article_key="refund-steps", published=True, actor="test", now=_now())
        draft = store.answers.create(title="Unpublished steps", body="Not public yet.", language="en", tags=[],
                                     owner_id=None, now=_now())
        store.save_help_article(draft, slug="unpublished-steps", category_id=None, summary="", article_key="",
                                published=False, actor="test", now=_now())
    if "/review" in rules:
        ids["review_b"] = store.review.hold(conversation_id=world.conversation["b"], agent_id=agent_b["id"],
                                            text=f"Held reply about the {B_SECRET}", html=None, now=_now())
    if "/review/triage" in rules:
        with store.write():
            ids["triage_b"] = store.triage.add_review(
                message_id=world.message["b"], conversation_id=world.conversation["b"], channel="mail-b",
                kind="suspicious", machine_verdict="suspicious", probability=0.7, model_version=1, reason="model",
                facts={"channel": "mail-b", "text": B_SECRET}, now=_now())
            ids["block_b"] = store.triage.add_block("address", "email", "bettina@example.net",
                                                    agent_id=agent_b["id"], now=_now())
    if "/admin/quarantine" in rules:
        with store.write():
            ids["quarantine_b"] = store.quarantine_put(
                "mail-b", f"To: support@mainland.test\r\nSubject: {B_SUBJECT}\r\n\r\nNo sender.\r\n".encode(),
                "no sender", source_ref=None, exception="ItemError", now=_now())
    if "/views" in rules:
        ids["view_b"] = store.save_view(agent_b["id"], "Bravo matters", {"status": "open"})
    if "/admin/rules/<int:rule_id>" in rules:
        ids["rule"] = store.create_rule({"name": "Matrix rule", "trigger": "message_received",
                                         "conditions": [{"type": "team", "value": world.team_b}],
                                         "actions": [{"type": "add_label", "value": "matrix"}]}, _now())
    ids["last_b"] = max(m["id"] for m in store.conversation_messages(world.conversation["b"]))
    invitee = store.create_agent(email="ivy@example.org", name="Ivy Invitee", role="agent", password_hash=None)
    store.set_agent_teams(invitee, [world.team_b])
    store.create_invitation(invitee, token_hash(INVITE_TOKEN), expires_at=iso(dt.datetime.now(dt.UTC)
                                                                               + dt.timedelta(hours=72)),
                            created_by=world.agents["admin"]["id"])
    ids["invitee_id"] = invitee
    if "/admin/tokens/<int:token_id>/revoke" in rules:
        ids["api_token"] = store.api_tokens.create(name="Matrix token", token_hash="0" * 64, prefix="ml_matrix",
                                                   scopes=["customers:read"], created_by=world.agents["admin"]["id"])
    if "/admin/webhooks/<int:subscription_id>" in rules:
        from inbox import webhooks_out

        with store.write():
            ids["webhook"] = store.create_webhook_subscription(
                url="https://hooks.example.com/matrix", events=["message.received"], secret='{"$encrypted": "x"}',
                created_by=world.agents["admin"]["id"], now=_now())
        ids["webhook_delivery"] = webhooks_out.queue_test(store, ids["webhook"])
    if "/admin/channels/<name>" in rules:
        store.stored_settings.add_channel(name="tg-stored", kind="telegram", poll_every=None, by=None,
                                          settings={"token": "123:stored", "api_url": "http://127.0.0.1:9"})
    store.create_password_reset(invitee, token_hash(RESET_TOKEN), expires_at=iso(dt.datetime.now(dt.UTC)
                                                                                 + dt.timedelta(minutes=30)))
    return ids


def _ids(world: World, more: dict[str, int]) -> dict[str, object]:
    ids: dict[str, object] = {
        "team_a": world.team_a, "team_b": world.team_b,
        "agent_a_id": world.agents["agent_a"]["id"], "agent_b_id": world.agents["agent_b"]["id"],
    }
    for key in ("a", "b"):
        ids[f"conv_{key}"] = world.conversation[key]
        ids[f"msg_{key}"] = world.message[key]
        ids[f"att_{key}"] = world.attachment[key]
        ids[f"cust_{key}"] = world.customer[key]
    ids.update(more)
    return ids


def _rules(app) -> dict[str, str]:
    """Endpoint -> rule, for every route of the app."""
    return {rule.endpoint: rule.rule for rule in app.url_map.iter_rules()}


class Installation:
    """The pristine world (copied for rows that change things) and a shared one with signed-in clients."""

    def __init__(self, factory) -> None:
        template_root = factory.mktemp("matrix-template")
        template = build_world(template_root, help_center={"enabled": True})
        rules = set(_rules(template.app).values())
        self.ids = _ids(template, _more_of_team_b(template, rules))
        self.template = template
        self.factory = factory
        self.shared = self.fresh()
        self.clients = {role: self.client(self.shared, role) for role in ROLES}

    def fresh(self) -> World:
        return copy_world(self.template, self.factory.mktemp("matrix"))

    @staticmethod
    def client(world: World, role: str):
        return world.client(None if role == ANON else role)

    def close(self) -> None:
        self.shared.store.close()
        self.template.store.close()


@pytest.fixture(scope="module")
def installation(tmp_path_factory):
    inst = Installation(tmp_path_factory)
    yield inst
    inst.close()


# Checks ----------------------------------------------------------------------------------------

def _fill(value, ids: dict[str, object]):
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    return str(value).format(**ids) if isinstance(value, str) else value


def b_snapshot(world: World, ids: dict[str, object]) -> str:
    """Team B's state as text: anything a refused request changed shows up as a difference."""
    store = world.store

    def safe(fn, *args, **kw):
        try:
            return fn(*args, **kw)
        except Exception as exc:  # a row removed by the request is a difference too
            return f"<{type(exc).__name__}>"

    conversations = [ids[k] for k in ("conv_b", "conv_b2") if k in ids]
    agent_b = ids["agent_b_id"]
    parts = [
        [safe(store.conversation, c) for c in conversations],
        [safe(store.conversation_messages, c) for c in conversations],
        safe(store.customer_identities, ids["cust_b"]),
        {k: v for k, v in (store.agent(agent_b) or {}).items()},
        sorted(store.agent_team_ids(agent_b)),
        safe(store.team, ids["team_b"]),
        safe(store.team_members, ids["team_b"]),
        safe(store.notifications.of, agent_b, None),
        # Called by name, not looked up: a verb that moves to a concern must fail here, not drop out
        # of the snapshot (`api_tokens` did, and the snapshot recorded a TypeError for it).
        safe(store.customer_record, ids["cust_b"]),
        safe(store.customer_attributes, ids["cust_b"]),
        safe(store.customer_notes, ids["cust_b"]),
        safe(store.saved_views, agent_b),
        safe(store.labels_of, conversations),
        safe(store.api_tokens.all),
    ]
    if "merge_b" in ids:
        parts.append(safe(store.merge_record, ids["merge_b"]))
    if "cust_merge_b" in ids:
        parts.append(safe(store.customer_merge, ids["cust_merge_b"]))
    if "suggestion_b" in ids:
        parts.append(safe(store.suggestion, ids["suggestion_b"]))
    return repr(parts)


def _token(client, role: str) -> str:
    return csrf_token(client, "/login" if role == ANON else "/settings")


def _request(client, role: str, row: Row, ids: dict[str, object]):
    path = _fill(row.path, ids)
    query = {k: _fill(v, ids) for k, v in row.query.items()}
    if row.method == "GET":
        return client.get(path, query_string=query)
    if row.method == "OPTIONS":
        return client.open(path, method="OPTIONS", query_string=query,
                           headers={"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"})
    if row.json is not None:
        data = {k: _fill(v, ids) for k, v in row.json.items()}
        data = {k: int(v) if isinstance(v, str) and v.isdigit() else v for k, v in data.items()}
        return client.open(path, method=row.method, query_string=query, json=data,
                           headers={"X-CSRFToken": _token(client, role)})
    form = {k: _fill(v, ids) for k, v in row.form.items()}
    form["csrf_token"] = _token(client, role)
    return client.open(path, method=row.method, query_string=query, data=form)


def _check(row: Row, role: str, response, where: str) -> None:
    out = expected(row, role)
    body = response.get_data().decode("utf-8", "replace")
    # What the caller sent may come back (a search box shows its words); that is no leak.
    markers = [m for m in B_MARKERS if m.lower() not in where.lower()]
    label = f"{row.method} {where} as {role}"
    if out.login:
        assert response.status_code == 302 and response.headers["Location"].startswith("/login"), \
            f"{label}: expected a redirect to sign in, got {response.status_code} {response.headers.get('Location')}"
    else:
        assert response.status_code in out.status, f"{label}: expected {out}, got {response.status_code}"
    if out.no_b:
        leaked = [m for m in markers if m.lower() in body.lower()]
        assert not leaked, f"{label}: team B's data in the answer: {leaked}"
    if out.shows_b:
        assert any(m.lower() in body.lower() for m in B_MARKERS), \
            f"{label}: team B's data should be in the answer (the row tests nothing otherwise)"


# Tests -----------------------------------------------------------------------------------------

def test_every_route_has_a_row(installation):
    covered = {row.endpoint for row in ROWS}
    missing = [f"add a row for {rule} ({endpoint}) to tests/test_access_matrix.py"
               for endpoint, rule in sorted(_rules(installation.shared.app).items(), key=lambda kv: kv[1])
               if endpoint not in covered]
    assert not missing, "\n".join(missing)


def test_rows_match_their_routes(installation):
    """A row's path must be served by its endpoint (a typo would test some other route)."""
    adapter = installation.shared.app.url_map.bind("localhost")
    rules = _rules(installation.shared.app)
    for row in ROWS:
        assert row.endpoint in rules, f"{row.endpoint} is no route any more: remove its row"
        endpoint, _args = adapter.match(_fill(row.path, installation.ids), method=row.method)
        assert endpoint == row.endpoint, f"{row.method} {row.path} is served by {endpoint}, not {row.endpoint}"
        assert set(REQUIRED_ROLES) <= set(row.expect) <= set(ROLES), \
            f"{row.endpoint}: an outcome for each of {REQUIRED_ROLES}"


@pytest.mark.parametrize("row", ROWS, ids=[f"{r.method}-{r.endpoint}-{i}" for i, r in enumerate(ROWS)])
def test_route_by_role(installation, row):
    assert row.endpoint in _rules(installation.shared.app), \
        f"{row.endpoint} is no route any more: remove its row from tests/test_access_matrix.py"
    ids = installation.ids
    where = _fill(row.path, ids) + (f"?{row.query}" if row.query else "") + (f" {row.form}" if row.form else "")
    for role in ROLES:
        out = expected(row, role)
        # A refused request must change nothing, so it may share the installation; a request
        # that may change things gets a fresh copy.
        refused = out.login or out.status <= REFUSALS
        if row.mutates and not refused:
            world = installation.fresh()
            client = Installation.client(world, role)
        else:
            world, client = installation.shared, installation.clients[role]
        before = b_snapshot(world, ids) if refused or role in (ANON, A, LEAD_A) else None
        response = _request(client, role, row, ids)
        _check(row, role, response, where)
        if before is not None:
            assert b_snapshot(world, ids) == before, f"{row.method} {where} as {role} changed team B's data"
        if world is not installation.shared:
            world.store.close()


def test_search_and_counts_of_team_a_leave_out_team_b(installation):
    """IN-65: search that only matches B's data gives team A no title, snippet or count."""
    a, b = installation.clients[A], installation.clients[B]
    for client, sees in ((a, False), (b, True)):
        page = client.get("/search", query_string={"q": B_SECRET}).get_data(as_text=True)
        assert (B_SUBJECT in page) is sees
        assert ("Matches in" in page) is sees, "no result count for what the agent cannot see"
    # The queue's counts: team A sees its own conversation and the unrouted one, never B's five.
    counts_a = [int(n) for n in re.findall(r'class="nav-count">(\d+)<', a.get("/").get_data(as_text=True))]
    counts_b = [int(n) for n in re.findall(r'class="nav-count">(\d+)<', b.get("/").get_data(as_text=True))]
    assert counts_a and max(counts_a) <= 2, counts_a
    assert counts_b and max(counts_b) > 2, counts_b
