"""The generic API channel joins the shared contract kit, against its outside system on loopback.

The endpoint, the outbox and the connection test are proved in tests/connectors/test_api_channel.py.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from connectors.api import ApiConnector
from connectors.base import WebhookRequest
from connectors.testing import ChannelDriver, ConnectorContract
from inbox import clock
from sandbox.api_receiver import ApiReceiver

pytestmark = pytest.mark.server  # starts the loopback receiver

SECRET = "shop-shared-secret-0123456789"


@pytest.fixture
def receiver():
    with ApiReceiver(SECRET, now=lambda: clock.now().timestamp()) as imitation:
        yield imitation


class ApiDriver(ChannelDriver):
    def __init__(self, receiver: ApiReceiver) -> None:
        self.receiver = receiver
        self.count = 0

    def settings(self):
        return {"callback_url": self.receiver.callback_url, "secret": SECRET}

    def webhook_requests(self, count):
        requests = []
        for _ in range(count):
            self.count += 1
            body = json.dumps(self.receiver.message(f"c{self.count}", f"Question {self.count}")).encode()
            requests.append(WebhookRequest(body=body, headers=self.receiver.signed(body)))
        return requests

    def tamper(self, request):
        return dataclasses.replace(request, body=request.body.replace(b"Question", b"Demand"))

    def replies_received(self):
        return [{"text": r["text"], "in_reply_to": r["in_reply_to"]} for r in self.receiver.replies]


class TestApiChannel(ConnectorContract):
    connector_class = ApiConnector

    @pytest.fixture
    def channel(self, receiver):
        return ApiDriver(receiver)

    @pytest.fixture
    def contract_context(self, tmp_path, receiver):
        from inbox.runtime import ConnectorContext

        return ConnectorContext(
            instance_id="contract-test", mail_domain="mainland.test", base_url="http://127.0.0.1:5000",
            max_message_bytes=25 * 1024 * 1024, max_attachment_bytes=10 * 1024 * 1024, data_dir=tmp_path,
            fetch_allow_hosts=(receiver.host,),
        )
