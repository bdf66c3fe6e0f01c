"""An outside connector package, installed with pip, shows up and behaves like a built-in.

The package in examples/mainland-echo is installed into a temporary folder by pip (a real
install: metadata, entry point and all), that folder goes on sys.path, and the registry finds
the connector through the `mainland.connectors` entry-point group. It then passes the same
contract kit as the built-ins, against a loopback imitation of its tiny API.
"""

from __future__ import annotations

import importlib
import itertools
import subprocess
import sys
import time
from pathlib import Path

import pytest

import connectors
from connectors.testing import ChannelDriver, ConnectorContract
from sandbox.base import Imitation, route

pytestmark = pytest.mark.server  # installs the example package and runs the kit against its loopback imitation

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed_echo(tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(ROOT / "examples" / "mainland-echo")],
        check=True, capture_output=True, text=True,
    )
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    yield target
    sys.path.remove(str(target))
    sys.modules.pop("mainland_echo", None)


def test_pip_installed_connector_is_found_through_its_entry_point(installed_echo):
    registry = connectors.discover()
    assert "echo" in registry
    assert registry["echo"].__module__ == "mainland_echo"
    assert "echo" not in connectors.discover(include_entry_points=False)


class EchoImitation(Imitation):
    """The echo API: messages with increasing ids, and what we posted."""

    name = "echo"

    def __init__(self):
        super().__init__()
        self.messages: list[dict] = []
        self.sent: list[dict] = []
        self._ids = itertools.count(1)

    def customer(self, text, user="u1", chat="c1", raw=None):
        with self.lock:
            message = raw or {"from": {"id": user, "name": f"User {user}"}, "chat": chat, "text": text,
                              "ts": time.time()}
            message["id"] = next(self._ids)
            self.messages.append(message)

    @route("GET", r"/messages")
    def list_messages(self, request):
        if request.headers.get("Authorization") != "Bearer echo-secret-token":
            return 401, {"error": "bad token"}
        after = int(request.arg("after", "0"))
        newer = [m for m in self.messages if m["id"] > after]
        return 200, {"messages": newer[:2], "more": len(newer) > 2}

    @route("POST", r"/messages")
    def post_message(self, request):
        body = request.json()
        self.sent.append(body)
        return 201, {"id": f"s{len(self.sent)}"}


class EchoDriver(ChannelDriver):
    rate_limit_delay = 30

    def __init__(self, imitation):
        self.imitation = imitation

    def settings(self):
        return {"api_url": self.imitation.url, "token": "echo-secret-token"}

    def customer_writes(self, count):
        for i in range(count):
            self.imitation.customer(f"Hello {i}", user=f"u{i}")
        return [str(m["id"]) for m in self.imitation.messages[-count:]]

    def customer_writes_malformed(self):
        self.imitation.customer("", raw={"chat": "c1"})

    def replies_received(self):
        return [{"text": s["text"], "in_reply_to": s["reply_to"]} for s in self.imitation.sent]

    def inject_fault(self, fault):
        if fault == "rate_limited":
            self.imitation.fail_next(429, {"error": "slow down"}, {"Retry-After": "30"})
        else:
            self.imitation.fail_next(503, {"error": "maintenance"})
        return True


@pytest.fixture
def echo_class(installed_echo):
    return connectors.discover()["echo"]


class TestInstalledEchoConnector(ConnectorContract):
    # The class comes from the package the fixture installs; it polls, sends and has a secret setting.
    declared_capabilities = frozenset({"poll", "send", "secrets"})

    @pytest.fixture(autouse=True)
    def _connector_class(self, echo_class):
        type(self).connector_class = echo_class

    @pytest.fixture
    def channel(self):
        with EchoImitation() as imitation:
            yield EchoDriver(imitation)


def test_the_declared_capabilities_are_the_installed_classs_own(echo_class):
    from connectors.testing import capabilities

    assert capabilities(echo_class) == TestInstalledEchoConnector.declared_capabilities
