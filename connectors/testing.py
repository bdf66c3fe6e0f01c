"""The shared contract test kit: the promises every connector keeps, proved against its imitation.

A connector's test joins the contract in one line and says how to drive its channel:

    class TestTelegram(ConnectorContract):
        connector_class = TelegramConnector

        @pytest.fixture
        def channel(self, telegram_sandbox):        # the imitation server of the API
            return TelegramChannel(telegram_sandbox)  # a ChannelDriver (see below)

The kit then checks, through the real ingest pipeline and a real SQLite file: items arrive once,
oldest first, with stable unique ids; a fetch resumes from the saved cursor; a re-fetch stores
nothing twice; a malformed item goes to quarantine while the rest arrive; a reply is threaded to
the message it answers; retryable faults raise `RetryableError` with the channel's delay and
leave the cursor alone; an item's `raw` bytes parse again (`parse_raw`, as the quarantine's
reprocessing does) into the same item; no configured secret appears in the logs; and the
connection test (`probe()`) answers with a `ProbeResult`, without raising, when the channel's host
cannot be reached. Push-only
channels (web forms, webhooks) prove the same through `parse_webhook`.

Each promise is collected only for a connector that has the capability it needs, read from the
connector's declarations: a push-only connector does not get the polling tests at all (rather than
a skip), a connector without secret settings no secret test, one without `parse_raw` no round
trip, one without `fetch_raw` no check that its raw pages parse in another process as `fetch` would. A test class may say `push_only = True` when its driver's settings make a pollable connector
push-only (Telegram in webhook mode).

Third-party connectors use it the same way (`from connectors.testing import ConnectorContract`).

Fixture mode: instead of an imitation, a test class may name a folder of recorded exchanges
(`fixtures = Path(...)`) and a `RecordedChannel` subclass (`recorded_channel`). Each promise then
runs against a `connectors.fixtures.FixtureServer` serving `<fixtures>/shared/` (exchanges any test
may use: the "who am I" call, a send) and `<fixtures>/<promise>/` (the test's name without `test_`:
what the channel answers, in order, while that promise is checked), and fails when a request found
no recording or a recording of the promise was never asked for:

    class TestAcmeRecorded(ConnectorContract):
        connector_class = AcmeConnector
        fixtures = Path(__file__).parent / "fixtures" / "acme"
        recorded_channel = AcmeRecorded              # its settings() and replies_received()
"""

from __future__ import annotations

import logging
import pickle
import re
import socket
from pathlib import Path
from typing import Any, ClassVar

import pytest

from connectors.base import Connector, PermanentError, ProbeResult, RetryableError, WebhookRequest
from connectors.fixtures import Exchange, FixtureServer
from connectors.http import retry_after_seconds
from inbox.attachments import AttachmentStore
from inbox.ingest import Ingestor, IngestReport
from inbox.models import Author, FetchResult, OutboundReply
from inbox.store import Store


class ChannelDriver:
    """How a contract test drives one channel's imitation. Subclass it beside your test."""

    #: Settings for the connector under test (point them at the imitation).
    def settings(self) -> dict[str, Any]:
        raise NotImplementedError

    def customer_writes(self, count: int) -> list[str]:
        """Make `count` customers' items appear on the channel; return something identifying each."""
        raise NotImplementedError

    def customer_writes_malformed(self) -> None:
        """Make one item appear that the connector cannot understand."""
        raise NotImplementedError

    def replies_received(self) -> list[dict[str, Any]]:
        """What the channel received from us: each with at least `text` and `in_reply_to`
        (the channel's id of the message the reply answers)."""
        raise NotImplementedError

    def inject_fault(self, fault: str) -> bool:
        """Make the next request fail: "rate_limited" (with a retry delay) or "server_error".

        Return False when the channel has no such fault (IMAP has no 429)."""
        return False

    #: The delay (seconds) the imitation asks for with "rate_limited".
    rate_limit_delay: float | None = None

    def webhook_requests(self, count: int) -> list[WebhookRequest]:
        """For push-only channels: `count` signed requests as the channel would send them."""
        raise NotImplementedError

    def tamper(self, request: WebhookRequest) -> WebhookRequest:
        """For push-only channels: the same request with its body changed after signing."""
        raise NotImplementedError

    def unreachable_settings(self) -> dict[str, Any] | None:
        """`settings()` pointing at a loopback port where nothing listens (for the connection test), or
        None when the settings name no host. The default rewrites every `http://127.0.0.1:<port>` URL;
        override it when the host and port are settings of their own (IMAP)."""
        closed = free_loopback_port()
        changed = False
        settings = {}
        for key, value in self.settings().items():
            if isinstance(value, str) and _LOOPBACK_URL.search(value):
                value, changed = _LOOPBACK_URL.sub(f"http://127.0.0.1:{closed}", value), True
            settings[key] = value
        return settings if changed else None


