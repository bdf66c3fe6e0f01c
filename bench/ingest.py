"""Ingest benchmark: the SpamAssassin corpus (6,046 real messages) through `mainland import`,
against a bare parse-and-insert loop on the same files.

    .venv/bin/python bench/ingest.py [--runs 2] [--keep DIR]

Each measurement runs in a child process of its own (a fresh temporary database each time), so
its peak memory (ru_maxrss) is its own; each is run `--runs` times, alternating, and the best
rate counts. The files are read once before timing so that both start from a warm page cache.

* Mainland: `inbox.importer.import_mailbox` on a folder of the corpus files, the real pipeline:
  parse (inbox.mail), sanitize HTML, triage, customers, threading, attachments on disk, messages +
  raw bytes + FTS5 index, cursor, one transaction per batch of 200.
* Baseline: `email.message_from_bytes(raw, policy=email.policy.default)`, subject, from and the
  text body (`get_body(("plain", "html"))`; on any exception the raw text is kept instead, so none
  is lost), inserted with the raw bytes into a SQLite table with an FTS5 index, 500 rows per
  transaction, WAL, synchronous=FULL like Mainland.

Prints the figures, the ratio Mainland/baseline (target >= 0.6) and, as the last line, one JSON
object: msgs_per_s, baseline_msgs_per_s, ratio, peak_rss_mb, baseline_peak_rss_mb, stored,
duplicates, quarantined, messages, seconds, baseline_seconds, runs.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGET_RATIO = 0.6


def _peak_rss_mb() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _list_files(folder: Path) -> list[Path]:
    files = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        files.extend(Path(root, n) for n in names if not n.startswith("."))
    return sorted(files)


# Children ------------------------------------------------------------------------------------


def run_mainland(folder: Path, work: Path) -> dict:
    from inbox import config as config_module
    from inbox.importer import import_mailbox
    from inbox.runtime import Mainland

    config = config_module.load(None, overrides={"database": str(work / "mainland.db"),
                                                 "data_dir": str(work / "data")})
    mainland = Mainland(config, include_entry_points=False)
    store = mainland.open_store(migrate=True)
    started = time.perf_counter()
    report = import_mailbox(store, mainland.ingestor(store), folder,
                            max_bytes=config.max_message_bytes, max_attachment_bytes=config.max_attachment_bytes)
    seconds = time.perf_counter() - started
    counts = store.counts()
    store.close()
    return {"messages": report.messages, "stored": report.stored, "duplicates": report.duplicates,
            "quarantined": report.quarantined, "seconds": seconds, "rows": counts["messages"],
            "peak_rss_mb": _peak_rss_mb()}


def run_baseline(folder: Path, work: Path) -> dict:
    conn = sqlite3.connect(str(work / "baseline.db"), isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY, subject TEXT, sender TEXT, body TEXT, raw BLOB)")
    conn.execute("CREATE VIRTUAL TABLE messages_fts USING fts5(subject, sender, body, content='messages', "
                 "content_rowid='id')")
    insert = "INSERT INTO messages (id, subject, sender, body, raw) VALUES (?, ?, ?, ?, ?)"
    insert_fts = "INSERT INTO messages_fts (rowid, subject, sender, body) VALUES (?, ?, ?, ?)"
    started = time.perf_counter()
    rows: list[tuple] = []
    fallbacks = 0
    count = 0

    def flush() -> None:
        conn.execute("BEGIN")
        conn.executemany(insert, rows)
        conn.executemany(insert_fts, [r[:4] for r in rows])
        conn.execute("COMMIT")
        rows.clear()

    for path in _list_files(folder):
        raw = path.read_bytes()
        count += 1
        try:
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            subject = str(msg.get("subject") or "")
            sender = str(msg.get("from") or "")
            body = msg.get_body(("plain", "html"))
            text = body.get_content() if body is not None else ""
        except Exception:  # the fallback path: keep the message as raw text
            fallbacks += 1
            subject, sender, text = "", "", raw.decode("utf-8", "replace")
        rows.append((count, subject, sender, text, raw))
        if len(rows) >= 500:
            flush()
    if rows:
        flush()
    seconds = time.perf_counter() - started
    stored = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
    conn.close()
    return {"messages": count, "stored": stored, "fallbacks": fallbacks, "seconds": seconds,
            "peak_rss_mb": _peak_rss_mb()}


# The parent ----------------------------------------------------------------------------------


def _child(phase: str, folder: Path, scratch: Path) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"{phase}-", dir=scratch))
    result = subprocess.run([sys.executable, __file__, "--phase", phase, "--folder", str(folder),
                             "--work", str(work)], capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        raise SystemExit(f"the {phase} run failed:\n{result.stderr}")
    shutil.rmtree(work, ignore_errors=True)  # the next run starts from an empty database
    return json.loads(result.stdout.strip().splitlines()[-1])


def _materialise(scratch: Path) -> Path:
    """The corpus files alone in one folder (the package also holds JSON), read once to warm the cache."""
    from tests.corpus import corpus_paths

    folder = scratch / "corpus"
    for path in corpus_paths():
        target = folder / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copyfile(path, target)
    for path in _list_files(folder):
        path.read_bytes()
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2, help="runs of each measurement; the best counts")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")
    parser.add_argument("--phase", choices=["mainland", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase:  # a child: one measurement, one JSON line
        run = run_mainland if args.phase == "mainland" else run_baseline
        print(json.dumps(run(args.folder, args.work)))
        return

    scratch = args.keep or Path(tempfile.mkdtemp(prefix="mainland-bench-"))
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        folder = _materialise(scratch)
        print(f"corpus: {len(_list_files(folder))} messages in {folder}")
        best: dict[str, dict] = {}
        for n in range(1, max(1, args.runs) + 1):
            for phase in ("baseline", "mainland"):
                result = _child(phase, folder, scratch)
                rate = result["messages"] / result["seconds"]
                extra = (f"{result['stored']} stored, {result['duplicates']} duplicates, "
                         f"{result['quarantined']} quarantined" if phase == "mainland"
                         else f"{result['stored']} stored, {result['fallbacks']} via the fallback path")
                print(f"run {n} {phase:<9} {result['messages']} messages in {result['seconds']:6.2f} s = "
                      f"{rate:6.0f} msg/s, peak RSS {result['peak_rss_mb']:.0f} MB ({extra})")
                if phase not in best or rate > best[phase]["messages"] / best[phase]["seconds"]:
                    best[phase] = result
                # Peak memory: the worst run, not the fastest one.
                best[phase]["worst_rss"] = max(best[phase].get("worst_rss", 0), result["peak_rss_mb"])
    finally:
        if args.keep is None:
            shutil.rmtree(scratch, ignore_errors=True)

    ours, base = best["mainland"], best["baseline"]
    rate, base_rate = ours["messages"] / ours["seconds"], base["messages"] / base["seconds"]
    ratio = rate / base_rate
    lost = ours["messages"] - ours["stored"] - ours["quarantined"] - ours["duplicates"]
    print()
    print(f"Mainland import : {rate:7.0f} msg/s  (best of {args.runs}), peak RSS {ours['worst_rss']:.0f} MB")
    print(f"bare baseline   : {base_rate:7.0f} msg/s  (best of {args.runs}), peak RSS {base['worst_rss']:.0f} MB")
    print(f"ratio           : {ratio:7.2f}  (target >= {TARGET_RATIO}: {'met' if ratio >= TARGET_RATIO else 'NOT met'})")
    print(f"accounted for   : {ours['stored']} stored + {ours['quarantined']} quarantined + {ours['duplicates']} "
          f"duplicates of {ours['messages']} ({lost} lost)")
    print(json.dumps({
        "msgs_per_s": round(rate, 1),
        "baseline_msgs_per_s": round(base_rate, 1),
        "ratio": round(ratio, 3),
        "peak_rss_mb": round(ours["worst_rss"], 1),
        "baseline_peak_rss_mb": round(base["worst_rss"], 1),
        "messages": ours["messages"],
        "stored": ours["stored"],
        "duplicates": ours["duplicates"],
        "quarantined": ours["quarantined"],
        "seconds": round(ours["seconds"], 2),
        "baseline_seconds": round(base["seconds"], 2),
        "runs": args.runs,
    }))


if __name__ == "__main__":
    main()
