"""Ingest benchmark: the SpamAssassin corpus (6,046 real messages) through `mainland import`,
against two bare parse-and-insert loops on the same files, in the same run.

    .venv/bin/python bench/ingest.py [--runs 3] [--scale N] [--keep DIR] [--engine postgresql]

Each measurement runs in a child process of its own (a fresh temporary database each time), so
its peak memory (ru_maxrss) is its own; the three are run one after another `--runs` times
(pairs on the same machine state), and every ratio is the median of the per-run ratios. The
files are read once before timing so that all start from a warm page cache.

* Mainland: `inbox.importer.import_mailbox` on a folder of the corpus files, the real pipeline:
  parse (inbox.mail, in worker processes when there is more than one CPU), sanitize HTML, triage,
  customers, threading, attachments on disk, messages + raw bytes + FTS5 index, cursor, one
  transaction per batch of 200.
* Minimal (the honest limit, one core): `email.message_from_bytes(raw, policy=compat32)`,
  subject, from and the first text part, inserted with the raw bytes into a SQLite table with
  a unique key on the message's identity and an FTS5 index, 200 rows per transaction, WAL,
  synchronous=FULL like Mainland.
* policy.default: the same loop with `email.policy.default` and `get_body()` (what a plain
  stdlib importer would write today); on any exception the raw text is kept, so none is lost.

Wall and CPU seconds are both reported (CPU includes the worker processes); on a shared machine
compare CPU and ratios rather than absolute rates. `--scale N` imports N messages (the corpus
copied with rewritten Message-IDs) and reports how the rate on the last complete copy compares
with the first copy (`last_to_first_segment`) and the peak memory, to show the import stays flat.

`--engine postgresql` (#17) also runs Mainland's import on PostgreSQL in each run, beside the same
import on SQLite, on a throwaway cluster started for the bench from Debian's server (durable: fsync
on, as a production server; `tests/pg_cluster.py`), a fresh database each time. The JSON then has
`postgresql_msgs_per_s` and `postgresql_to_sqlite`, the median of the per-run ratios of the two
rates (target >= 1 / 1.5). The CPU figures are Mainland's processes only, not the server's.

Prints the figures and, as the last line, one JSON object: engine, msgs_per_s, minimal_msgs_per_s,
policy_default_msgs_per_s, ratio_to_minimal, ratio_to_policy_default, peak_rss_mb, cpu figures,
counts, write_lock_max_ms (the longest an import batch held the database's write lock), and with
--scale last_to_first_segment (wall and writer CPU) and the minimal loop's own
(minimal_last_to_first_segment).
"""

from __future__ import annotations

