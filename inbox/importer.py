"""`mainland import`: an existing mailbox (mbox, Maildir or a folder of messages) into the inbox.

Each message goes through the same pipeline as polled mail: `inbox.mail.parse_email`, then
`Ingestor.ingest` in batches. A message the parser refuses (no sender) or chokes on is quarantined
with its bytes and the reason, never dropped. Nothing is stored twice: the ingest pipeline
dedupes on `(channel, external_id)`.

Resuming: every batch is committed together with a cursor saying how far this source got, so an
import cut short (Ctrl-C, SIGKILL, power loss) continues after the last committed batch when run
again. The cursor lives under the import's channel name and remembers each source by its absolute
path (`{"sources": {path: {"position": n, "last": ref, "sha": ...}}}`); the fingerprint of the
last imported message tells whether the source is still the one that was read, and a source
that changed under us is simply read again from the start (dedupe keeps that harmless).

`mailbox` (standard library) reads mbox and Maildir: it knows their quoting and file naming.
"""

from __future__ import annotations

import hashlib
import json
import mailbox
import os
import re
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from connectors.base import ItemError
from inbox import mail
from inbox.ingest import Ingestor, IngestReport
from inbox.models import FetchResult, InboundItem, Reject
from inbox.store import Store

DEFAULT_CHANNEL = "import"
DEFAULT_BATCH_SIZE = 200
_FIELD_LINE = re.compile(rb"^[!-9;-~]{1,76}:")
_MAIL_FIELD = re.compile(rb"^(from|sender|received|message-id|date|return-path|delivered-to):", re.I | re.M)
#: Fields that mark a file of a folder as mail (a header-only message with To and Subject is mail too).
_ANY_MAIL_FIELD = re.compile(rb"^(from|sender|reply-to|received|message-id|date|return-path|delivered-to|subject|to)"
                             rb"[ \t]*:", re.I | re.M)
#: Bytes of a folder's file looked at to tell mail from other files.
MAIL_SNIFF_BYTES = 8192
#: Skipped files named in the summary; the rest are counted.
MAX_NAMED_SKIPS = 10


class ImportSourceError(Exception):
    """The path cannot be imported; the message says why and what to do."""


@dataclass
class ImportReport:
    """What one run of an import did."""

    source: str
    kind: str
    total: int = 0  # messages in the source
    skipped: int = 0  # already imported by an earlier run (resumed after them)
    messages: int = 0  # messages read in this run
    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    seconds: float = 0.0
    complete: bool = False
    batches: int = 0
    restarted: str | None = None  # why an earlier cursor was not used
    not_mail: list[str] = field(default_factory=list)  # files of a folder that hold no mail: skipped

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        text = (f"imported {self.messages} messages: {self.stored} stored, {self.duplicates} duplicates, "
                f"{self.quarantined} quarantined in {self.seconds:.1f} s ({self.rate:.0f} msg/s)")
        if self.not_mail:
            shown = ", ".join(self.not_mail[:MAX_NAMED_SKIPS])
            more = f" and {len(self.not_mail) - MAX_NAMED_SKIPS} more" if len(self.not_mail) > MAX_NAMED_SKIPS else ""
            text += f"\nskipped {len(self.not_mail)} files that are not mail: {shown}{more}"
        return text


@dataclass
class Source:
    """A mailbox opened for reading: its kind and its messages in a stable order.

    Only one reference string per message is kept in memory (a million-message folder costs
    tens of megabytes, not hundreds); `read(i)` fetches message i's bytes when its turn comes.
    """

    path: Path
    kind: str  # "mbox", "maildir", "folder" or "file"
    refs: list[str]
    _read: Callable[[int], bytes]
    _box: mailbox.Mailbox | None = None

    def read(self, index: int) -> bytes:
        return self._read(index)

    def __len__(self) -> int:
        return len(self.refs)

    def close(self) -> None:
        if self._box is not None:
            self._box.close()


# Opening a source ------------------------------------------------------------------------------


def open_source(path: str | Path) -> Source:
    """Look at `path` and list its messages; `ImportSourceError` with advice when it can't be read."""
    path = Path(path).expanduser()
    try:
        path = path.resolve(strict=True)
    except FileNotFoundError:
        raise ImportSourceError(f"{path} does not exist: give the path of an mbox file, a Maildir "
                                "(a folder with cur/ and new/) or a folder of .eml files") from None
    except OSError as exc:
        raise ImportSourceError(f"cannot open {path}: {exc.strerror}") from None
    try:
        if path.is_dir():
            if (path / "cur").is_dir() and (path / "new").is_dir():
                return _open_maildir(path)
            return _open_folder(path)
        if path.is_file():
            return _open_file(path)
    except PermissionError as exc:
        raise ImportSourceError(_permission_advice(exc.filename or path)) from None
    raise ImportSourceError(f"not a mailbox: {path} is neither a regular file nor a folder")