_LOOPBACK_URL = re.compile(r"http://127\.0\.0\.1:\d+")

#: The folder of exchanges every test of a fixture folder may use (and need not use).
SHARED_FIXTURES = "shared"


class RecordedChannel(ChannelDriver):
    """A channel played from recorded exchanges (fixture mode): what customers "write" is already in
    the recordings of the test's folder, in the order the kit asks for it, so the driver's actions only
    say what the recordings hold. Subclass it to give `settings()` (point the base URL at
    `self.server.url`; the values fill the recordings' `{{placeholders}}`) and `replies_received()`
    (read the send requests from `self.server.received(...)`)."""

    def __init__(self, server: FixtureServer) -> None:
        self.server = server

    def customer_writes(self, count: int) -> list[str]:
        # The items are in the recorded pages; nothing to make.
        return [f"recorded-{n}" for n in range(count)]

    def customer_writes_malformed(self) -> None:
        """The malformed item is one of the recorded items."""

    def inject_fault(self, fault: str) -> bool:
        """True when the test's recordings hold the fault: a 429 for "rate_limited", a 5xx for "server_error"."""
        return bool(self._faults(fault))

    @property
    def rate_limit_delay(self) -> float | None:  # type: ignore[override]
        """The delay the recorded 429 asks for in its headers (override when the body says it)."""
        limited = self._faults("rate_limited")
        return retry_after_seconds(limited[-1].response.get("headers") or {}) if limited else None

    def _faults(self, fault: str) -> list[Exchange]:
        wanted = (lambda s: s == 429) if fault == "rate_limited" else (lambda s: s >= 500)
        return [e for e in self.server.exchanges if e.required and wanted(e.response["status"])]


def free_loopback_port() -> int:
    """A loopback port nothing listens on (bound, read and released at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


#: The capabilities each promise needs; a test class whose connector lacks one does not collect it.
NEEDS: dict[str, frozenset[str]] = {
    "test_oldest_first": frozenset({"poll"}),
    "test_refetch_from_scratch_is_deduplicated": frozenset({"poll"}),
    "test_malformed_item_is_quarantined_and_the_rest_arrive": frozenset({"poll"}),
    "test_retryable_fault_keeps_the_cursor": frozenset({"poll"}),
    "test_tampered_webhook_is_refused": frozenset({"push"}),
    "test_reply_is_threaded_to_the_message_it_answers": frozenset({"send"}),
    "test_no_secret_in_logs": frozenset({"secrets"}),
    "test_raw_parses_again_into_the_same_item": frozenset({"reprocess"}),
    "test_raw_page_parses_in_another_process_as_fetch_does": frozenset({"poll", "raw_pages"}),
}


def capabilities(connector_class: type[Connector], *, push: bool | None = None) -> frozenset[str]:
    """What a connector class declares it can do, as the contract's `NEEDS` names it."""
    found = {"push"} if (connector_class.push_only if push is None else push) else {"poll"}
    # A channel whose replies go out through another one (the `reply_channel` setting, as the outbox
    # reads it: web forms answer by email) sends nothing itself.
    if not any(setting.name == "reply_channel" for setting in connector_class.settings):
        found.add("send")
    if any(setting.secret for setting in connector_class.settings):
        found.add("secrets")
    if connector_class.parse_raw is not Connector.parse_raw:
        found.add("reprocess")
    if connector_class.fetches_raw():
        found.add("raw_pages")
    return frozenset(found)