import argparse
import contextlib
import email
import email.policy
import hashlib
import json
import os
import re
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: Mainland against the minimal loop on one core (issue #16).
TARGET_RATIO = 0.5
#: Rate of the last tenth of a --scale import against its first tenth.
TARGET_FLAT = 0.9
TARGET_RSS_MB = 200
#: PostgreSQL's import rate against SQLite's on the same machine (#17: within 1.5x).
TARGET_POSTGRESQL = 1 / 1.5
#: Where a bench's throwaway PostgreSQL cluster is, for the child processes.
CLUSTER_ENV = "MAINLAND_BENCH_PG_CLUSTER"
SEGMENTS = 10
BATCH = 200


def _peak_rss_mb() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_seconds() -> float:
    """CPU time of this process and of every process below it, running (read from /proc) or
    finished and reaped (RUSAGE_CHILDREN): the parsing workers are our children."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    total = usage.ru_utime + usage.ru_stime
    done = resource.getrusage(resource.RUSAGE_CHILDREN)
    total += done.ru_utime + done.ru_stime
    tick = os.sysconf("SC_CLK_TCK")
    for pid in _children(os.getpid()):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15]) / tick  # utime stime cutime cstime
    return total


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _list_files(folder: Path) -> list[Path]:
    files = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        files.extend(Path(root, n) for n in names if not n.startswith("."))
    return sorted(files)


# Children ------------------------------------------------------------------------------------


def run_mainland(folder: Path, work: Path, database: str | None = None) -> dict:
    from inbox import config as config_module
    from inbox.importer import import_mailbox
    from inbox.runtime import Mainland
    from inbox.store import write_locks

    config = config_module.load(None, overrides={"database": database or str(work / "mainland.db"),
                                                 "data_dir": str(work / "data")})
    mainland = Mainland(config, include_entry_points=False)
    store = mainland.open_store(migrate=True)
    marks: list[tuple[int, float, float]] = []  # (messages done, wall, this process's CPU) after each batch
    done = 0

    def progress(count: int, _batch: object) -> None:
        nonlocal done
        done += count
        marks.append((done, time.perf_counter(), time.process_time()))

    started, cpu_started = time.perf_counter(), _cpu_seconds()
    report = import_mailbox(store, mainland.ingestor(store), folder, batch_size=BATCH, progress=progress,
                            max_bytes=config.max_message_bytes, max_attachment_bytes=config.max_attachment_bytes)
    seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_started
    counts = store.counts()
    store.close()
    return {"messages": report.messages, "write_lock_max_ms": write_locks.figures()["max_ms"],
            "stored": report.stored, "duplicates": report.duplicates,
            "quarantined": report.quarantined, "seconds": seconds, "cpu_seconds": cpu, "rows": counts["messages"],
            "peak_rss_mb": _peak_rss_mb(), **_segments(marks, _copy_size(folder))}


def _copy_size(folder: Path) -> int | None:
    """Messages per corpus copy in a --scale folder (None for the plain corpus)."""
    if not (folder / "copy001").is_dir():
        return None
    return len(_list_files(folder / "copy000"))


def _segments(marks: list[tuple[int, float, float]], copy_size: int | None) -> dict:
    """The rate at the end of the import against the rate at its start, on the same mail.

    With --scale the folder holds copies of the corpus, whose folders (easy ham, hard ham, spam)
    differ in cost: the first copy is compared with the last complete one. Otherwise the first
    tenth with the last. Counted from the first committed batch on (starting the worker processes
    is not held against the start), in wall time and in the writer's CPU time.
    """
    if len(marks) < 2 * SEGMENTS:
        return {}
    total = marks[-1][0]
    if copy_size and total >= 2 * copy_size:
        last_copy = total // copy_size - 1
        first_span = (marks[0][0], copy_size)
        last_span = (last_copy * copy_size + marks[0][0], (last_copy + 1) * copy_size)
    else:
        tenth = (total - marks[0][0]) / SEGMENTS
        first_span, last_span = (marks[0][0], marks[0][0] + tenth), (total - tenth, total)

    def rate(span: tuple[float, float], column: int) -> float:
        a = next(m for m in marks if m[0] >= span[0])
        b = next(m for m in marks if m[0] >= span[1])
        return (b[0] - a[0]) / max(b[column] - a[column], 1e-9)

    return {"first_segment_msgs_per_s": rate(first_span, 1), "last_segment_msgs_per_s": rate(last_span, 1),
            "first_segment_msgs_per_writer_cpu_s": rate(first_span, 2),
            "last_segment_msgs_per_writer_cpu_s": rate(last_span, 2)}


def _table(conn: sqlite3.Connection) -> tuple[str, str]:
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, subject TEXT, "
                 "sender TEXT, body TEXT, raw BLOB)")
    conn.execute("CREATE VIRTUAL TABLE messages_fts USING fts5(subject, sender, body, content='messages', "
                 "content_rowid='id')")
    return ("INSERT INTO messages (key, subject, sender, body, raw) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (key) DO NOTHING RETURNING id",
            "INSERT INTO messages_fts (rowid, subject, sender, body) VALUES (?, ?, ?, ?)")


def _minimal_fields(raw: bytes) -> tuple[str, str, str, str]:
    """compat32: key (Message-ID or the bytes' hash), subject, from and the first text part."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    key = str(msg.get("message-id") or "") or hashlib.sha256(raw).hexdigest()
    text = ""
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            payload = part.get_payload(decode=True) or b""
            text = payload.decode(part.get_content_charset() or "utf-8", "replace")
            break
    return key, str(msg.get("subject") or ""), str(msg.get("from") or ""), text


def _policy_default_fields(raw: bytes) -> tuple[str, str, str, str]:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    key = str(msg.get("message-id") or "") or hashlib.sha256(raw).hexdigest()
    body = msg.get_body(("plain", "html"))
    text = body.get_content() if body is not None else ""
    return key, str(msg.get("subject") or ""), str(msg.get("from") or ""), text


def run_loop(folder: Path, work: Path, fields) -> dict:
    """A bare loop: list, read, parse with `fields`, insert 200 rows per transaction with FTS5."""
    conn = sqlite3.connect(str(work / "loop.db"), isolation_level=None)
    insert, insert_fts = _table(conn)
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    rows: list[tuple] = []
    fallbacks = count = 0
    marks: list[tuple[int, float, float]] = []  # as run_mainland's, for the loop's own flatness

    def flush() -> None:
        conn.execute("BEGIN")
        for row in rows:
            stored = conn.execute(insert, row).fetchone()
            if stored is not None:
                conn.execute(insert_fts, (stored[0], *row[1:4]))
        conn.execute("COMMIT")
        marks.append(((marks[-1][0] if marks else 0) + len(rows), time.perf_counter(), time.process_time()))
        rows.clear()

    for path in _list_files(folder):
        raw = path.read_bytes()
        count += 1
        try:
            key, subject, sender, text = fields(raw)
        except Exception:  # the fallback path: keep the message as raw text
            fallbacks += 1
            key, subject, sender, text = hashlib.sha256(raw).hexdigest(), "", "", raw.decode("utf-8", "replace")
        rows.append((key[:500], subject, sender, text.replace("\x00", ""), raw))
        if len(rows) >= BATCH:
            flush()
    if rows:
        flush()
    seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_started
    stored = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
    conn.close()
    return {"messages": count, "stored": stored, "fallbacks": fallbacks, "seconds": seconds, "cpu_seconds": cpu,
            "peak_rss_mb": _peak_rss_mb(), **_segments(marks, _copy_size(folder))}


def run_mainland_postgresql(folder: Path, work: Path) -> dict:
    """`run_mainland` on a fresh database of the bench's cluster, dropped afterwards."""
    from tests.pg_cluster import create_database, drop_database

    database = create_database(os.environ[CLUSTER_ENV])
    try:
        return run_mainland(folder, work, database)
    finally:
        drop_database(database)


PHASES = {
    "minimal": lambda folder, work: run_loop(folder, work, _minimal_fields),
    "policy_default": lambda folder, work: run_loop(folder, work, _policy_default_fields),
    "mainland": run_mainland,
    "mainland_postgresql": run_mainland_postgresql,
}


# The parent ----------------------------------------------------------------------------------


def _child(phase: str, folder: Path, scratch: Path) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"{phase}-", dir=scratch))
    result = subprocess.run([sys.executable, __file__, "--phase", phase, "--folder", str(folder),
                             "--work", str(work)], capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        raise SystemExit(f"the {phase} run failed:\n{result.stderr}")
    shutil.rmtree(work, ignore_errors=True)  # the next run starts from an empty database
    return json.loads(result.stdout.strip().splitlines()[-1])


def _materialise(scratch: Path, scale: int | None) -> Path:
    """The corpus files alone in one folder (the package also holds JSON), read once to warm the
    cache; with `scale`, that many messages: copy k of each file gets Message-ID `<bench-k.ID>` and
    an `X-Bench-Copy: k` header, so that every copy is a message of its own."""
    from tests.corpus import corpus_paths

    folder = scratch / "corpus"
    paths = corpus_paths()
    total = scale or len(paths)
    for n in range(total):
        copy, original = divmod(n, len(paths))
        source = paths[original]
        target = folder / f"copy{copy:03d}" / source.parent.name / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if copy == 0:
            if target.exists():  # --keep of an earlier run: the same file
                continue
            try:
                os.link(source, target)
            except OSError:
                shutil.copyfile(source, target)
        else:
            target.write_bytes(_rewritten(source.read_bytes(), copy))
    if scale is None:
        for path in _list_files(folder):
            path.read_bytes()
    return folder


_MESSAGE_ID = re.compile(rb"^(message-id:[ \t]*<?)", re.IGNORECASE | re.MULTILINE)


def _rewritten(raw: bytes, copy: int) -> bytes:
    first, sep, rest = raw.partition(b"\n")
    mark = b"X-Bench-Copy: %d\n" % copy
    if first.startswith(b"From "):  # the mbox separator line stays first
        head, blank, body = rest.partition(b"\n\n")
        return first + sep + mark + _MESSAGE_ID.sub(rb"\1bench-%d." % copy, head, count=1) + blank + body
    head, blank, body = raw.partition(b"\n\n")
    return mark + _MESSAGE_ID.sub(rb"\1bench-%d." % copy, head, count=1) + blank + body


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each measurement; ratios are medians")
    parser.add_argument("--scale", type=int, help="import this many messages (corpus copies) and report flatness")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")
    parser.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite",
                        help="postgresql: also import on a throwaway PostgreSQL cluster, side by side")
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase:  # a child: one measurement, one JSON line
        print(json.dumps(PHASES[args.phase](args.folder, args.work)))
        return

    scratch = args.keep or Path(tempfile.mkdtemp(prefix="mainland-bench-"))
    scratch.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict]] = {phase: [] for phase in PHASES}
    phases = ["minimal", "policy_default", "mainland"]
    with contextlib.ExitStack() as cleanup:
        if args.engine == "postgresql":
            from tests.pg_cluster import ThrowawayCluster

            os.environ[CLUSTER_ENV] = cleanup.enter_context(ThrowawayCluster(durable=True))
            phases.append("mainland_postgresql")
        _measure(args, scratch, phases, results)
    print()
    print(json.dumps(_summary(results, args)))


