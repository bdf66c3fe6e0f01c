"""The generic webhook endpoint `POST /webhooks/<channel>` through the Flask test client and a real SQLite file.

Two channels take webhooks: "tg", a Telegram bot in webhook mode (secret-token header), and
"signed", a small HMAC-signed test channel defined below (the Meta style: `X-Hub-Signature-256`
over the raw body, plus a `hub.challenge` handshake), which shows the endpoint is generic.
reliability.md WH-01..WH-06, IN-45, IN-46, IN-49, FI-07.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, ClassVar

import pytest

from connectors.base import Connector, ItemError, PermanentError, Setting, WebhookRequest, pick
from connectors.telegram import SECRET_HEADER
from inbox.models import Author, FetchResult, InboundItem
from inbox.runtime import Mainland
from inbox.store import Store

TG_SECRET = "tg-webhook-Secret_0123"
HOOK_SECRET = b"app-secret-for-the-test-channel"


class SignedHookConnector(Connector):
    """A push-only test channel signed like Meta's webhooks: HMAC-SHA256 of the raw body."""

    kind = "signedhook"
    display_name = "Signed test hook"
    push_only = True
    settings: ClassVar = (Setting("app_secret", required=True, secret=True, help="HMAC key"),
                          Setting("verify_token", default="", help="hub.verify_token"))

    def fetch(self, cursor):  # pragma: no cover - push only
        return FetchResult(items=[], cursor=cursor)

    def send(self, reply):  # pragma: no cover - not used here
        raise PermanentError("no replies")

    def verify_webhook(self, request: WebhookRequest) -> None:
        given = request.headers.get("X-Hub-Signature-256") or ""
        expected = "sha256=" + hmac.new(self.config["app_secret"].encode(), request.body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise PermanentError("bad signature")

    def parse_webhook(self, request: WebhookRequest) -> FetchResult:
        data = json.loads(request.body)  # raises on garbage: the endpoint must cope
        if data.get("explode"):
            raise ItemError("the body has no message")
        item = InboundItem(channel=self.name, external_id=str(pick(data, "id")),
                           author=Author(handle=str(pick(data, "from")), identity_kind="signedhook"),
                           text=str(data.get("text", "")))
        return FetchResult(items=[item], cursor=None)

    def webhook_challenge(self, args: dict[str, str]) -> str | None:
        token = self.config["verify_token"]
        if args.get("hub.mode") == "subscribe" and token and hmac.compare_digest(
                args.get("hub.verify_token", "").encode(), token.encode()):
            return args.get("hub.challenge", "")
        return None


@pytest.fixture
def app_config(app_config):
    app_config["channels"] = {
        "tg": {"kind": "telegram", "token": "7000000001:AAE-test", "api_url": "http://127.0.0.1:9",
               "mode": "webhook", "webhook_secret": TG_SECRET},
        "tg-polling": {"kind": "telegram", "token": "7000000002:AAE-test", "api_url": "http://127.0.0.1:9"},
        "tg-off": {"kind": "telegram", "token": "7000000003:AAE-test", "enabled": False, "mode": "webhook",
                   "webhook_secret": TG_SECRET},
        "social": {"kind": "mastodon", "base_url": "https://acme.social", "access_token": "t"},
        "contact": {"kind": "webform", "reply_channel": "social"},
    }
    return app_config


@pytest.fixture
def app(app, app_config):
    # The test channel's connector is not installed: swap in a Mainland that knows it.
    from inbox.config import from_mapping

    config = dict(app_config)
    config["channels"] = {**app_config["channels"],
                          "signed": {"kind": "signedhook", "app_secret": HOOK_SECRET.decode(), "verify_token": "vt"}}
    app.extensions["mainland"] = Mainland(from_mapping(config, base=app.extensions["mainland"].config.data_dir),
                                          extra_connectors=[SignedHookConnector])
    return app


@pytest.fixture
def db(app, app_config):
    store = Store(app_config["database"])
    yield store
    store.close()


def update(update_id: int = 795120331, message_id: int = 4187, text: str = "My order #1234 arrived broken") -> dict:
    return {"update_id": update_id, "message": {
        "message_id": message_id, "date": 1741169702, "text": text,
        "from": {"id": 111222333, "is_bot": False, "first_name": "Jane", "username": "janedoe"},
        "chat": {"id": 111222333, "first_name": "Jane", "type": "private"}}}


def post_tg(client, body: bytes | dict, secret: str | None = TG_SECRET, channel: str = "tg"):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {SECRET_HEADER: secret} if secret is not None else {}
    return client.post(f"/webhooks/{channel}", data=data, headers=headers, content_type="application/json")


def signed(body: bytes, secret: bytes = HOOK_SECRET) -> dict[str, str]:
    return {"X-Hub-Signature-256": "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()}


def test_verified_update_is_stored_and_answered_after_the_commit(client, db):
    response = post_tg(client, update())
    assert response.status_code == 200 and response.get_json()["stored"] == 1
    [conversation] = db.recent_conversations()
    [message] = db.conversation_messages(conversation["id"])
    assert (message["external_id"], message["text"]) == ("111222333:4187", "My order #1234 arrived broken")
    assert not conversation["public"]
    assert db.channel_health()["tg"]["last_success_at"], "a delivery counts as the channel working"


def test_replayed_update_is_stored_once(client, db):
    body = json.dumps(update()).encode()
    assert post_tg(client, body).get_json()["stored"] == 1
    again = post_tg(client, body)
    assert again.status_code == 200 and again.get_json()["duplicate"] is True
    # Re-serialised differently (another key order) it is still the same update and message.
    shuffled = json.dumps(update(), sort_keys=True, indent=1).encode()
    assert post_tg(client, shuffled).status_code == 200
    assert db.counts()["messages"] == 1
    # The same message inside a new update (a webhook and a poll overlapping) is still one row.
    assert post_tg(client, update(update_id=795120400)).get_json()["duplicates"] == 1
    assert db.counts()["messages"] == 1


@pytest.mark.parametrize("secret", [None, "", "wrong", TG_SECRET[:-1], TG_SECRET + "x", "x" * 300])
def test_wrong_or_missing_secret_is_refused_and_nothing_is_stored(client, db, secret):
    response = post_tg(client, update(), secret=secret)
    assert response.status_code == 403
    assert db.counts()["messages"] == 0 and db.counts()["quarantined"] == 0
    [refusal] = db.inbound_webhooks.refusals("tg")
    assert "X-Telegram-Bot-Api-Secret-Token" in refusal.reason and TG_SECRET not in refusal.reason
    assert "webhook refused" in db.channel_health()["tg"]["last_error"]


def test_unverified_body_is_never_parsed(client, db):
    # Bodies that would break a parser get 403 (not a 500) when their signature is wrong.
    for body in (b"{not json", b"[" * 50_000 + b"]" * 50_000, b"\xff\xfe\x00garbage"):
        assert post_tg(client, body, secret="wrong").status_code == 403
        assert client.post("/webhooks/signed", data=body, headers=signed(body, b"other-secret")).status_code == 403
    assert db.counts()["messages"] == 0 and db.counts()["quarantined"] == 0


def test_verified_but_unreadable_body_is_quarantined_once(client, db):
    body = b"[" * 50_000 + b"]" * 50_000  # JSON nested far too deep (IN-49)
    first = client.post("/webhooks/signed", data=body, headers=signed(body))
    assert first.status_code == 200 and first.get_json()["quarantined"] == 1
    assert client.post("/webhooks/signed", data=body, headers=signed(body)).get_json()["duplicate"]
    exploded = json.dumps({"explode": True}).encode()
    assert client.post("/webhooks/signed", data=exploded, headers=signed(exploded)).status_code == 200
    held = db.quarantined()
    assert len(held) == 2 and all(h["channel"] == "signed" for h in held)
    # The same for Telegram, whose update id cannot be read from such a body either.
    assert post_tg(client, body).get_json()["quarantined"] == 1
    assert post_tg(client, body).get_json()["duplicate"]
    assert db.counts()["messages"] == 0 and db.counts()["quarantined"] == 3


def test_signature_is_over_the_raw_bytes(client, db):
    # Emoji and \u escapes, signed over exactly these bytes (IN-46): accepted.
    body = '{"id": "m1", "from": "+31612345678", "text": "caf\\u00e9 \U0001f600 ok"}'.encode()
    response = client.post("/webhooks/signed", data=body, headers=signed(body))
    assert response.status_code == 200 and response.get_json()["stored"] == 1
    # The same body with a trailing newline no longer matches its signature (WH-01).
    assert client.post("/webhooks/signed", data=body + b"\n", headers=signed(body)).status_code == 403
    [conversation] = db.recent_conversations()
    assert db.conversation_messages(conversation["id"])[0]["text"] == "café \U0001f600 ok"


@pytest.mark.parametrize("channel", ["nope", "tg-off", "tg-polling", "social", "contact"])
def test_channels_without_webhooks_are_not_found(client, db, channel):
    assert post_tg(client, update(), channel=channel).status_code == 404
    assert db.counts()["messages"] == 0


def test_oversized_body_is_refused_before_reading(client, db):
    body = json.dumps(update(text="x" * (1024 * 1024))).encode()
    assert post_tg(client, body).status_code == 413
    assert db.counts()["messages"] == 0


def test_no_200_before_the_commit_and_the_retry_is_stored_once(app, client, db, monkeypatch):
    app.config["PROPAGATE_EXCEPTIONS"] = False
    calls = []

    def fail_once(self, *args: Any, **kwargs: Any):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the process died before the commit")
        return original(self, *args, **kwargs)

    original = Store.record_poll
    monkeypatch.setattr(Store, "record_poll", fail_once)
    failed = post_tg(client, update())
    assert failed.status_code == 500
    assert db.counts()["messages"] == 0, "the delivery was rolled back, so the provider retries"
    assert post_tg(client, update()).get_json()["stored"] == 1
    assert post_tg(client, update()).get_json()["duplicate"]
    assert db.counts()["messages"] == 1


def test_subscription_challenge_is_echoed_as_plain_text_only_with_the_right_token(client):
    args = {"hub.mode": "subscribe", "hub.verify_token": "vt", "hub.challenge": "<script>1</script>"}
    ok = client.get("/webhooks/signed", query_string=args)
    assert ok.status_code == 200 and ok.mimetype == "text/plain" and ok.get_data(as_text=True) == args["hub.challenge"]
    assert ok.headers["X-Content-Type-Options"] == "nosniff"
    wrong = client.get("/webhooks/signed", query_string={**args, "hub.verify_token": "guess"})
    assert wrong.status_code == 403
    assert client.get("/webhooks/tg").status_code == 405  # Telegram has no handshake
    assert client.get("/webhooks/nope").status_code == 404
