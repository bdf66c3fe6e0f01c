"""The website chat's endpoints (#18), through the Flask test client and a real SQLite file.

The app has one chat channel, "site", that www.example.com embeds. A visitor is a random token in
the `X-Mainland-Visitor` header; an agent's reply reaches the widget's history through the outbox.
"""

from __future__ import annotations

import datetime as dt
import gzip
import secrets
import uuid

import pytest

from inbox import create_app
from inbox.outbox import queue_reply, send_due
from inbox.store import Store

ALLOWED = "https://www.example.com"
EVIL = "https://evil.example"


@pytest.fixture
def app_config(app_config):
    app_config["channels"] = {
        "site": {"kind": "chat", "title": "Example Ltd", "color": "#224466", "allowed_origins": [ALLOWED]},
        "closed": {"kind": "chat", "enabled": False},
    }
    return app_config


@pytest.fixture
def db(app, app_config):
    store = Store(app_config["database"])
    yield store
    store.close()


def visitor() -> str:
    return secrets.token_urlsafe(32)


def headers(token: str, origin: str = ALLOWED) -> dict[str, str]:
    return {"X-Mainland-Visitor": token, "Origin": origin}


def post(client, token: str, text: str, client_id: str | None = None, origin: str = ALLOWED, channel: str = "site"):
    return client.post(f"/chat/{channel}/messages", json={"client_id": client_id or str(uuid.uuid4()), "text": text},
                       headers=headers(token, origin))


def history(client, token: str, origin: str = ALLOWED) -> list[dict]:
    response = client.get("/chat/site/messages", headers=headers(token, origin))
    assert response.status_code == 200
    return response.get_json()["messages"]


def test_a_message_starts_a_conversation_in_the_queue(client, db):
    response = post(client, visitor(), "Where is my parcel?")
    assert response.status_code == 200 and response.get_json()["ok"] is True
    [conversation] = db.recent_conversations()
    assert conversation["channel"] == "site" and conversation["status"] == "new"
    [message] = db.conversation_messages(conversation["id"])
    assert message["text"] == "Where is my parcel?" and message["direction"] == "in"


def test_a_resend_with_the_same_client_id_is_stored_once(client, db):
    token, client_id = visitor(), str(uuid.uuid4())
    first = post(client, token, "Hello", client_id).get_json()
    again = post(client, token, "Hello", client_id).get_json()
    assert first["duplicate"] is False and again["duplicate"] is True
    assert again["message"]["id"] == first["message"]["id"]
    assert [m["text"] for m in history(client, token)] == ["Hello"]
    [conversation] = db.recent_conversations()
    assert len(db.conversation_messages(conversation["id"])) == 1


def test_the_visitor_finds_the_whole_conversation_by_their_token(client, db):
    token = visitor()
    for text in ("First", "Second", "Third"):
        assert post(client, token, text).status_code == 200
    shown = history(client, token)
    assert [m["text"] for m in shown] == ["First", "Second", "Third"]
    assert {m["from"] for m in shown} == {"visitor"}
    assert len(db.recent_conversations()) == 1  # one visitor, one conversation


def test_another_visitor_sees_nothing_of_it(client, db):
    post(client, visitor(), "My secret order 4711")
    other = visitor()
    assert history(client, other) == []
    post(client, other, "Hi")
    assert [m["text"] for m in history(client, other)] == ["Hi"]
    assert len(db.recent_conversations()) == 2


@pytest.mark.parametrize("token", ["", "short", "x" * 42, "a" * 43 + "!"])
def test_a_missing_or_malformed_visitor_token_is_refused(client, db, token):
    assert post(client, token, "Hi").status_code == 401
    assert client.get("/chat/site/messages", headers=headers(token)).status_code == 401
    assert db.recent_conversations() == []


@pytest.mark.parametrize("origin", [EVIL, "null"])
def test_a_foreign_site_is_refused_and_stores_nothing(client, db, origin):
    token = visitor()
    response = post(client, token, "Hi", origin=origin)
    assert response.status_code == 403
    assert "Access-Control-Allow-Origin" not in response.headers
    assert client.get("/chat/site/messages", headers=headers(token, origin)).status_code == 403
    assert db.recent_conversations() == []


def test_the_allowed_site_gets_cors_for_itself_only(client):
    response = post(client, visitor(), "Hi")
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "Origin" in response.headers["Vary"]