def _permission_advice(path: object) -> str:
    return (f"permission denied reading {path}: run the import as a user who may read it "
            "(or copy the mailbox somewhere readable) and run the same command again")


def _open_file(path: Path) -> Source:
    with path.open("rb") as fh:
        head = fh.read(4096)
    start = head.lstrip(b"\r\n")
    if start.startswith(b"From "):
        box = mailbox.mbox(str(path), create=False)
        # The table of contents (message offsets) is built by one pass over the file.
        keys = box.keys()
        # mailbox keeps offsets only in its table of contents; they make a source_ref one can seek to.
        toc = getattr(box, "_toc", {})
        refs = [f"{path}@{toc[k][0]}" if k in toc else f"{path}#{k}" for k in keys]
        return Source(path, "mbox", refs, lambda i: box.get_bytes(keys[i]), box)
    if _looks_like_message(start):
        # One message on its own (a saved .eml): import it like a folder of one.
        return Source(path, "file", [str(path)], lambda i: path.read_bytes())
    raise ImportSourceError(
        f"not a mailbox: {path} does not start with a 'From ' line (mbox) nor with mail headers; "
        "give the path of an mbox file, a Maildir (a folder with cur/ and new/) or a folder of .eml files"
    )


def _looks_like_message(head: bytes) -> bool:
    """A header block that starts with a header field and holds one only mail has (From:, Received:...)."""
    block = re.split(rb"\r?\n\r?\n", head, maxsplit=1)[0]
    return bool(_FIELD_LINE.match(block)) and bool(_MAIL_FIELD.search(block))


def _is_mail(raw: bytes) -> bool:
    """Whether a file found in a folder holds a mail: readable text whose head has a mail header field.

    A folder of saved mail also holds other files (README.txt, index.html, a PDF someone saved next
    to the mail, Thumbs.db): those are not mail and must not fill the quarantine as mail without sender.
    Junk or an mbox `From ` line before the headers is allowed, as the parser allows it.
    """
    head = raw[:MAIL_SNIFF_BYTES]
    if b"\x00" in head:
        return False
    block = re.split(rb"\n\r?\n(?=[^\r\n])", head.lstrip(b"\r\n"), maxsplit=1)[0]
    return bool(_ANY_MAIL_FIELD.search(block))


def _open_maildir(path: Path) -> Source:
    box = mailbox.Maildir(str(path), factory=None, create=False)
    # Maildir names start with the delivery time, so sorted keys are roughly oldest first and,
    # more importantly, in the same order on every run.
    keys = sorted(box.keys())
    return Source(path, "maildir", [f"{path}#{k}" for k in keys], lambda i: box.get_bytes(keys[i]), box)


def _open_folder(path: Path) -> Source:
    files: list[str] = []
    for root, dirs, names in os.walk(path, onerror=_raise):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            if name.startswith("."):
                continue
            full = os.path.join(root, name)
            # Symlinked files count (mu and notmuch make folders of links); linked folders are not
            # followed (os.walk's default), so a link cannot loop or pull in a whole other tree.
            if os.path.isfile(full):
                files.append(full)
    files.sort()
    if not files:
        raise ImportSourceError(f"not a mailbox: {path} holds no message files (hidden files are skipped)")
    return Source(path, "folder", files, lambda i: Path(files[i]).read_bytes())


def _raise(exc: OSError) -> None:
    raise exc


# The cursor ------------------------------------------------------------------------------------


def _fingerprint(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:24]


def _load_cursor(channel: str, value: str | None) -> dict:
    """The import cursor of `channel`; refuses a channel whose cursor belongs to a connector."""
    if not value:
        return {"sources": {}}
    try:
        data = json.loads(value)
    except ValueError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("sources"), dict):
        # Saving ours would make that channel's connector lose its place.
        raise ImportSourceError(f"channel {channel!r} is polled by a connector and its cursor is not an "
                                "import's: import into another channel name (--channel archive, say)")
    return data


def _resume_position(source: Source, saved: dict | None) -> tuple[int, str | None]:
    """Where to start in `source` given its saved cursor entry, and why not there if not."""
    if not saved:
        return 0, None
    position = saved.get("position")
    if not isinstance(position, int) or position <= 0:
        return 0, None
    if position > len(source):
        return 0, "the source holds fewer messages than when it was last read; reading it again from the start"
    try:
        same = (source.refs[position - 1] == saved.get("last")
                and _fingerprint(source.read(position - 1)) == saved.get("sha"))
    except (OSError, KeyError):
        same = False
    if not same:
        return 0, "the source changed since it was last read; reading it again from the start"
    return position, None


