"""Machine-written mail recognised: auto-replies, bulk and list mail, bounces, and our own loops.

RFC 3834 is the rule book: never answer automatically a message with `Auto-Submitted` other than
`no`, with `Precedence: bulk/list/junk`, with `List-*` headers, with a null return path, or from
MAILER-DAEMON/postmaster. We add the signals other helpdesks learnt to check (`X-Autoreply`,
`X-Auto-Response-Suppress`, `X-Loop`) and our own loop header. Such items are stored and shown,
flagged; `may_auto_reply` is the one gate every automatic mail of ours must pass.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

from inbox.models import (
    AUTOMATIC_FLAGS,
    FLAG_AUTO_SUBMITTED,
    FLAG_BULK,
    FLAG_INVALID_SENDER,
    FLAG_LOOP,
    InboundItem,
)

#: The header every mail we send carries, with this instance's id as its value.
LOOP_HEADER = "X-Mainland-Loop"

# Local parts of machine senders, also with a tag or a prefix: noreply+orders@, shop.no_reply@.
_SYSTEM_SENDER = re.compile(
    r"^(?:mailer-daemon|postmaster|abuse|bounces?|"
    r"(?:[^@]*[._-])?(?:no[-_.]?reply|do[-_.]?not[-_.]?reply))(?:[+][^@]*)?@",
    re.IGNORECASE,
)
_NO = {"no", "false", "0", "none", ""}
_SUPPRESS_VALUES = {"all", "oof", "autoreply"}
_BULK_PRECEDENCE = {"bulk", "list", "junk", "auto_reply"}


def header_flags(headers: Mapping[str, str], sender: str) -> set[str]:
    """Flags from an email's headers. `headers` keys are lower-case header names."""
    flags: set[str] = set()
    auto = headers.get("auto-submitted", "").strip().lower()
    if auto and not auto.startswith("no"):
        flags.add(FLAG_AUTO_SUBMITTED)
    if any(headers.get(name, "no").strip().lower() not in _NO for name in ("x-autoreply", "x-autorespond")):
        flags.add(FLAG_AUTO_SUBMITTED)
    # Exchange writes a list: `X-Auto-Response-Suppress: DR, OOF, AutoReply`.
    suppress = {v.strip() for v in headers.get("x-auto-response-suppress", "").lower().split(",")}
    if suppress & _SUPPRESS_VALUES:
        flags.add(FLAG_AUTO_SUBMITTED)
    if headers.get("x-loop", "").strip().lower() in {"yes", "true"}:
        flags.add(FLAG_AUTO_SUBMITTED)
    precedence = (headers.get("precedence") or headers.get("x-precedence") or "").strip().lower()
    if precedence in _BULK_PRECEDENCE:
        flags.add(FLAG_BULK)
    if any(name.startswith("list-") for name in headers):
        flags.add(FLAG_BULK)
    return_path = headers.get("return-path")
    if return_path is not None and return_path.strip() in {"<>", ""}:
        flags.add(FLAG_AUTO_SUBMITTED)
    if _SYSTEM_SENDER.match(sender or ""):
        flags.add(FLAG_AUTO_SUBMITTED)
    return flags


def loop_flags(item: InboundItem, *, instance_id: str, own_addresses: Collection[str]) -> set[str]:
    """FLAG_LOOP when the item is mail we sent ourselves coming back."""
    if item.headers.get(LOOP_HEADER.lower(), "").strip() == instance_id:
        return {FLAG_LOOP}
    if item.author.identity_kind == "email" and item.author.handle.lower() in own_addresses:
        return {FLAG_LOOP}
    return set()


def may_auto_reply(item: InboundItem) -> bool:
    """Whether an automatic message (acknowledgement, survey) may answer this item."""
    return not (item.flags & AUTOMATIC_FLAGS) and FLAG_INVALID_SENDER not in item.flags


def may_auto_reply_flags(flags: Collection[str]) -> bool:
    """`may_auto_reply` for a stored message, from its flags."""
    return not (set(flags) & AUTOMATIC_FLAGS) and FLAG_INVALID_SENDER not in flags