def test_preflight_names_the_visitor_header_for_the_allowed_site(client):
    response = client.options("/chat/site/messages", headers={
        "Origin": ALLOWED, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, x-mainland-visitor"})
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "X-Mainland-Visitor" in response.headers["Access-Control-Allow-Headers"]
    refused = client.options("/chat/site/messages", headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"})
    assert refused.status_code == 403 and "Access-Control-Allow-Origin" not in refused.headers


@pytest.mark.parametrize("path", ["/chat/nope/messages", "/chat/closed/messages", "/chat/closed/config"])
def test_unknown_or_disabled_channel_is_404(client, path):
    assert client.get(path, headers=headers(visitor())).status_code == 404


def test_a_visitor_is_limited_per_minute_and_others_are_not(app_config):
    app_config["channels"]["site"]["per_visitor_per_minute"] = 3
    client = create_app(app_config).test_client()
    token = visitor()
    statuses = [post(client, token, f"Message {n}").status_code for n in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = post(client, token, "Again")
    assert refused.get_json()["error"] == "busy" and int(refused.headers["Retry-After"]) > 0
    assert post(client, visitor(), "Someone else").status_code == 200


def test_one_address_is_limited_per_hour(app_config):
    app_config["channels"]["site"]["per_ip_per_hour"] = 2
    client = create_app(app_config).test_client()
    statuses = [post(client, visitor(), "Hi").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_too_long_and_empty_messages_are_refused(client, db):
    token = visitor()
    assert post(client, token, "x" * 4001).status_code == 413
    assert post(client, token, "   ").status_code == 400
    assert client.post("/chat/site/messages", data=b"\xff{", content_type="application/json",
                       headers=headers(token)).status_code == 400
    assert post(client, token, "Hi", client_id="not-a-uuid").status_code == 400
    assert db.recent_conversations() == []


def test_markup_from_a_visitor_is_kept_as_text(client, db):
    token = visitor()
    post(client, token, "<img src=x onerror=alert(1)> hi\x00")
    [shown] = history(client, token)
    assert shown["text"] == "<img src=x onerror=alert(1)> hi"
    [conversation] = db.recent_conversations()
    [message] = db.conversation_messages(conversation["id"])
    assert message["html"] is None


def test_an_agent_reply_reaches_the_widget_once_it_is_sent(app, client, db):
    token = visitor()
    post(client, token, "Where is my parcel?")
    [conversation] = db.recent_conversations()
    mainland = app.extensions["mainland"]
    queue_reply(mainland, db, conversation["id"], "It arrives tomorrow.")
    assert [m["from"] for m in history(client, token)] == ["visitor"]  # queued: not yet the visitor's to read
    assert send_due(mainland, db).sent == 1
    shown = history(client, token)
    assert [(m["from"], m["text"]) for m in shown] == [("visitor", "Where is my parcel?"),
                                                       ("team", "It arrives tomorrow.")]
    assert shown[1]["status"] == "sent"
    assert history(client, visitor()) == []


def test_an_internal_note_never_reaches_the_widget(app, client, db):
    token = visitor()
    post(client, token, "Hi")
    [conversation] = db.recent_conversations()
    db.execute("INSERT INTO messages (conversation_id, channel, external_id, direction, text, received_at) "
               "VALUES (?, 'site', 'note-1', 'note', 'customer is rude', '2026-01-01T00:00:00Z')",
               (conversation["id"],))
    assert [m["text"] for m in history(client, token)] == ["Hi"]


def test_config_speaks_the_visitors_language_with_the_sites_colour(client):
    english = client.get("/chat/site/config?lang=en", headers={"Origin": ALLOWED}).get_json()
    dutch = client.get("/chat/site/config?lang=nl-NL", headers={"Origin": ALLOWED}).get_json()
    assert english["color"] == "#224466" and english["title"] == "Example Ltd"
    assert english["language"] == "en" and dutch["language"] == "nl"
    assert english["words"]["send"] == "Send"
    assert set(dutch["words"]) == set(english["words"])


def test_the_widget_script_is_served_small(client):
    response = client.get("/chat/widget.js")
    assert response.status_code == 200 and response.mimetype == "text/javascript"
    assert len(gzip.compress(response.get_data())) < 50_000  # the issue's budget, compressed as sent
    assert "innerHTML" not in response.get_data(as_text=True)  # visitors' and agents' text only as text


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS"])
def test_head_and_options_of_a_valid_post_store_nothing(client, db, method):
    token = visitor()
    response = client.open("/chat/site/messages", method=method, headers=headers(token),
                           json={"client_id": str(uuid.uuid4()), "text": "Hi"})
    assert response.status_code in (200, 204)
    assert db.recent_conversations() == []
    assert history(client, token) == []


OFFICE = {"policy": {"first_response": {"desired": "2h", "adequate": "8h"}},
          "business_hours": {"timezone": "Europe/Amsterdam", "hours": {"weekdays": "09:00-17:00"}}}


def test_the_widget_tells_when_to_expect_an_answer_while_the_team_is_in(app_config, frozen_clock):
    app_config["service_levels"] = OFFICE
    client = create_app(app_config).test_client()
    frozen_clock.set(dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC))  # Monday 11:00 in Amsterdam
    english = client.get("/chat/site/config?lang=en").get_json()["availability"]
    dutch = client.get("/chat/site/config?lang=nl").get_json()["availability"]
    assert english == {"open": True, "expect": "We usually answer within 2 business hours.", "answer_by": None}
    assert dutch["open"] is True and "2 werkuren" in dutch["expect"]


def test_the_widget_says_when_the_team_is_back_on_a_saturday(app_config, frozen_clock):
    app_config["service_levels"] = OFFICE
    client = create_app(app_config).test_client()
    frozen_clock.set(dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC))  # Saturday
    availability = client.get("/chat/site/config?lang=en").get_json()["availability"]
    assert availability["open"] is False
    assert "{when}" in availability["expect"]
    # Monday 09:00 in Amsterdam (08:00 UTC) plus the two-hour target.
    assert availability["answer_by"].startswith("2026-11-30T10:00:00")


def test_without_business_hours_the_team_is_always_in(client):  # and the default target is one hour
    availability = client.get("/chat/site/config?lang=en").get_json()["availability"]
    assert availability == {"open": True, "expect": "We usually answer within 1 hour.", "answer_by": None}


def test_articles_from_the_help_center_for_what_the_visitor_types(app_config):
    from inbox import helpcenter
    from inbox.store.base import now_iso

    app_config["help_center"] = {"enabled": True}
    app_config["base_url"] = "https://inbox.example.com"
    app = create_app(app_config)
    store = app.extensions["mainland"].open_store()
    now = now_iso()
    for title, body, published in (("How refunds work", "We refund within 5 working days.", True),
                                   ("Refunds for staff", "Internal only.", False)):
        answer_id = store.answers.create(title=title, body=body, language="en", tags=[], owner_id=None, now=now)
        store.save_help_article(answer_id, slug=helpcenter.slugify(title), category_id=None, summary="",
                                article_key=helpcenter.slugify(title), published=published, actor="test", now=now)
    store.close()
    client = app.test_client()
    found = client.get("/chat/site/articles?q=refund&lang=en", headers={"Origin": ALLOWED}).get_json()["articles"]
    assert [a["title"] for a in found] == ["How refunds work"]
    assert found[0]["url"] == "https://inbox.example.com/help/en/how-refunds-work"
    assert client.get("/chat/site/articles?q=parcel&lang=en").get_json()["articles"] == []
    assert client.get("/chat/site/articles?q=refund", headers={"Origin": EVIL}).status_code == 403


def test_no_articles_while_the_help_center_is_off(client):
    assert client.get("/chat/site/articles?q=refund").get_json()["articles"] == []


def test_every_chat_message_gets_the_triage_verdict(client, db):
    token = visitor()
    post(client, token, "Where is my parcel?")
    [conversation] = db.recent_conversations()
    [verdict] = [r[0] for r in db.execute("SELECT spam_verdict FROM messages WHERE conversation_id = ?",
                                          (conversation["id"],))]
    assert verdict is not None


def _answered(app, client, db) -> tuple[str, int]:
    """A visitor's question with the team's sent reply; the visitor's token and the reply's message id."""
    token = visitor()
    post(client, token, "Where is my parcel?")
    [conversation] = db.recent_conversations()
    mainland = app.extensions["mainland"]
    queue_reply(mainland, db, conversation["id"], "It arrives tomorrow.")
    send_due(mainland, db)
    [reply] = [m for m in history(client, token) if m["from"] == "team"]
    return token, reply["id"]


def delivery_status(db, message_id: int) -> str:
    return db.execute("SELECT delivery_status FROM messages WHERE id = ?", (message_id,)).fetchone()[0]


def test_the_widgets_delivered_and_read_markers_move_the_reply_forward_only(app, client, db):
    token, reply_id = _answered(app, client, db)
    receipt = client.post("/chat/site/receipts", json={"delivered": [reply_id]}, headers=headers(token))
    assert receipt.status_code == 200 and receipt.get_json()["moved"] == 1
    assert delivery_status(db, reply_id) == "delivered"
    client.post("/chat/site/receipts", json={"read": [reply_id]}, headers=headers(token))
    assert delivery_status(db, reply_id) == "read"
    late = client.post("/chat/site/receipts", json={"delivered": [reply_id]}, headers=headers(token))
    assert late.get_json()["moved"] == 0 and delivery_status(db, reply_id) == "read"
    assert [m["status"] for m in history(client, token) if m["from"] == "team"] == ["read"]


def test_another_visitor_cannot_mark_a_reply_read(app, client, db):
    _token, reply_id = _answered(app, client, db)
    stranger = client.post("/chat/site/receipts", json={"read": [reply_id]}, headers=headers(visitor()))
    assert stranger.get_json()["moved"] == 0
    assert delivery_status(db, reply_id) == "sent"
    assert client.post("/chat/site/receipts", json={"read": [reply_id]},
                       headers=headers(visitor(), EVIL)).status_code == 403


def test_the_visitor_sees_when_an_agent_is_typing(client, db):
    from inbox.store.base import now_iso
    from tests.test_web_auth import make_agent

    token = visitor()
    post(client, token, "Hello?")
    [conversation] = db.recent_conversations()
    assert client.get("/chat/site/messages", headers=headers(token)).get_json()["typing"] is False
    agent = make_agent(db)
    db.touch_presence(conversation["id"], agent["id"], "typing", now_iso())
    assert client.get("/chat/site/messages", headers=headers(token)).get_json()["typing"] is True
    assert client.get("/chat/site/messages", headers=headers(visitor())).get_json()["typing"] is False
    db.touch_presence(conversation["id"], agent["id"], "viewing", now_iso())
    assert client.get("/chat/site/messages", headers=headers(token)).get_json()["typing"] is False


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS"])
def test_head_and_options_of_a_receipt_move_nothing(app, client, db, method):
    token, reply_id = _answered(app, client, db)
    response = client.open("/chat/site/receipts", method=method, headers=headers(token), json={"read": [reply_id]})
    assert response.status_code in (204, 405)
    assert delivery_status(db, reply_id) == "sent"


USER_SECRET = "site-identity-secret"


def signed(user_id: str, secret: str = USER_SECRET) -> dict[str, str]:
    import hashlib
    import hmac

    return {"X-Mainland-User": user_id,
            "X-Mainland-User-Hash": hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()}


@pytest.fixture
def signed_in_app(app_config):
    app_config["channels"]["site"]["identity_secret"] = USER_SECRET
    return create_app(app_config)


def test_a_signed_in_user_finds_their_chat_on_another_device(signed_in_app):
    client = signed_in_app.test_client()
    laptop, phone = visitor(), visitor()
    sent = client.post("/chat/site/messages", json={"client_id": str(uuid.uuid4()), "text": "From my laptop"},
                       headers={**headers(laptop), **signed("user-42")})
    assert sent.status_code == 200
    on_phone = client.get("/chat/site/messages", headers={**headers(phone), **signed("user-42")}).get_json()
    assert [m["text"] for m in on_phone["messages"]] == ["From my laptop"]
    # The same browser without the user's proof is just a visitor, who sees nothing of it.
    assert history(client, phone) == []
    assert client.get("/chat/site/messages", headers={**headers(phone), **signed("user-43")}).get_json()[
        "messages"] == []


@pytest.mark.parametrize("proof", [{"X-Mainland-User": "user-42", "X-Mainland-User-Hash": "0" * 64},
                                   {"X-Mainland-User": "user-42"}, "wrong secret"])
def test_a_user_id_without_the_sites_proof_is_refused(signed_in_app, proof):
    client = signed_in_app.test_client()
    proof = signed("user-42", "guessed") if proof == "wrong secret" else proof
    response = client.get("/chat/site/messages", headers={**headers(visitor()), **proof})
    assert response.status_code == 401


def test_a_channel_without_an_identity_secret_takes_no_users(client):
    response = client.get("/chat/site/messages", headers={**headers(visitor()), **signed("user-42", "")})
    assert response.status_code == 401


def test_the_generic_webhook_endpoint_is_no_way_around_the_chats_checks(client, db):
    response = client.post("/webhooks/site", json={"client_id": str(uuid.uuid4()), "text": "Hi"},
                           headers=headers(visitor(), EVIL))
    assert response.status_code == 404
    assert db.recent_conversations() == []


def test_anonymous_visitors_stand_in_names_are_never_compared_as_peoples_names(client, db, monkeypatch):
    # "Website visitor 3f9a1c" is the widget's stand-in, not a name: compared as one, each post was
    # weighed against every other anonymous visitor of the day (slower with each visitor, bench/chat_load.py).
    from inbox import identity

    compared = []
    similarity = identity.name_similarity
    monkeypatch.setattr(identity, "name_similarity", lambda a, b: compared.append((a, b)) or similarity(a, b))
    for _ in range(5):
        assert post(client, visitor(), "Hello").status_code == 200
    assert compared == []
    names = dict(db.execute("SELECT display_name, name_key FROM customers").fetchall())
    assert len(names) == 5 and all(n.startswith("Website visitor ") for n in names)
    assert set(names.values()) == {""}, "no matching key from a stand-in"

    # Visitors who give their names are compared as everyone is.
    for token in (visitor(), visitor()):
        client.post("/chat/site/messages", json={"client_id": str(uuid.uuid4()), "text": "Hi", "name": "Jan de Vries"},
                    headers=headers(token))
    assert ("jan de vries", "jan de vries") in compared
