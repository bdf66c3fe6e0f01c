"""The outside system behind a generic API channel (`connectors/api.py`), on loopback.

It plays both sides of docs/api-channel.md, as an integrator's app would:

- **It writes in.** `message(...)` builds an inbound message body and `signed(body)` the headers
  (`Mainland-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`), ready to POST to
  Mainland's `/webhooks/<channel>`.
- **It receives replies** at `POST /callback`: it checks the signature (401 for a missing or wrong one,
  or one more than 300 s off its clock), keeps each reply once by its `id` (a retried delivery is
  counted in `deliveries` but not kept twice) and answers `200 {"id": "rcv_<n>"}`. A `"type": "ping"`
  (the connection test) is answered 200 and kept in `pings`, never as a reply.

Faults, for the tests: `fail_next(500)` / `fail_next(429, headers={"Retry-After": "7"})` (from the
base), `drop_next()` (the connection is closed after the request was read: "reset after written"),
and `hang_next()`: the next callback is read and then held unanswered until `release()` (or the
imitation stops), so the sender's timeout runs out without any sleep in the test.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from inbox.signing import SIGNATURE_HEADER, signature, verify
from sandbox.base import Imitation, Request, route

#: How far the receiver's clock and the signature's timestamp may differ (docs/api-channel.md).
TOLERANCE_SECONDS = 300


class ApiReceiver(Imitation):
    """An integrator's server: signs what it sends to Mainland, verifies what Mainland sends to it."""

    name = "api-receiver"

    def __init__(self, secret: str = "shared-secret-for-the-api-channel", *,
                 now: Callable[[], float] = time.time, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.secret = secret
        self.now = now
        #: Replies kept, once each by id, in the order they first arrived.
        self.replies: list[dict[str, Any]] = []
        #: Every signed delivery of a reply, retries included.
        self.deliveries: list[dict[str, Any]] = []
        self.pings: list[dict[str, Any]] = []
        #: Callbacks refused for their signature, with the reason.
        self.refused: list[str] = []
        self._hangs = 0
        self._released = threading.Event()

    @property
    def callback_url(self) -> str:
        return f"{self.url}/callback"

    # Writing in ---------------------------------------------------------------------------------

    @staticmethod
    def message(customer_id: str = "cust-42", text: str = "Where is my order #1234?", *,
                message_id: str | None = None, name: str | None = "Jane Doe", **extra: Any) -> dict[str, Any]:
        """An inbound message body, with a fresh idempotency key unless `message_id` is given."""
        customer: dict[str, Any] = {"id": customer_id}
        if name is not None:
            customer["name"] = name
        body = {"id": message_id or f"msg_{uuid.uuid4().hex}", "customer": customer, "text": text}
        body.update(extra)
        return body

    def signed(self, body: bytes, *, at: float | None = None, secret: str | None = None) -> dict[str, str]:
        """The headers of a signed POST of `body` made at `at` (default: the receiver's clock)."""
        timestamp = int(self.now() if at is None else at)
        return {"Content-Type": "application/json",
                SIGNATURE_HEADER: signature(secret or self.secret, timestamp, body)}

    # Receiving replies --------------------------------------------------------------------------

    def hang_next(self) -> None:
        """Hold the next callback unanswered until `release()`."""
        with self.lock:
            self._hangs += 1
            self._released.clear()

    def release(self) -> None:
        self._released.set()

    def stop(self) -> None:
        self.release()
        super().stop()

    @route("POST", r"/callback")
    def callback(self, request: Request):
        if self._take_hang():
            self._released.wait(timeout=60)
            return 200, {"id": "late"}
        header = next((v for k, v in request.headers.items() if k.lower() == SIGNATURE_HEADER.lower()), "")
        if not header:
            return self._refuse("missing Mainland-Signature header")
        if not verify(self.secret, header, request.body, now=self.now(), tolerance=TOLERANCE_SECONDS):
            return self._refuse("signature does not match, or its timestamp is too far off")
        try:
            data = json.loads(request.body)
        except ValueError:
            return 400, {"error": "the body is not JSON"}
        if data.get("type") == "ping":
            with self.lock:
                self.pings.append(data)
            return 200, {"ok": True}
        with self.lock:
            self.deliveries.append(data)
            known = next((i for i, r in enumerate(self.replies) if r["id"] == data.get("id")), None)
            if known is None:
                self.replies.append(data)
                known = len(self.replies) - 1
        return 200, {"id": f"rcv_{known + 1}"}

    def _take_hang(self) -> bool:
        with self.lock:
            if self._hangs:
                self._hangs -= 1
                return True
        return False

    def _refuse(self, reason: str):
        with self.lock:
            self.refused.append(reason)
        return 401, {"error": reason}
