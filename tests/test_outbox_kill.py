"""A sender killed with SIGKILL in the middle of its work flags only the reply it was really sending,
and nothing reaches a customer twice unflagged (#16, "kill -9 during sending").

Twenty replies wait in the outbox. The sender (tests/outbox_send_worker.py, its own process) sends
them through real SMTP to a loopback server that holds the eighth message - at MAIL FROM (the
customer has not got it) or after its DATA (the customer has it, the sender never heard "250") -
and the test kills the sender there. Then senders run again at the times the outbox's claim and
lease allow, and the test counts, per Message-ID, what the server received.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest
import yaml

from inbox.config import load
from inbox.mail import parse_email
from inbox.models import FetchResult
from inbox.outbox import CLAIM_SECONDS, LEASE_SECONDS, queue_reply
from inbox.runtime import Mainland
from tests.mailfactory import raw_mail
from tests.servers import SmtpSink

pytestmark = pytest.mark.server

ROOT = Path(__file__).resolve().parent.parent
REPLIES = 20
HELD = 8
T0 = dt.datetime(2026, 3, 4, 9, 0, tzinfo=dt.UTC)
WAIT = 60


class HoldingSink(SmtpSink):
    """An SMTP server that holds the `hold_at`-th message at `stage` until released."""

    def __init__(self, hold_at: int, stage: str) -> None:
        super().__init__()
        self.hold_at, self.stage = hold_at, stage
        self.held, self.release = threading.Event(), threading.Event()
        self._seen = 0

    async def _hold(self) -> None:
        self.held.set()
        await asyncio.get_running_loop().run_in_executor(None, self.release.wait, WAIT)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # noqa: N802
        self._seen += 1
        if self.stage == "MAIL" and self._seen == self.hold_at and not self.release.is_set():
            await self._hold()
        return await super().handle_MAIL(server, session, envelope, address, mail_options)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        answer = await super().handle_DATA(server, session, envelope)  # recorded: the customer has it
        if self.stage == "DATA" and len(self.messages) == self.hold_at and not self.release.is_set():
            await self._hold()
        return answer


def _installation(tmp_path: Path, sink: SmtpSink) -> tuple[Path, list[str]]:
    config = {
        "database": str(tmp_path / "mainland.db"), "data_dir": str(tmp_path / "data"),
        "mail_domain": "mainland.test", "secret_key": "kill-test", "instance_id": "kill-test",
        "channels": {"mail": {
            "kind": "imap", "host": "127.0.0.1", "username": "support@mainland.test", "password": "x",
            "address": "support@mainland.test", "security": "none", "smtp_host": sink.host,
            "smtp_port": sink.port, "smtp_security": "none", "timeout": 30}},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    mainland = Mainland(load(path))
    store = mainland.open_store(migrate=True)
    outbox_ids = []
    try:
        for n in range(REPLIES):
            item = parse_email(raw_mail(sender=f"Customer {n} <customer{n}@example.net>",
                                        message_id=f"<ask-{n}@example.net>"), channel="mail")
            report = mainland.ingestor(store).ingest("mail", FetchResult(items=[item], cursor=None),
                                                     save_cursor=False)
            [conversation_id] = report.new_conversations
            outbox_ids.append(queue_reply(mainland, store, conversation_id, f"Answer number {n}", now=T0))
    finally:
        store.close()
    return path, outbox_ids


def _sender(config: Path, now: dt.datetime) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.outbox_send_worker", str(config), now.isoformat()],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _run_sender(config: Path, now: dt.datetime) -> list[dict]:
    process = _sender(config, now)
    out, err = process.communicate(timeout=WAIT)
    assert process.returncode == 0, err
    return [json.loads(line) for line in out.splitlines()]


def _rows(config: Path, outbox_ids: list[str]) -> list[dict]:
    store = Mainland(load(config)).open_store(migrate=False)
    try:
        return [store.outbox_row(outbox_id) for outbox_id in outbox_ids]
    finally:
        store.close()


def _received(sink: SmtpSink) -> Counter:
    return Counter(email.message_from_bytes(m.content, policy=email.policy.default)["Message-ID"]
                   for m in sink.messages)


@pytest.mark.parametrize("stage", ["MAIL", "DATA"])
def test_a_sender_killed_mid_send_flags_only_the_reply_it_was_sending(tmp_path, stage):
    sink = HoldingSink(HELD, stage).start()
    try:
        config, outbox_ids = _installation(tmp_path, sink)
        sender = _sender(config, T0)
        assert sink.held.wait(WAIT), f"the sender never reached message {HELD}: {sender.stderr.read()}"
        os.kill(sender.pid, signal.SIGKILL)
        sender.wait(WAIT)
        assert sender.returncode == -signal.SIGKILL
        sink.release.set()

        rows = _rows(config, outbox_ids)
        assert [r["state"] for r in rows[:HELD - 1]] == ["sent"] * (HELD - 1)
        started = [r["id"] for r in rows if r["state"] != "sent" and r["attempt_started_at"]]
        assert started == [outbox_ids[HELD - 1]], "only the reply on the wire was started"

        # Rows the dead sender had claimed but not started are free after the claim time, unflagged;
        # the started one waits for its lease (the channel may still be delivering it).
        _run_sender(config, T0 + dt.timedelta(seconds=CLAIM_SECONDS + 1))
        rows = _rows(config, outbox_ids)
        assert [r["state"] for r in rows].count("sent") == REPLIES - 1
        _run_sender(config, T0 + dt.timedelta(seconds=LEASE_SECONDS + 1))
        rows = _rows(config, outbox_ids)
    finally:
        sink.release.set()
        sink.stop()

    assert [r["state"] for r in rows] == ["sent"] * REPLIES, "nothing lost"
    flagged = [r["id"] for r in rows if r["possible_duplicate"]]
    assert flagged == [outbox_ids[HELD - 1]], "only the reply that was being sent is flagged"
    received = _received(sink)
    assert len(received) == REPLIES, "every reply reached the customer"
    doubled = [message_id for message_id, count in received.items() if count > 1]
    flagged_ids = {f"<{r['provider_id']}>" for r in rows if r["possible_duplicate"]}
    assert set(doubled) <= flagged_ids, "no reply reaches a customer twice unflagged"
    if stage == "MAIL":
        assert doubled == [], "held before the customer had it: sent once, flagged as a precaution"
    else:
        assert len(doubled) == 1 and received[doubled[0]] == 2, "the one window no outbox closes"
