"""SMTP sends whose outcome is unknown: the connection ends after the message went out (FI: SMTP drop after
DATA). Such a send is `UncertainError`, never an ordinary retry; a drop before the server said "go ahead"
(354) is an ordinary retryable failure, for nothing was handed over."""

from __future__ import annotations

import socket
import threading

import pytest

from connectors.base import RetryableError, UncertainError
from connectors.imap import ImapConnector
from tests.connectors.test_imap import context_for, reply_to

pytestmark = pytest.mark.server  # a loopback SMTP server


class DroppingSmtp:
    """A loopback SMTP server that hangs up at `drop_at`: "data" (after DATA, before 354) or "body"
    (after the whole message arrived, before its answer)."""

    def __init__(self, drop_at: str) -> None:
        self.drop_at = drop_at
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.received = b""
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        reader = conn.makefile("rb")
        conn.sendall(b"220 dropping.test ESMTP\r\n")
        try:
            while line := reader.readline():
                verb = line.split(b" ", 1)[0].strip().upper()
                if verb == b"EHLO":
                    conn.sendall(b"250-dropping.test\r\n250 8BITMIME\r\n")
                elif verb in (b"MAIL", b"RCPT"):
                    conn.sendall(b"250 OK\r\n")
                elif verb == b"DATA":
                    if self.drop_at == "data":
                        return
                    conn.sendall(b"354 go ahead\r\n")
                    while (chunk := reader.readline()) not in (b".\r\n", b""):
                        self.received += chunk
                    return  # the message is here; the answer never leaves
                else:
                    conn.sendall(b"250 OK\r\n")
        finally:
            reader.close()
            conn.close()

    def close(self) -> None:
        self.sock.close()
        self.thread.join(5)


def connector(tmp_path, port: int) -> ImapConnector:
    return ImapConnector("mail", {
        "host": "127.0.0.1", "username": "support@mainland.test", "password": "x",
        "address": "support@mainland.test", "smtp_host": "127.0.0.1", "smtp_port": port,
        "smtp_security": "none", "timeout": 5}, context=context_for(tmp_path))


def test_a_drop_after_the_message_went_out_is_uncertain(tmp_path):
    server = DroppingSmtp("body")
    try:
        with pytest.raises(UncertainError, match="after the message was sent"):
            connector(tmp_path, server.port).send(reply_to())
    finally:
        server.close()
    assert b"Thanks, we are on it." in server.received


def test_a_drop_before_go_ahead_is_an_ordinary_retry(tmp_path):
    server = DroppingSmtp("data")
    try:
        with pytest.raises(RetryableError) as caught:
            connector(tmp_path, server.port).send(reply_to())
    finally:
        server.close()
    assert not isinstance(caught.value, UncertainError)
    assert server.received == b""
