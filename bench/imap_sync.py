"""First sync of a big mailbox over IMAP: the SpamAssassin corpus (6,046 mails) in a private Dovecot,
polled into an empty Mainland as the worker polls it (#16).

    .venv/bin/python bench/imap_sync.py [--max-per-poll 500 10000] [--runs 1]

A private Dovecot on 127.0.0.1 (tests/servers.py) gets the corpus once (APPEND, as the server stores
mail: CRLF lines, no mbox "From " line). Then, for each `--max-per-poll` value and `--runs` times,
a child process with a fresh database runs `inbox.poller.poll_channel` on an email channel over and
over, with no pause between polls, until a poll finds nothing new: the first sync, without the
minutes between the worker's polls. The child's CPU includes its parsing worker processes.

With the product's default `max_per_poll` (500) each poll reads 500 mails, below the threshold for
worker processes (`inbox.parse_pool.MIN_MESSAGES_FOR_PROCESSES`), so it parses in its own process;
with `max_per_poll` at 10,000 one poll reads the whole mailbox and parses in worker processes when
the machine has more than one CPU.

Prints one line per run and, as the last line, one JSON object: per max_per_poll value the median
msgs_per_s, wall and CPU seconds (all, the writer's, the parsing workers'), polls, stored and
quarantined; the CPU count and load averages. On a shared machine the writer's CPU is the figure to
compare: with worker processes it is what bounds the rate once a core is free for the parsing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CHANNEL = "mail"


def _cpu_seconds() -> tuple[float, float]:
    """CPU of this process (the writer, which also fetches) and of its finished children (the parsing
    workers, reaped at the end of each poll)."""
    mine, children = (resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return mine.ru_utime + mine.ru_stime, children.ru_utime + children.ru_stime


def sync(account: dict, work: Path, max_per_poll: int) -> dict:
    """The child: poll until a poll finds nothing new; figures as a dict."""
    from inbox.config import from_mapping
    from inbox.poller import poll_channel
    from inbox.runtime import Mainland

    config = from_mapping({
        "database": str(work / "mainland.db"), "data_dir": str(work / "data"), "secret_key": "bench",
        "instance_id": "bench", "mail_domain": "mainland.test",
        "channels": {CHANNEL: {
            "kind": "imap", "host": account["host"], "port": account["port"], "security": "none",
            "username": account["user"], "password": account["password"], "address": "support@mainland.test",
            "max_per_poll": max_per_poll, "timeout": 120,
        }},
    }, base=work)
    mainland = Mainland(config, include_entry_points=False)
    store = mainland.open_store(migrate=True)
    with mainland.ingestor(store).triage.model_opened():  # its first opening imports scikit-learn: not a sync's
        pass
    started, cpu = time.perf_counter(), _cpu_seconds()
    stored = quarantined = polls = 0
    while True:
        outcome = poll_channel(mainland, store, CHANNEL, ignore_pause=True)
        if not outcome.ok:
            raise SystemExit(f"poll failed: {outcome.error or outcome.skipped}")
        polls += 1
        stored += outcome.report.stored
        quarantined += outcome.report.quarantined
        if not (outcome.report.stored or outcome.report.quarantined or outcome.report.duplicates):
            break
    seconds, (writer, workers) = time.perf_counter() - started, _cpu_seconds()
    writer, workers = writer - cpu[0], workers - cpu[1]
    counts = store.counts()
    store.close()
    return {"max_per_poll": max_per_poll, "seconds": round(seconds, 2), "cpu_seconds": round(writer + workers, 2),
            "writer_cpu_seconds": round(writer, 2), "workers_cpu_seconds": round(workers, 2),
            "msgs_per_s": round((stored + quarantined) / seconds, 1), "polls": polls, "stored": stored,
            "quarantined": quarantined, "messages_in_db": counts["messages"]}


def _child(account: dict, scratch: Path, max_per_poll: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="sync-", dir=scratch))
    info = {k: account[k] for k in ("host", "port", "user", "password")}
    result = subprocess.run([sys.executable, __file__, "--child", json.dumps(info), "--work", str(work),
                             "--max-per-poll", str(max_per_poll)], capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        raise SystemExit(f"the sync failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-per-poll", type=int, nargs="+", default=[500, 10_000])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--child")
    parser.add_argument("--work")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(sync(json.loads(args.child), Path(args.work), args.max_per_poll[0])))
        return

    from tests.corpus import corpus_paths
    from tests.servers import DovecotServer, imap_append_many
    from tests.test_imap_corpus import as_stored

    raws = [as_stored(path.read_bytes()) for path in corpus_paths()]
    results: dict[int, list[dict]] = {value: [] for value in args.max_per_poll}
    loads = []
    with DovecotServer() as server, tempfile.TemporaryDirectory(prefix="imap-sync-") as scratch:
        account = server.add_user("bench", "bench-secret")
        imap_append_many(account, raws)
        print(f"{len(raws)} mails in Dovecot; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}")
        for _ in range(args.runs):
            for value in args.max_per_poll:
                loads.append(os.getloadavg()[0])
                run = _child(account, Path(scratch), value)
                results[value].append(run)
                print(f"max_per_poll {value}: {run['msgs_per_s']} msg/s, {run['seconds']} s wall, "
                      f"{run['cpu_seconds']} s CPU ({run['writer_cpu_seconds']} s the writer's), {run['polls']} polls, {run['stored']} stored, "
                      f"{run['quarantined']} quarantined (load average {loads[-1]:.2f})")
    summary = {str(value): {key: statistics.median(r[key] for r in runs)
                            for key in ("msgs_per_s", "seconds", "cpu_seconds", "writer_cpu_seconds",
                                        "workers_cpu_seconds", "polls", "stored", "quarantined")}
               for value, runs in results.items()}
    print(json.dumps({"runs": summary, "cpus": os.cpu_count(), "load_average_at_start": [round(x, 2) for x in loads],
                      "load_average_end": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
