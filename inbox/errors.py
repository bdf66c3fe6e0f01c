"""The errors a connector raises, on neutral ground: the connectors and the core's own parsers both raise them.

`inbox.mail` refuses a message with no sender by raising `ItemError`, exactly as a connector refuses an
item it cannot read, and the IMAP connector parses with `inbox.mail`. Defined here, beside
`inbox.models`, neither side imports the other to get them. `connectors.base` imports them from here,
so `from connectors.base import ItemError` (the contract's name for them) stays the same class.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """Base of the errors a connector raises."""


class RetryableError(ConnectorError):
    """The channel is busy or unreachable: try again later (after `retry_after` seconds if known)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UncertainError(RetryableError):
    """The request may have reached the channel, but no answer came back (a timeout or a dropped
    connection after it was sent, SMTP after DATA): whether it took effect is unknown.

    A read may simply be tried again. A send may not: the outbox resends only on channels that
    declare `idempotent_sends`, and otherwise flags the reply "possibly sent" for an agent to decide.
    """


class PermanentError(ConnectorError):
    """The request or the credentials are wrong: retrying will not help until someone fixes it."""


class ItemError(ConnectorError):
    """One item cannot be understood; it goes to quarantine and the rest of the page goes on."""