# The import ------------------------------------------------------------------------------------


def _exception_text(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)[-3:]
    where = "; ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in frames)
    return f"{type(exc).__name__}: {exc} ({where})"


def parse_message(raw: bytes, *, channel: str, source_ref: str, max_bytes: int | None,
                  max_attachment_bytes: int | None) -> InboundItem | Reject:
    """One raw message as an item, or as a `Reject` for the quarantine when the parser refuses it."""
    try:
        return mail.parse_email(raw, channel=channel, source_ref=source_ref, max_bytes=max_bytes,
                                max_attachment_bytes=max_attachment_bytes)
    except ItemError as exc:
        return Reject(raw=raw, reason=str(exc), source_ref=source_ref, exception=type(exc).__name__)
    except Exception as exc:  # a parser bug must cost one message, not the import
        return Reject(raw=raw, reason=f"could not be parsed: {type(exc).__name__}: {exc}",
                      source_ref=source_ref, exception=_exception_text(exc))


def import_mailbox(
    store: Store,
    ingestor: Ingestor,
    path: str | Path,
    *,
    channel: str = DEFAULT_CHANNEL,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_bytes: int | None = None,
    max_attachment_bytes: int | None = None,
    from_start: bool = False,
    max_batches: int | None = None,
    progress: Callable[[int, IngestReport], None] | None = None,
    on_open: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Import every message of the mailbox at `path` into `channel`, resuming an earlier run.

    `progress(n, batch_report)` is called after each committed batch of `n` messages; `on_open`
    once the source is listed (the report then knows `total` and `skipped`). `max_batches` stops
    after that many batches (the report says `complete=False`): a run cut short, for tests.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    started = time.perf_counter()
    source = open_source(path)
    key = str(source.path)
    report = ImportReport(source=key, kind=source.kind, total=len(source))
    try:
        cursor = _load_cursor(channel, store.cursor(channel))
        start, why = (0, None) if from_start else _resume_position(source, cursor["sources"].get(key))
        report.skipped, report.restarted = start, why
        if on_open:
            on_open(report)

        items: list[InboundItem] = []
        rejects: list[Reject] = []
        last_raw = b""
        last_ref = ""
        end = len(source)
        for index in range(start, end):
            ref = source.refs[index]
            try:
                raw = source.read(index)
            except PermissionError as exc:
                raise ImportSourceError(_permission_advice(exc.filename or ref)) from None
            except OSError as exc:
                raise ImportSourceError(f"cannot read {ref}: {exc.strerror or exc}; fix that and run "
                                        "the same command again: the import continues where it stopped") from None
            if source.kind == "folder" and not _is_mail(raw):
                report.not_mail.append(os.path.relpath(ref, key))
            else:
                parsed = parse_message(raw, channel=channel, source_ref=ref, max_bytes=max_bytes,
                                       max_attachment_bytes=max_attachment_bytes)
                (rejects if isinstance(parsed, Reject) else items).append(parsed)
            last_raw, last_ref = raw, ref
            # Batches count files read, mail or not, so that a run of skipped files still saves its progress.
            if (index + 1 - start) % batch_size == 0 or index == end - 1:
                # Read the cursor again: another source may have been imported into this channel meanwhile.
                cursor = _load_cursor(channel, store.cursor(channel))
                cursor["sources"][key] = {"kind": source.kind, "position": index + 1, "last": last_ref,
                                          "sha": _fingerprint(last_raw), "total": end}
                count = len(items) + len(rejects)
                batch = ingestor.ingest(channel, FetchResult(items=items, rejects=rejects,
                                                             cursor=json.dumps(cursor, sort_keys=True)))
                items, rejects = [], []
                report.messages += count
                report.stored += batch.stored
                report.duplicates += batch.duplicates
                report.quarantined += batch.quarantined
                report.batches += 1
                if progress:
                    progress(count, batch)
                if max_batches is not None and report.batches >= max_batches and index < end - 1:
                    report.seconds = time.perf_counter() - started
                    return report
        report.complete = True
        report.seconds = time.perf_counter() - started
        return report
    finally:
        source.close()


def iter_raw_messages(path: str | Path) -> Iterator[tuple[str, bytes]]:
    """Every message of a mailbox as (source_ref, raw bytes), in import order (for tools and tests)."""
    source = open_source(path)
    try:
        for index, ref in enumerate(source.refs):
            yield ref, source.read(index)
    finally:
        source.close()
