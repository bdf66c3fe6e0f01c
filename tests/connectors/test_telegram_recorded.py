"""The Telegram connector against recorded Bot API exchanges: the contract kit in fixture mode.

No imitation here: every promise replays the exchanges recorded for it in
tests/fixtures/connectors/telegram/ (built from the Bot API facts in shared/channels.md: getUpdates
pages with the offset cursor, flood control's 429 with `parameters.retry_after`, a 500, a malformed
update, optional fields left out, an edited message, sendMessage with `reply_parameters`). The
imitation-based tests in test_telegram.py stay; this file proves the kit's fixture mode on a real
connector, and fails when the connector asks for something the recordings do not hold.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from connectors.telegram import TelegramConnector
from connectors.testing import ConnectorContract, RecordedChannel, fetch_all

pytestmark = pytest.mark.server  # the recordings are served on a loopback port

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "connectors" / "telegram"


class TelegramRecorded(RecordedChannel):
    """Settings that point the bot at the fixture server; replies read back from its sendMessage calls."""

    # Telegram says the delay in the body (`parameters.retry_after`), not in a header.
    rate_limit_delay = 35

    def settings(self) -> dict[str, Any]:
        return {"token": "7000000001:AAF-recorded-token_x", "api_url": self.server.url}

    def replies_received(self) -> list[dict[str, Any]]:
        sent = [r.json() for r in self.server.received("POST", "/sendMessage") if r.answered_by]
        return [{"text": s["text"], "in_reply_to": f"{s['chat_id']}:{s['reply_parameters']['message_id']}"}
                for s in sent]


class TestTelegramRecordedContract(ConnectorContract):
    connector_class = TelegramConnector
    fixtures = FIXTURES
    recorded_channel = TelegramRecorded

    def test_edit_arrives_as_an_item_of_its_own(self, channel, contract_context):
        # With include_edits the bot must ask for edited messages: the recording names allowed_updates.
        connector = TelegramConnector("tg", {**channel.settings(), "include_edits": True}, context=contract_context)
        try:
            items = fetch_all(connector).items
        finally:
            connector.close()
        original, edit = items
        assert original.external_id == "111222333:4187" and "edited" not in original.headers
        assert edit.external_id == "111222333:4187:edit:1741169822"
        assert edit.text == "My order #1234 arrived broken (the lid)"
        assert edit.headers["edited"] == "true"

    def test_probe_names_the_bot(self, channel, contract_context):
        context = dataclasses.replace(contract_context, fetch_allow_hosts=(channel.server.host,))
        connector = TelegramConnector("tg", channel.settings(), context=context)
        try:
            result = connector.probe()
        finally:
            connector.close()
        assert result.ok, result.summary
        assert result.summary == "Telegram bot @acme_support_bot answers (id 7000000001)"
        assert [r.path for r in channel.server.requests] == ["/bot7000000001:AAF-recorded-token_x/getMe"]
