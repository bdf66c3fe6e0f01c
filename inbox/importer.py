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
import itertools
import json
import mailbox
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from inbox.ingest import Ingestor, IngestReport
from inbox.mail_batch import parse_batch
from inbox.models import FetchResult, InboundItem, Reject
from inbox.parse_pool import Batch, ParsePipeline, workers_for
from inbox.store import Store

DEFAULT_CHANNEL = "import"
DEFAULT_BATCH_SIZE = 200
_FIELD_LINE = re.compile(rb"^[!-9;-~]{1,76}:")
_MAIL_FIELD = re.compile(rb"^(from|sender|received|message-id|date|return-path|delivered-to):", re.I | re.M)
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

    `refs(start)` yields (index, reference) from message `start` on; `read(i)` fetches message i's
    bytes when its turn comes. A folder is listed as it is walked (never held as one list: a
    million files would cost the import hundreds of megabytes); mbox and Maildir keep one
    reference string per message, as the `mailbox` module holds their table of contents anyway.
    """

    path: Path
    kind: str  # "mbox", "maildir", "folder" or "file"
    count: int
    _refs: Callable[[int], Iterator[tuple[int, str]]]
    _read: Callable[[int, str], bytes]
    _box: mailbox.Mailbox | None = None

    def refs(self, start: int = 0) -> Iterator[tuple[int, str]]:
        return self._refs(start)

    def ref(self, index: int) -> str:
        for _, ref in self._refs(index):
            return ref
        raise IndexError(index)

    def read(self, index: int, ref: str | None = None) -> bytes:
        return self._read(index, self.ref(index) if ref is None else ref)

    def __len__(self) -> int:
        return self.count

    def close(self) -> None:
        if self._box is not None:
            self._box.close()


def _listed(refs: list[str], read: Callable[[int], bytes]) -> tuple[Callable, Callable]:
    """`Source` accessors over a list of references."""
    def walk(start: int) -> Iterator[tuple[int, str]]:
        return ((i, refs[i]) for i in range(start, len(refs)))
    return walk, lambda index, _ref: read(index)


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
        return Source(path, "mbox", len(refs), *_listed(refs, lambda i: box.get_bytes(keys[i])), box)
    if _looks_like_message(start):
        # One message on its own (a saved .eml): import it like a folder of one.
        return Source(path, "file", 1, *_listed([str(path)], lambda i: path.read_bytes()))
    raise ImportSourceError(
        f"not a mailbox: {path} does not start with a 'From ' line (mbox) nor with mail headers; "
        "give the path of an mbox file, a Maildir (a folder with cur/ and new/) or a folder of .eml files"
    )


def _looks_like_message(head: bytes) -> bool:
    """A header block that starts with a header field and holds one only mail has (From:, Received:...)."""
    block = re.split(rb"\r?\n\r?\n", head, maxsplit=1)[0]
    return bool(_FIELD_LINE.match(block)) and bool(_MAIL_FIELD.search(block))


def _open_maildir(path: Path) -> Source:
    box = mailbox.Maildir(str(path), factory=None, create=False)
    # Maildir names start with the delivery time, so sorted keys are roughly oldest first and,
    # more importantly, in the same order on every run.
    keys = sorted(box.keys())
    refs = [f"{path}#{k}" for k in keys]
    return Source(path, "maildir", len(refs), *_listed(refs, lambda i: box.get_bytes(keys[i])), box)


def _open_folder(path: Path) -> Source:
    count = sum(1 for _ in _walk_folder(str(path)))  # one pass that keeps nothing but the count
    if not count:
        raise ImportSourceError(f"not a mailbox: {path} holds no message files (hidden files are skipped)")

    def refs(start: int) -> Iterator[tuple[int, str]]:
        return itertools.islice(enumerate(_walk_folder(str(path))), start, None)

    return Source(path, "folder", count, refs, lambda _index, ref: Path(ref).read_bytes())


def _walk_folder(root: str) -> Iterator[str]:
    """The message files under `root` in the order of their sorted full paths, one folder at a time.

    Each folder's entries are sorted by name, a subfolder's name with a `/` after it: that puts
    every file in the place a sort of all the full paths would (what earlier versions did, so a
    saved position still points at the same file), while only the names of the folders on the
    current path are held, not every path of the tree. Hidden files and folders are skipped;
    symlinked files count (mu and notmuch make folders of links); linked folders are not
    followed, so a link cannot loop or pull in a whole other tree.
    """
    names: list[str] = []
    with os.scandir(root) as listing:
        for entry in listing:
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                names.append(entry.name + "/")
            elif entry.is_file():
                names.append(entry.name)
    names.sort()
    for name in names:
        if name.endswith("/"):
            yield from _walk_folder(os.path.join(root, name[:-1]))
        else:
            yield os.path.join(root, name)


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
        last = source.ref(position - 1)
        same = last == saved.get("last") and _fingerprint(source.read(position - 1, last)) == saved.get("sha")
    except (OSError, KeyError):
        same = False
    if not same:
        return 0, "the source changed since it was last read; reading it again from the start"
    return position, None


# The import ------------------------------------------------------------------------------------


@dataclass
class _Read:
    """A batch as read from the source: where it ends (for the cursor) and its messages."""

    end: int
    last_ref: str
    last_sha: str
    refs: list[str]


def _read_batches(source: Source, start: int, batch_size: int) -> Iterator[Batch]:
    """The source from `start` on in batches of `batch_size` files (mail or not: a run of skipped
    files still saves its progress), each read whole before it is parsed."""
    raws: list[tuple[str, bytes]] = []
    index = start - 1
    for index, ref in source.refs(start):
        if index >= len(source):  # files added to a folder while it is read wait for the next run
            index -= 1
            break
        try:
            raw = source.read(index, ref)
        except PermissionError as exc:
            raise ImportSourceError(_permission_advice(exc.filename or ref)) from None
        except OSError as exc:
            raise ImportSourceError(f"cannot read {ref}: {exc.strerror or exc}; fix that and run "
                                    "the same command again: the import continues where it stopped") from None
        raws.append((ref, raw))
        if len(raws) == batch_size or index == len(source) - 1:
            yield Batch(payload=raws, meta=_Read(end=index + 1, last_ref=ref, last_sha=_fingerprint(raw),
                                                 refs=[r for r, _ in raws]))
            raws = []
    if raws:  # the folder shrank while it was read
        ref, raw = raws[-1]
        yield Batch(payload=raws, meta=_Read(end=index + 1, last_ref=ref, last_sha=_fingerprint(raw),
                                             refs=[r for r, _ in raws]))


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
    workers: int | None = None,
) -> ImportReport:
    """Import every message of the mailbox at `path` into `channel`, resuming an earlier run.

    `progress(n, batch_report)` is called after each committed batch of `n` messages; `on_open`
    once the source is listed (the report then knows `total` and `skipped`). `max_batches` stops
    after that many batches (the report says `complete=False`): a run cut short, for tests.
    `workers` parsing processes (None: one per CPU for an import of at least
    `parse_pool.MIN_MESSAGES_FOR_PROCESSES` messages, else none; 0: parse in this process).
    This process stays the only writer: batches are stored in source order, each with its cursor.
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
        workers = workers_for(len(source) - start, workers)
        options = {"channel": channel, "kind": source.kind, "max_bytes": max_bytes,
                   "max_attachment_bytes": max_attachment_bytes}
        with ParsePipeline(parse_batch, options, workers=workers) as pipeline:
            for batch, done in pipeline.run(_read_batches(source, start, batch_size)):
                read: _Read = batch.meta
                parsed = done.parsed
                items = [p for p in parsed if isinstance(p, InboundItem)]
                rejects = [p for p in parsed if isinstance(p, Reject)]
                report.not_mail += [os.path.relpath(ref, key) for ref, p in zip(read.refs, parsed, strict=True)
                                    if p is None]
                # Read the cursor again: another source may have been imported into this channel meanwhile.
                cursor = _load_cursor(channel, store.cursor(channel))
                cursor["sources"][key] = {"kind": source.kind, "position": read.end, "last": read.last_ref,
                                          "sha": read.last_sha, "total": len(source)}
                count = len(items) + len(rejects)
                result = ingestor.ingest(channel, FetchResult(items=items, rejects=rejects,
                                                              cursor=json.dumps(cursor, sort_keys=True)),
                                         sanitized=done.sanitized)
                report.messages += count
                report.stored += result.stored
                report.duplicates += result.duplicates
                report.quarantined += result.quarantined
                report.batches += 1
                if progress:
                    progress(count, result)
                if max_batches is not None and report.batches >= max_batches and read.end < len(source):
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
        for index, ref in source.refs():
            yield ref, source.read(index, ref)
    finally:
        source.close()