class ConnectorContract:
    """Join this class in a connector's test module; see the module docstring."""

    connector_class: ClassVar[type[Connector]]
    channel_name: ClassVar[str] = "contract"
    #: Upper bound of fetch calls to drain the channel (guards against a cursor that never moves).
    max_pages: ClassVar[int] = 50
    #: Whether the channel under test only pushes; None: as `connector_class.push_only` declares.
    push_only: ClassVar[bool | None] = None

    #: For a test class whose connector class is only known when the tests run (a package installed by
    #: a fixture): what it can do, as `capabilities()` would read it, so the right promises are collected.
    declared_capabilities: ClassVar[frozenset[str] | None] = None

    #: Fixture mode: the folder of recorded exchanges (see the module docstring), and the driver that
    #: reads them. None: the test class overrides `channel` with a driver of its imitation.
    fixtures: ClassVar[Path | None] = None
    recorded_channel: ClassVar[type[RecordedChannel]] = RecordedChannel

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        connector_class = getattr(cls, "connector_class", None)
        if connector_class is not None:
            able = capabilities(connector_class, push=cls.push_only)
        elif cls.declared_capabilities is not None:
            able = cls.declared_capabilities
        else:
            return
        for name, needs in NEEDS.items():
            if not needs <= able:
                # Not a test of this class: pytest collects only callables.
                setattr(cls, name, None)

    # Fixtures a connector test may override ------------------------------------------------------

    @pytest.fixture
    def channel(self, request) -> ChannelDriver:
        if self.fixtures is None:  # pragma: no cover - every imitation-based test overrides it
            raise NotImplementedError("override the `channel` fixture with your ChannelDriver, or set `fixtures`")
        server = self.fixture_server(request.function.__name__)
        driver = self.recorded_channel(server)
        # The recordings' {{placeholders}} are the settings: a recording never holds a real secret.
        server.variables.update(driver.settings())
        with server:
            yield driver
        folder = self.fixture_folder(request.function.__name__)
        problems = server.problems()
        if problems and not folder.is_dir():
            problems.insert(0, f"there is no folder {folder}: record the exchanges this test makes there")
        if problems:
            pytest.fail(f"the recordings in {folder} and the requests disagree:\n- " + "\n- ".join(problems),
                        pytrace=False)

    @classmethod
    def fixture_folder(cls, test_name: str) -> Path:
        """The folder of exchanges recorded for one test: `<fixtures>/<test name without test_>`."""
        return Path(cls.fixtures) / test_name.removeprefix("test_")

    @classmethod
    def fixture_server(cls, test_name: str) -> FixtureServer:
        """A fixture server (not started) with the shared exchanges and those recorded for `test_name`."""
        return FixtureServer(cls.fixture_folder(test_name), optional=[Path(cls.fixtures) / SHARED_FIXTURES])

    @pytest.fixture
    def connector(self, channel: ChannelDriver, contract_context) -> Connector:
        conn = self.connector_class(self.channel_name, channel.settings(), context=contract_context)
        yield conn
        conn.close()

    @pytest.fixture
    def contract_context(self, tmp_path):
        from inbox.runtime import ConnectorContext

        return ConnectorContext(
            instance_id="contract-test", mail_domain="mainland.test", base_url="http://127.0.0.1:5000",
            max_message_bytes=25 * 1024 * 1024, max_attachment_bytes=10 * 1024 * 1024, data_dir=tmp_path,
        )

    @pytest.fixture
    def store(self, tmp_path) -> Store:
        store = Store(tmp_path / "contract.db")
        store.migrate()
        yield store
        store.close()

    @pytest.fixture
    def ingestor(self, store, tmp_path) -> Ingestor:
        return Ingestor(store, AttachmentStore(tmp_path / "attachments"), instance_id="contract-test")

    # Helpers --------------------------------------------------------------------------------------

    def poll(self, connector: Connector, ingestor: Ingestor) -> IngestReport:
        """Fetch and ingest until the channel has nothing more, as the worker does."""
        report = IngestReport()
        for _ in range(self.max_pages):
            cursor = ingestor.store.cursor(self.channel_name)
            result = connector.fetch(cursor)
            report.add(ingestor.ingest(self.channel_name, result))
            if not result.more:
                return report
        pytest.fail(f"the channel still had more after {self.max_pages} fetches: does the cursor move?")

    def push(self, connector: Connector, ingestor: Ingestor, requests: list[WebhookRequest]) -> IngestReport:
        report = IngestReport()
        for request in requests:
            connector.verify_webhook(request)
            report.add(ingestor.ingest(self.channel_name, connector.parse_webhook(request), save_cursor=False))
        return report

    def take_in(self, connector, ingestor, channel, count) -> IngestReport:
        if connector.push_only:
            return self.push(connector, ingestor, channel.webhook_requests(count))
        channel.customer_writes(count)
        return self.poll(connector, ingestor)

    # The promises -----------------------------------------------------------------------------

    def test_items_arrive_once_with_unique_ids(self, connector, ingestor, channel, store):
        report = self.take_in(connector, ingestor, channel, 5)
        assert report.stored == 5, f"expected the 5 new items stored, got {report}"
        assert store.counts()["messages"] == 5

    def test_oldest_first(self, connector, ingestor, channel, store):
        channel.customer_writes(4)
        result = connector.fetch(None)
        items = list(result.items)
        while result.more:
            result = connector.fetch(result.cursor)
            items += result.items
        assert len({i.external_id for i in items}) == len(items) == 4
        sent = [i.sent_at for i in items]
        assert None not in sent, "every fetched item needs its sent_at: the order is judged by it"
        assert sent == sorted(sent), "fetch must return items oldest first"

    def test_resumes_from_cursor_and_stores_nothing_twice(self, connector, ingestor, channel, store):
        if connector.push_only:
            requests = channel.webhook_requests(3)
            assert self.push(connector, ingestor, requests).stored == 3
            # A provider retry delivers the same requests again: nothing new is stored.
            assert self.push(connector, ingestor, requests).stored == 0, "a redelivery was stored again"
            assert self.push(connector, ingestor, channel.webhook_requests(2)).stored == 2
            assert store.counts()["messages"] == 5
            return
        first = self.take_in(connector, ingestor, channel, 3)
        assert first.stored == 3
        again = self.poll(connector, ingestor)
        assert again.stored == 0, "a poll from the saved cursor stored old items again"
        channel.customer_writes(2)
        later = self.poll(connector, ingestor)
        assert later.stored == 2
        assert store.counts()["messages"] == 5

    def test_refetch_from_scratch_is_deduplicated(self, connector, ingestor, channel, store):
        channel.customer_writes(3)
        self.poll(connector, ingestor)
        # A lost cursor (restored backup, a crash before commit) makes the channel send it all again.
        with store.write():
            store.save_cursor(self.channel_name, None, "2000-01-01T00:00:00.000000Z")
        self.poll(connector, ingestor)
        assert store.counts()["messages"] == 3

    def test_malformed_item_is_quarantined_and_the_rest_arrive(self, connector, ingestor, channel, store):
        channel.customer_writes(1)
        channel.customer_writes_malformed()
        channel.customer_writes(1)
        report = self.poll(connector, ingestor)
        assert report.stored == 2
        assert report.quarantined == 1
        [held] = store.quarantined()
        assert held["reason"], "a quarantined item must say why it was held"

    def test_retryable_fault_keeps_the_cursor(self, connector, ingestor, channel, store):
        self.take_in(connector, ingestor, channel, 1)
        for fault in ("rate_limited", "server_error"):
            channel.customer_writes(1)
            before = store.cursor(self.channel_name)
            if not channel.inject_fault(fault):
                self.poll(connector, ingestor)
                continue
            # Through the pipeline, as the worker polls: the fault stops the poll before anything moves.
            with pytest.raises(RetryableError) as raised:
                self.poll(connector, ingestor)
            if fault == "rate_limited" and channel.rate_limit_delay is not None:
                assert raised.value.retry_after == pytest.approx(channel.rate_limit_delay, abs=1)
            assert store.cursor(self.channel_name) == before, "a failed fetch moved the cursor"
            # The item written before the fault is not skipped: the next poll, from that cursor, gets it.
            assert self.poll(connector, ingestor).stored == 1, "the item written before the fault was lost"
        assert store.counts()["quarantined"] == 0

    def test_reply_is_threaded_to_the_message_it_answers(self, connector, ingestor, channel, store):
        self.take_in(connector, ingestor, channel, 1)
        [conversation] = store.recent_conversations()
        [message] = store.conversation_messages(conversation["id"])
        reply = OutboundReply(
            idempotency_key="contract-reply-1",
            channel=self.channel_name,
            conversation_id=conversation["id"],
            text="Thanks, we are on it.",
            to=Author(handle=message["author_handle"], name=message["author_name"]),
            subject=message["subject"],
            # As the outbox does: thread key and public/private come from the stored conversation.
            thread_key=store.conversation(conversation["id"]).get("thread_key"),
            public=bool(store.conversation(conversation["id"]).get("public")),
            reply_to_external_id=message["external_id"],
            reply_to_message_id=message["message_id"],
            message_id=f"<mainland.{conversation['token']}.contract@mainland.test>",
        )
        external_id = connector.send(reply)
        assert external_id
        received = channel.replies_received()
        assert received, "the channel received no reply"
        assert "Thanks, we are on it." in received[-1]["text"]
        expected = message["message_id"] or message["external_id"]
        assert received[-1]["in_reply_to"] == expected

    def test_no_secret_in_logs(self, connector, ingestor, channel, store, caplog):
        secrets = connector.secrets
        assert secrets, "the driver's settings leave every secret setting empty: set them, so the test can see one leak"
        caplog.set_level(logging.DEBUG)
        self.take_in(connector, ingestor, channel, 1)
        if not connector.push_only:
            channel.inject_fault("server_error")
            with pytest.raises(RetryableError) as raised:
                connector.fetch(store.cursor(self.channel_name))
            for secret in secrets:
                assert secret not in str(raised.value)
        for secret in secrets:
            assert secret not in caplog.text

    def test_probe_answers_when_the_host_is_unreachable(self, channel, contract_context):
        import dataclasses

        settings = channel.unreachable_settings()
        # Loopback is allowed here, as in the demo: the probe must really try the closed port.
        context = dataclasses.replace(contract_context, fetch_allow_hosts=("127.0.0.1",))
        connector = self.connector_class(self.channel_name, settings or channel.settings(), context=context)
        try:
            result = connector.probe()
        finally:
            connector.close()
        assert isinstance(result, ProbeResult)
        assert result.summary, "a connection test must say what it found"
        if settings is not None:
            assert result.ok is False, f"nothing listens there, yet the probe says: {result.summary}"
        for secret in connector.secrets:
            assert secret not in result.summary and secret not in result.detail

    def test_tampered_webhook_is_refused(self, connector, ingestor, channel, store):
        [request] = channel.webhook_requests(1)
        # Through verify-then-ingest, as the endpoint does: a refusal is a PermanentError and stores nothing.
        with pytest.raises(PermanentError):
            self.push(connector, ingestor, [channel.tamper(request)])
        assert store.counts()["messages"] == 0
        # The same request untouched is taken: the refusal was the tampering's, not a refusal of everything.
        assert self.push(connector, ingestor, [request]).stored == 1

    def test_raw_parses_again_into_the_same_item(self, connector, ingestor, channel, store):
        if connector.push_only:
            items = [i for r in channel.webhook_requests(2) for i in connector.parse_webhook(r).items]
        else:
            channel.customer_writes(2)
            items = fetch_all(connector).items
        assert items, "the channel gave no items to parse again"
        for item in items:
            assert item.raw, f"item {item.external_id} keeps no raw bytes: it could not be reprocessed"
            again = connector.parse_raw(item.raw, item.source_ref)
            assert (again.external_id, again.author.handle, again.author.identity_kind, again.text) == (
                item.external_id, item.author.handle, item.author.identity_kind, item.text)

    def test_raw_page_parses_in_another_process_as_fetch_does(self, connector, ingestor, channel, store):
        """The poller may parse a `fetch_raw` page in a worker process: its parse function, payload and
        options must survive pickling, and what they give is the page `fetch` returns."""
        channel.customer_writes(3)
        page = connector.fetch_raw(None)
        parse, payload, options = pickle.loads(pickle.dumps((page.parse, page.payload, page.options)))
        from_raw = connector.page_result(page, parse(payload, **options))
        connector.close()  # a new poll: the same page again
        fetched = connector.fetch(None)
        assert from_raw.items, "the first raw page held no items"
        assert [(i.external_id, i.text) for i in from_raw.items] == [(i.external_id, i.text) for i in fetched.items]
        assert (from_raw.cursor, from_raw.more, len(from_raw.rejects)) == (
            fetched.cursor, fetched.more, len(fetched.rejects))


def fetch_all(connector: Connector, cursor: str | None = None, max_pages: int = 50) -> FetchResult:
    """Every page from `cursor` on, as one result (for connector-specific tests)."""
    items, rejects, updates, changes = [], [], [], []
    for _ in range(max_pages):
        result = connector.fetch(cursor)
        items += result.items
        rejects += result.rejects
        updates += result.updates
        changes += result.changes
        cursor = result.cursor
        if not result.more:
            break
    return FetchResult(items=items, cursor=cursor, rejects=rejects, updates=updates, changes=changes)
