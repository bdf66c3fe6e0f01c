"""Outbound webhooks (#15): events recorded where they happen, signed deliveries to a loopback receiver,
retries with backoff and no second delivery after success, replay, pause after failing, the SSRF guard."""

from __future__ import annotations

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from inbox import webhooks_out
from inbox.config import from_mapping
from inbox.mail import parse_email
from inbox.models import FetchResult
from inbox.runtime import Mainland
from inbox.store.base import iso
from tests.mailfactory import raw_mail

SECRET = "whsec_test-secret-for-the-receiver"


class Receiver:
    """A loopback HTTP server that records each request and answers with the next scripted status."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append({"headers": dict(self.headers), "body": body, "path": self.path})
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                answer = b"ok" if status < 300 else b"receiver trouble " * 100
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks/mainland"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self) -> list[dict]:
        return [json.loads(r["body"]) for r in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def make_mainland(tmp_path, receiver: Receiver | None = None, **extra) -> Mainland:
    allow = [f"127.0.0.1:{receiver.port}"] if receiver else []
    config = from_mapping({"database": str(tmp_path / "m.db"), "data_dir": str(tmp_path / "data"),
                           "mail_domain": "mainland.test", "fetch_allow_hosts": allow,
                           "channels": {"mail": {"kind": "imap", "host": "imap.example.org", "username": "u",
                                                 "address": "support@mainland.test",
                                                 "password": "p"}}, **extra}, base=tmp_path)
    return Mainland(config)


def subscribe(mainland: Mainland, store, url: str, events=("message.received",)) -> int:
    sealed = json.dumps(mainland.secret_box().seal(SECRET))
    with store.write():
        return store.create_webhook_subscription(url=url, events=list(events), secret=sealed, created_by=None,
                                                 now=iso(dt.datetime.now(dt.UTC)))


def ingest(mainland: Mainland, store, message_id: str = "<w1@example.net>", body: str = "My order is late.") -> None:
    item = parse_email(raw_mail(message_id=message_id, body=body), channel="mail")
    mainland.ingestor(store).ingest("mail", FetchResult(items=[item], cursor=None))


@pytest.fixture
def setup(tmp_path, receiver, frozen_clock):
    mainland = make_mainland(tmp_path, receiver, webhooks={"pause_after": "2h"})
    store = mainland.open_store(migrate=True)
    yield mainland, store, receiver, frozen_clock
    store.close()


pytestmark = pytest.mark.server


def test_a_delivery_is_signed_over_timestamp_and_body_and_carries_the_event(setup):
    mainland, store, receiver, frozen = setup
    subscribe(mainland, store, receiver.url)
    ingest(mainland, store, body="My order is late.")

    report = webhooks_out.deliver_due(mainland, store)

    assert report.delivered == 1
    [request] = receiver.requests
    header = request["headers"]["Mainland-Signature"]
    assert webhooks_out.verify(SECRET, header, request["body"], now=frozen.now().timestamp())
    assert header.startswith(f"t={int(frozen.now().timestamp())},v1=")
    assert not webhooks_out.verify("whsec_another", header, request["body"], now=frozen.now().timestamp())
    assert not webhooks_out.verify(SECRET, header, request["body"] + b" ", now=frozen.now().timestamp())
    # An old signature is refused by the documented check (a replayed capture).
    assert not webhooks_out.verify(SECRET, header, request["body"], now=frozen.now().timestamp() + 600)
    event = json.loads(request["body"])
    assert event["type"] == "message.received"
    assert event["id"].startswith("evt_") and request["headers"]["Mainland-Event-Id"] == event["id"]
    assert "Mainland-Replay" not in request["headers"]
    data = event["data"]
    assert data["message"]["text"].startswith("My order is late.")
    assert data["conversation"]["subject"] == "Order 1234 arrived broken"
    assert {"kind": "email", "value": "jane@example.net"} in data["customer"]["identities"]
    assert "secret" not in request["body"].decode()


def test_a_500_is_retried_with_backoff_and_the_event_is_delivered_once(setup):
    mainland, store, receiver, frozen = setup
    sub = subscribe(mainland, store, receiver.url)
    receiver.statuses = [500]
    ingest(mainland, store)

    first = webhooks_out.deliver_due(mainland, store)
    [delivery] = store.webhook_deliveries(sub)
    assert first.retrying == 1 and delivery["state"] == "retry_wait" and delivery["status_code"] == 500
    assert len(delivery["response_body"]) <= webhooks_out.RESPONSE_CHARS
    assert delivery["next_at"] >= iso(frozen.now())

    frozen.advance(hours=1, seconds=1)  # past the longest first backoff
    second = webhooks_out.deliver_due(mainland, store)
    frozen.advance(hours=2)
    third = webhooks_out.deliver_due(mainland, store)

    assert (second.delivered, third.delivered) == (1, 0)
    ids = [e["id"] for e in receiver.events()]
    assert len(ids) == 2 and ids[0] == ids[1], "the retry carries the same event id"
    [delivery] = store.webhook_deliveries(sub)
    assert (delivery["state"], delivery["attempts"], delivery["status_code"]) == ("delivered", 2, 200)


def test_replay_sends_the_same_event_again_marked_as_a_replay(setup):
    mainland, store, receiver, frozen = setup
    sub = subscribe(mainland, store, receiver.url)
    ingest(mainland, store)
    webhooks_out.deliver_due(mainland, store)
    [original] = store.webhook_deliveries(sub)

    with store.write():
        store.replay_webhook_delivery(original["id"], iso(frozen.now()))
    webhooks_out.deliver_due(mainland, store)

    first, again = receiver.requests
    assert again["body"] == first["body"]
    assert again["headers"]["Mainland-Event-Id"] == first["headers"]["Mainland-Event-Id"]
    assert again["headers"]["Mainland-Replay"] == "true" and "Mainland-Replay" not in first["headers"]
    assert webhooks_out.verify(SECRET, again["headers"]["Mainland-Signature"], again["body"],
                               now=frozen.now().timestamp())


def test_a_subscription_failing_for_pause_after_is_paused_and_resumes(setup):
    mainland, store, receiver, frozen = setup
    sub = subscribe(mainland, store, receiver.url)
    receiver.statuses = [500, 503, 502]
    ingest(mainland, store)

    webhooks_out.deliver_due(mainland, store)
    frozen.advance(hours=1, minutes=1)
    webhooks_out.deliver_due(mainland, store)
    assert store.webhook_subscription(sub)["state"] == "active", "failing for 1 h is not yet 2 h"
    frozen.advance(hours=1, minutes=1)
    report = webhooks_out.deliver_due(mainland, store)

    assert report.paused == 1
    paused = store.webhook_subscription(sub)
    assert paused["state"] == "paused" and "502" in paused["paused_reason"]
    assert store.conn.execute("SELECT count(*) FROM audit_log WHERE action = 'webhook_paused'").fetchone()[0] == 1
    frozen.advance(hours=2)
    ingest(mainland, store, message_id="<w2@example.net>")
    webhooks_out.deliver_due(mainland, store)
    assert len(receiver.requests) == 3, "a paused subscription gets nothing"

    with store.write():
        store.set_webhook_subscription_state(sub, "active", iso(frozen.now()))
    webhooks_out.deliver_due(mainland, store)
    assert len(receiver.requests) == 3 + 1, "resumed: the held delivery goes out (the new event was not fanned to it)"
    assert store.webhook_subscription(sub)["failing_since"] is None


def test_one_success_ends_the_run_of_failures(setup):
    mainland, store, receiver, frozen = setup
    sub = subscribe(mainland, store, receiver.url)
    receiver.statuses = [500, 200, 500]
    ingest(mainland, store)
    webhooks_out.deliver_due(mainland, store)
    frozen.advance(hours=1, minutes=1)
    webhooks_out.deliver_due(mainland, store)
    ingest(mainland, store, message_id="<w2@example.net>")
    frozen.advance(hours=1, minutes=1)
    webhooks_out.deliver_due(mainland, store)

    assert store.webhook_subscription(sub)["state"] == "active"
    assert store.webhook_subscription(sub)["failing_since"] == iso(frozen.now())


def test_a_loopback_receiver_not_allow_listed_is_refused_without_a_request(tmp_path, receiver, frozen_clock):
    mainland = make_mainland(tmp_path, None)  # the receiver's host is not in fetch_allow_hosts
    store = mainland.open_store(migrate=True)
    sub = subscribe(mainland, store, receiver.url)
    ingest(mainland, store)

    report = webhooks_out.deliver_due(mainland, store)

    assert report.retrying == 1 and receiver.requests == []
    [delivery] = store.webhook_deliveries(sub)
    assert delivery["status_code"] is None and "port" in delivery["last_error"]
    store.close()


def test_a_redirect_is_not_followed(tmp_path, frozen_clock):
    moved = Receiver()
    target = Receiver()

    def redirect(handler_self):
        handler_self.send_response(307)
        handler_self.send_header("Location", target.url)
        handler_self.send_header("Content-Length", "0")
        handler_self.end_headers()

    moved.server.RequestHandlerClass.do_POST = redirect
    try:
        config = from_mapping({"database": str(tmp_path / "m.db"), "data_dir": str(tmp_path / "data"),
                               "fetch_allow_hosts": [f"127.0.0.1:{moved.port}", f"127.0.0.1:{target.port}"],
                               "channels": {"mail": {"kind": "imap", "host": "imap.example.org", "username": "u",
                                                 "address": "support@mainland.test",
                                                     "password": "p"}}}, base=tmp_path)
        mainland = Mainland(config)
        store = mainland.open_store(migrate=True)
        sub = subscribe(mainland, store, moved.url)
        ingest(mainland, store)
        webhooks_out.deliver_due(mainland, store)
        [delivery] = store.webhook_deliveries(sub)
        assert delivery["status_code"] == 307 and delivery["state"] == "retry_wait"
        assert target.requests == []
        store.close()
    finally:
        moved.close()
        target.close()


def test_a_delivery_whose_sender_stopped_mid_request_is_simply_sent_again(setup):
    mainland, store, receiver, frozen = setup
    sub = subscribe(mainland, store, receiver.url)
    ingest(mainland, store)
    webhooks_out.fan_out(store)
    now = frozen.now()
    with store.write():  # a sender claimed it, started the request, and died
        [claimed] = store.claim_webhook_deliveries(iso(now), iso(now + dt.timedelta(seconds=30)))
        assert store.start_webhook_attempt(claimed["id"], claimed["lease_until"], iso(now),
                                           iso(now + dt.timedelta(seconds=webhooks_out.LEASE_SECONDS)))

    assert webhooks_out.deliver_due(mainland, store).delivered == 0, "not while its lease holds"
    frozen.advance(seconds=webhooks_out.LEASE_SECONDS + 1)
    assert webhooks_out.deliver_due(mainland, store).delivered == 1

    [delivery] = store.webhook_deliveries(sub)
    assert delivery["attempts"] == 2 and len(receiver.requests) == 1
    assert receiver.events()[0]["id"] == claimed["event_id"]


def test_the_worker_delivers_events(setup):
    from inbox.worker import Worker

    mainland, store, receiver, frozen = setup
    subscribe(mainland, store, receiver.url)
    ingest(mainland, store)
    worker = Worker(mainland)
    worker.start()
    try:
        assert worker.wait_until(lambda: worker.runs["webhooks"] >= 1, timeout=30)
    finally:
        worker.stop()
    assert [e["type"] for e in receiver.events()] == ["message.received"]


def test_a_secret_that_cannot_be_opened_fails_the_delivery_not_the_job(setup):
    mainland, store, receiver, frozen = setup
    good = subscribe(mainland, store, receiver.url)
    with store.write():
        bad = store.create_webhook_subscription(url=receiver.url, events=["message.received"],
                                                secret='{"$encrypted": "not-a-fernet-token"}', created_by=None,
                                                now=iso(frozen.now()))
    ingest(mainland, store)

    report = webhooks_out.deliver_due(mainland, store)

    assert (report.delivered, report.retrying) == (1, 1) and len(receiver.requests) == 1
    [failed] = store.webhook_deliveries(bad)
    assert "cannot be decrypted" in failed["last_error"]
    assert store.webhook_deliveries(good)[0]["state"] == "delivered"
