"""Builds raw test emails in one line: `raw_mail(sender=..., subject=..., body=...)`."""

from __future__ import annotations

import itertools

_counter = itertools.count(1)


def raw_mail(
    *,
    sender: str = "Jane Doe <jane@example.net>",
    to: str = "support@mainland.test",
    subject: str = "Order 1234 arrived broken",
    body: str = "Hello, my order arrived broken.",
    message_id: str | None = "auto",
    in_reply_to: str | None = None,
    references: str | None = None,
    date: str = "Thu, 05 Mar 2026 10:15:02 +0000",
    extra_headers: str = "",
    content_type: str = "text/plain; charset=utf-8",
) -> bytes:
    """A small RFC 5322 message as bytes; `message_id=None` leaves the header out."""
    if message_id == "auto":
        message_id = f"<test-{next(_counter)}@mail.example.net>"
    lines = [f"From: {sender}", f"To: {to}", f"Subject: {subject}", f"Date: {date}"]
    if message_id:
        lines.append(f"Message-ID: {message_id}")
    if in_reply_to:
        lines.append(f"In-Reply-To: {in_reply_to}")
    if references:
        lines.append(f"References: {references}")
    lines += ["MIME-Version: 1.0", f"Content-Type: {content_type}"]
    head = "\r\n".join(lines) + ("\r\n" + extra_headers.strip() if extra_headers.strip() else "")
    return head.encode("utf-8") + b"\r\n\r\n" + body.encode("utf-8") + b"\r\n"