def _measure(args: argparse.Namespace, scratch: Path, phases: list[str], results: dict[str, list[dict]]) -> None:
    try:
        folder = _materialise(scratch, args.scale)
        print(f"corpus: {len(_list_files(folder))} messages in {folder}; {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.1f}")
        for n in range(1, max(1, args.runs) + 1):
            for phase in phases:
                result = _child(phase, folder, scratch)
                results[phase].append(result)
                extra = (f"{result['stored']} stored, {result['duplicates']} duplicates, "
                         f"{result['quarantined']} quarantined" if phase.startswith("mainland")
                         else f"{result['stored']} stored, {result['fallbacks']} via the fallback path")
                print(f"run {n} {phase:<14} {result['messages']} messages in {result['seconds']:6.2f} s = "
                      f"{result['messages'] / result['seconds']:6.0f} msg/s, CPU {result['cpu_seconds']:6.2f} s, "
                      f"peak RSS {result['peak_rss_mb']:.0f} MB ({extra})")
    finally:
        if args.keep is None:
            shutil.rmtree(scratch, ignore_errors=True)


def _summary(results: dict[str, list[dict]], args: argparse.Namespace) -> dict:
    def rates(phase: str, column: str = "seconds") -> list[float]:
        return [r["messages"] / r[column] for r in results[phase]]

    ours = results["mainland"]
    ratio_minimal = _median([a / b for a, b in zip(rates("mainland"), rates("minimal"), strict=True)])
    ratio_default = _median([a / b for a, b in zip(rates("mainland"), rates("policy_default"), strict=True)])
    summary = {
        "engine": args.engine,
        "msgs_per_s": round(_median(rates("mainland")), 1),
        "minimal_msgs_per_s": round(_median(rates("minimal")), 1),
        "policy_default_msgs_per_s": round(_median(rates("policy_default")), 1),
        "ratio_to_minimal": round(ratio_minimal, 3),
        "ratio_to_policy_default": round(ratio_default, 3),
        "msgs_per_cpu_s": round(_median(rates("mainland", "cpu_seconds")), 1),
        "minimal_msgs_per_cpu_s": round(_median(rates("minimal", "cpu_seconds")), 1),
        "peak_rss_mb": round(max(r["peak_rss_mb"] for r in ours), 1),
        "minimal_peak_rss_mb": round(max(r["peak_rss_mb"] for r in results["minimal"]), 1),
        "messages": ours[-1]["messages"],
        "stored": ours[-1]["stored"],
        "duplicates": ours[-1]["duplicates"],
        "quarantined": ours[-1]["quarantined"],
        "seconds": round(_median([r["seconds"] for r in ours]), 2),
        "write_lock_max_ms": max(r["write_lock_max_ms"] for r in ours),
        "cpu_seconds": round(_median([r["cpu_seconds"] for r in ours]), 2),
        "runs": args.runs,
        "cpus": os.cpu_count(),
        "load_average": round(os.getloadavg()[0], 2),
    }
    if args.scale and all("first_segment_msgs_per_s" in r for r in ours):
        summary["scale"] = args.scale
        summary["last_to_first_segment"] = round(_median(
            [r["last_segment_msgs_per_s"] / r["first_segment_msgs_per_s"] for r in ours]), 3)
        summary["last_to_first_segment_writer_cpu"] = round(_median(
            [r["last_segment_msgs_per_writer_cpu_s"] / r["first_segment_msgs_per_writer_cpu_s"] for r in ours]), 3)
    if args.scale and all("first_segment_msgs_per_s" in r for r in results["minimal"]):
        # The honest limit's own flatness: its search index grows and merges as Mainland's does.
        summary["minimal_last_to_first_segment"] = round(_median(
            [r["last_segment_msgs_per_s"] / r["first_segment_msgs_per_s"] for r in results["minimal"]]), 3)
    if results["mainland_postgresql"]:
        pg = results["mainland_postgresql"]
        summary["postgresql_msgs_per_s"] = round(_median(rates("mainland_postgresql")), 1)
        summary["postgresql_msgs_per_cpu_s"] = round(_median(rates("mainland_postgresql", "cpu_seconds")), 1)
        summary["postgresql_to_sqlite"] = round(_median(
            [a / b for a, b in zip(rates("mainland_postgresql"), rates("mainland"), strict=True)]), 3)
        summary["postgresql_stored"] = pg[-1]["stored"]
        summary["postgresql_write_lock_max_ms"] = max(r["write_lock_max_ms"] for r in pg)
        summary["postgresql_peak_rss_mb"] = round(max(r["peak_rss_mb"] for r in pg), 1)
        print(f"PostgreSQL against SQLite: {summary['postgresql_to_sqlite']:.2f} "
              f"(target >= {TARGET_POSTGRESQL:.2f}, within 1.5x)")
    lost = summary["messages"] - summary["stored"] - summary["quarantined"] - summary["duplicates"]
    print(f"ratio to the minimal loop: {ratio_minimal:.2f} (target >= {TARGET_RATIO}); "
          f"to the policy.default loop: {ratio_default:.2f}; {lost} lost")
    if "last_to_first_segment" in summary:
        print(f"end / start of the import: {summary['last_to_first_segment']:.2f} (target >= {TARGET_FLAT}); "
              f"peak RSS {summary['peak_rss_mb']:.0f} MB (target <= {TARGET_RSS_MB})")
    return summary


if __name__ == "__main__":
    main()
