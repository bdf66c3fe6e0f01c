"""Web benchmark: the agent pages at 100,000 conversations and 1,000,000 messages.

    python bench/web.py [--requests 200] [--clients 50] [--seconds 10] [--db PATH] [--rebuild]

1. Builds (once) a database with 100,000 conversations, 1,000,000 messages (with the FTS5 index),
   60,000 customers, 5 teams, 20 agents and 10 labels, through the real migrations; the file is
   cached as /tmp/mainland-bench-web-v<N>.db (N = GENERATOR_VERSION) and reused by later runs.
   Rows are written with executemany in large transactions; the message FTS index is built in
   one 'rebuild' at the end instead of row by row (the per-row trigger is dropped during the
   load and put back, unchanged, afterwards).
2. Signs in as an agent of two of the five teams (so every query carries the team restriction)
   and measures, in-process through Flask's test client, the server time of N requests each of:
   the queue page, a filtered queue page (a channel, unassigned, sorted by waiting time), a
   conversation page (a different conversation each time) and a search (a different common
   word each time). Prints median and p95 of each.
   Also the worst realistic cases: a 500-message conversation and a customer with 2,000 messages
   (added to the cached file once, through plain inserts with the search triggers in place), with
   the size of the HTML each page sends.
3. Serves the app with waitress on 127.0.0.1 and lets 50 client threads (requests.Session each,
   same signed-in cookie) fetch the queue page for --seconds; prints requests/s and latency.

Last line: one JSON object with queue_p50_ms, queue_p95_ms, filtered_p95_ms, conversation_p95_ms,
search_p95_ms, long_thread_p95_ms, long_thread_kb, heavy_customer_p95_ms, heavy_customer_kb,
queue_rps and the data sizes. Targets: p95 < 50 ms (queue, conversation, long thread, heavy customer),
< 100 ms (search); HTML < 150 KB for the long thread and the heavy customer.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: Bump when the generated data or the schema it needs changes: the cached file is then rebuilt.
GENERATOR_VERSION = 2
CONVERSATIONS = 100_000
MESSAGES = 1_000_000
CUSTOMERS = 60_000
TEAMS = 5
AGENTS = 20
LABELS = 10
CHANNELS = ("mail", "telegram", "mastodon", "webform", "whatsapp")
PASSWORD = "bench password 1"
TARGETS = {"queue_p95_ms": 50, "conversation_p95_ms": 50, "search_p95_ms": 100, "long_thread_p95_ms": 50,
           "heavy_customer_p95_ms": 50, "long_thread_kb": 150, "heavy_customer_kb": 150}
LONG_THREAD = 500
HEAVY_CUSTOMER = 2000
HEAVY_SUBJECT = "bench: the long thread"


def default_db() -> Path:
    return Path(tempfile.gettempdir()) / f"mainland-bench-web-v{GENERATOR_VERSION}.db"


# Data ------------------------------------------------------------------------------------------

class Words:
    """A synthetic vocabulary with a Zipf-like frequency: a few very common words, a long tail."""

    def __init__(self, rng: random.Random, size: int = 8000) -> None:
        letters = "abcdefghijklmnopqrstuvwxyz"
        seen: set[str] = set()
        words = []
        while len(words) < size:
            word = "".join(rng.choice(letters) for _ in range(rng.randint(3, 9)))
            if word not in seen:
                seen.add(word)
                words.append(word)
        self.words = words
        self.cum = list(itertools.accumulate(1 / (rank + 1) for rank in range(size)))
        self.rng = rng

    def text(self, n: int) -> str:
        return " ".join(self.rng.choices(self.words, cum_weights=self.cum, k=n))

    def rank(self, index: int) -> str:
        return self.words[index]


def _iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def build(path: Path) -> dict:
    """Create the benchmark database at `path` (replacing it); returns what it holds."""
    from inbox.store import Store
    from inbox.web.auth import hash_password

    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    started = time.perf_counter()
    rng = random.Random(20261115)
    words = Words(rng)

    store = Store(path)
    store.migrate()
    now = _iso(dt.datetime.now(dt.UTC))
    for n in range(TEAMS):
        store.create_team(f"Team {n + 1}")
    agent_ids = []
    for n in range(AGENTS):
        agent_ids.append(store.create_agent(email=f"agent{n}@bench.example", name=f"Agent {n}", role="agent",
                                            password_hash=hash_password(PASSWORD) if n == 0 else None))
    team_ids = [t["id"] for t in store.teams()]
    store.set_agent_teams(agent_ids[0], team_ids[:2])
    for n in range(1, AGENTS):
        store.set_agent_teams(agent_ids[n], [team_ids[n % TEAMS]])
    label_ids = [store.ensure_label(f"label-{words.rank(200 + n)}") for n in range(LABELS)]
    store.close()

    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -400000")
    # The FTS trigger is the slow part of a bulk load; the index is rebuilt in one go below.
    fts_trigger = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'messages_ai'"
                               ).fetchone()[0]
    conn.execute("DROP TRIGGER messages_ai")

    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=365)
    span = 365 * 86400 - 3600

    # Customers, each with one identity on "their" channel.
    conn.execute("BEGIN")
    customers = []
    for n in range(1, CUSTOMERS + 1):
        first, last = words.rank(300 + n % 700).title(), words.rank(1000 + (n * 7) % 3000).title()
        channel = CHANNELS[n % len(CHANNELS)]
        handle = f"{first.lower()}.{last.lower()}{n}@example.net" if channel in ("mail", "webform") \
            else f"@{first.lower()}{n}"
        customers.append((n, f"{first} {last}", channel, handle))
    conn.executemany("INSERT INTO customers (id, display_name, created_at, updated_at) VALUES (?, ?, ?, ?)",
                     [(n, name, now, now) for n, name, _, _ in customers])
    conn.executemany("INSERT INTO identities (customer_id, kind, value, display, created_at) VALUES (?, ?, ?, ?, ?)",
                     [(n, "email" if ch in ("mail", "webform") else ch, handle, name, now)
                      for n, name, ch, handle in customers])
    conn.execute("COMMIT")

    # Conversations: message counts 1..19 (mean 10), spread over a year; statuses like a real
    # inbox (most resolved), a tenth unrouted, a third of the open ones unassigned.
    counts = [rng.randint(1, 19) for _ in range(CONVERSATIONS)]
    excess = sum(counts) - MESSAGES
    while excess:
        i = rng.randrange(CONVERSATIONS)
        step = 1 if excess > 0 else -1
        if 1 <= counts[i] - step <= 19:
            counts[i] -= step
            excess -= step
    statuses = ["resolved"] * 70 + ["open"] * 10 + ["new"] * 8 + ["pending"] * 7 + ["snoozed"] * 3 + ["spam"] * 2
    conv_rows = []
    message_plan = []  # (time, conversation id, index in conversation, count)
    for cid in range(1, CONVERSATIONS + 1):
        customer = customers[rng.randrange(CUSTOMERS)]
        first_at = rng.random() * span
        length = rng.random() * min(span - first_at, 14 * 86400)
        times = sorted(first_at + length * rng.random() for _ in range(counts[cid - 1] - 1))
        times.insert(0, first_at)
        for index, t in enumerate(times):
            message_plan.append((t, cid, index, len(times)))
        status = rng.choice(statuses)
        team = None if rng.random() < 0.1 else rng.choice(team_ids)
        assignee = None if (status in ("new", "open") and rng.random() < 0.35) else rng.choice(agent_ids)
        created = _iso(start + dt.timedelta(seconds=first_at))
        last = _iso(start + dt.timedelta(seconds=times[-1]))
        conv_rows.append((cid, f"tok{cid:08d}", customer[0], customer[2], f"thread-{cid}",
                          words.text(rng.randint(3, 7)).capitalize(), status, rng.choice([0, 0, 0, 1, 2, 3, 4]),
                          assignee, team, created, last, last, created))
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO conversations (id, token, customer_id, channel, thread_key, subject, status, priority, "
        "assignee_id, team_id, created_at, updated_at, last_message_at, last_inbound_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", conv_rows)
    conn.executemany("INSERT INTO conversation_labels (conversation_id, label_id) VALUES (?, ?)",
                     [(cid, rng.choice(label_ids)) for cid in range(1, CONVERSATIONS + 1) if rng.random() < 0.2])
    conn.execute("COMMIT")
    names = {row[0]: (row[2], row[3]) for row in conv_rows}
    del conv_rows

    # Messages in time order, so that ids grow with time as they do in a live inbox.
    message_plan.sort()
    batch = []
    conn.execute("BEGIN")
    for mid, (t, cid, index, total) in enumerate(message_plan, start=1):
        customer_id, channel = names[cid]
        customer = customers[customer_id - 1]
        # The customer writes first and last; agents answer in between.
        inbound = index % 2 == 0 or index == total - 1
        batch.append((
            mid, cid, channel, f"bench-{mid}", "in" if inbound else "out", customer_id if inbound else None,
            customer[1] if inbound else "Agent", customer[3] if inbound else "", "",
            words.text(rng.randint(12, 40)), _iso(start + dt.timedelta(seconds=t)),
        ))
        if len(batch) == 50_000:
            conn.executemany(
                "INSERT INTO messages (id, conversation_id, channel, external_id, direction, customer_id, "
                "author_name, author_handle, subject, text, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                batch)
            batch.clear()
            print(f"  {mid:,} messages", file=sys.stderr, flush=True)
    if batch:
        conn.executemany(
            "INSERT INTO messages (id, conversation_id, channel, external_id, direction, customer_id, "
            "author_name, author_handle, subject, text, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            batch)
    conn.execute("COMMIT")
    print("  building the message search index", file=sys.stderr, flush=True)
    conn.execute("INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')")
    conn.execute(fts_trigger)
    conn.execute("INSERT INTO messages_fts (messages_fts) VALUES ('optimize')")
    conn.execute("INSERT INTO conversation_search (conversation_search) VALUES ('optimize')")
    conn.execute("ANALYZE")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("VACUUM")
    conn.close()
    return {"seconds": round(time.perf_counter() - started, 1)}


def ensure_heavy(path: Path, team_id: int) -> tuple[int, int]:
    """(conversation id, customer id) of a 500-message thread and of a customer with 2,000 messages in
    40 conversations, all in `team_id`; added once to the cached database."""
    conn = sqlite3.connect(str(path), isolation_level=None)
    try:
        found = conn.execute("SELECT id, customer_id FROM conversations WHERE subject = ?", (HEAVY_SUBJECT,)
                             ).fetchone()
        if found:
            heavy = conn.execute("SELECT customer_id FROM conversations WHERE subject LIKE 'bench: heavy %' "
                                 "LIMIT 1").fetchone()
            return found[0], heavy[0]
        rng = random.Random(500)
        words = Words(rng)
        start = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
        now = _iso(dt.datetime.now(dt.UTC))
        conn.execute("BEGIN")

        def customer(name: str) -> int:
            return conn.execute("INSERT INTO customers (display_name, created_at, updated_at) VALUES (?, ?, ?)",
                                (name, now, now)).lastrowid

        def conversation(customer_id: int, subject: str, count: int, offset: int) -> int:
            first, last = _iso(start + dt.timedelta(minutes=offset)), _iso(start + dt.timedelta(minutes=offset + count))
            cid = conn.execute(
                "INSERT INTO conversations (token, customer_id, channel, thread_key, subject, status, team_id, "
                "created_at, updated_at, last_message_at, last_inbound_at) VALUES (?, ?, 'mail', ?, ?, 'open', ?, "
                "?, ?, ?, ?)", (f"heavy-{customer_id}-{offset}", customer_id, f"heavy-{customer_id}-{offset}",
                                subject, team_id, first, last, last, last)).lastrowid
            conn.executemany(
                "INSERT INTO messages (conversation_id, channel, external_id, direction, customer_id, author_name, "
                "author_handle, subject, text, received_at) VALUES (?, 'mail', ?, ?, ?, ?, ?, '', ?, ?)",
                [(cid, f"heavy-{cid}-{i}", "in" if i % 2 == 0 else "out", customer_id if i % 2 == 0 else None,
                  "Lotte Long" if i % 2 == 0 else "Agent", "lotte@example.net" if i % 2 == 0 else "",
                  words.text(rng.randint(40, 120)), _iso(start + dt.timedelta(minutes=offset + i)))
                 for i in range(count)])
            return cid

        long_id = conversation(customer("Lotte Long"), HEAVY_SUBJECT, LONG_THREAD, 0)
        heavy_customer = customer("Harry Heavy")
        for n in range(HEAVY_CUSTOMER // 50):
            conversation(heavy_customer, f"bench: heavy {n}", 50, 1000 + n * 60)
        conn.execute("COMMIT")
        return long_id, heavy_customer
    finally:
        conn.close()


def page_kb(app, url: str) -> float:
    client = app.test_client()
    _login(client)
    return round(len(client.get(url).get_data()) / 1024, 1)


# Measuring -------------------------------------------------------------------------------------

def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def _summary(times: list[float]) -> tuple[float, float]:
    return round(statistics.median(times) * 1000, 2), round(_percentile(times, 95) * 1000, 2)


def _login(client) -> None:
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post("/login", data={"email": "agent0@bench.example", "password": PASSWORD,
                                           "csrf_token": token})
    if response.status_code != 302:
        raise SystemExit(f"sign-in failed: {response.status_code}")


def measure(app, urls: list[str], label: str) -> dict[str, float]:
    """Server time of each request through the test client: wall clock and this thread's CPU time
    (the app runs in this thread, so CPU time is the request's own work even on a busy machine)."""
    client = app.test_client()
    _login(client)
    for url in urls[:5]:  # warm up caches and compiled templates
        client.get(url)
    wall, cpu = [], []
    for url in urls:
        started, started_cpu = time.perf_counter(), time.thread_time()
        response = client.get(url)
        response.get_data()
        cpu.append(time.thread_time() - started_cpu)
        wall.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise SystemExit(f"{label}: {url} answered {response.status_code}")
    median, p95 = _summary(wall)
    cpu_median, cpu_p95 = _summary(cpu)
    print(f"{label:<22} median {median:7.2f} ms   p95 {p95:7.2f} ms   "
          f"(CPU median {cpu_median:6.2f} ms, p95 {cpu_p95:6.2f} ms; {len(wall)} requests)")
    return {"p50": median, "p95": p95, "cpu_p50": cpu_median, "cpu_p95": cpu_p95}


def _config(path: Path, data_dir: Path) -> dict:
    return {"database": str(path), "data_dir": str(data_dir), "secret_key": "bench-secret", "instance_id": "bench",
            "channels": {}}


def serve(path: Path, data_dir: Path) -> None:
    """The app under waitress on a free port of 127.0.0.1 (a child process: its own interpreter
    lock, so the load clients do not slow the server down by sharing one); prints the port."""
    import logging

    from waitress.server import create_server

    from inbox import create_app

    # 50 clients on 8 threads queue up by design; waitress would log every queued request.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    server = create_server(create_app(_config(path, data_dir)), host="127.0.0.1", port=0, threads=8)
    print(server.effective_port, flush=True)
    server.run()


def load(path: Path, data_dir: Path, clients: int, seconds: float) -> dict:
    import subprocess

    import requests

    child = subprocess.Popen([sys.executable, __file__, "--serve", "--db", str(path), "--data-dir", str(data_dir)],
                             stdout=subprocess.PIPE, text=True)
    try:
        port = int(child.stdout.readline())
        base = f"http://127.0.0.1:{port}"
        login = requests.Session()
        token = re.search(r'name="csrf_token" value="([^"]+)"', login.get(f"{base}/login").text).group(1)
        login.post(f"{base}/login", data={"email": "agent0@bench.example", "password": PASSWORD,
                                          "csrf_token": token}, allow_redirects=False)
        cookie = login.cookies.get("session")
        if login.get(f"{base}/", allow_redirects=False).status_code != 200:
            raise SystemExit("the load test could not sign in")

        latencies: list[float] = []
        errors = [0]
        lock = threading.Lock()
        stop_at = time.perf_counter() + seconds

        def worker() -> None:
            session = requests.Session()
            session.cookies.set("session", cookie)
            mine = []
            failed = 0
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                try:
                    ok = session.get(f"{base}/", timeout=30).status_code == 200
                except requests.RequestException:
                    ok = False
                if ok:
                    mine.append(time.perf_counter() - started)
                else:
                    failed += 1
            with lock:
                latencies.extend(mine)
                errors[0] += failed

        started = time.perf_counter()
        threads = [threading.Thread(target=worker) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
    finally:
        child.terminate()
        child.wait(timeout=10)
    rps = len(latencies) / elapsed
    median, p95 = _summary(latencies) if latencies else (0.0, 0.0)
    print(f"queue under load       {rps:7.1f} requests/s with {clients} clients for {elapsed:.1f} s "
          f"(latency median {median} ms, p95 {p95} ms, {errors[0]} errors)")
    return {"queue_rps": round(rps, 1), "load_p50_ms": median, "load_p95_ms": p95, "load_errors": errors[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, default=None, help="database file (default: a cached file in /tmp)")
    parser.add_argument("--rebuild", action="store_true", help="build the database again even if cached")
    parser.add_argument("--requests", type=int, default=200, help="requests per measured page")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients for the load test")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of the load test")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    path = args.db or default_db()
    if args.serve:
        serve(path, args.data_dir)
        return
    if args.rebuild or not path.exists():
        print(f"building {path} ({CONVERSATIONS:,} conversations, {MESSAGES:,} messages)...", flush=True)
        built = build(path)
        print(f"built in {built['seconds']} s", flush=True)
    else:
        print(f"using the cached database {path}", flush=True)

    from inbox import create_app
    from inbox.store import Store

    probe = Store(path)
    first_team = sorted(probe.agent_team_ids(probe.agent_by_email("agent0@bench.example")["id"]))[0]
    probe.close()
    long_id, heavy_customer = ensure_heavy(path, first_team)

    data_dir = Path(tempfile.mkdtemp(prefix="mainland-bench-web-"))
    app = create_app(_config(path, data_dir))
    store = app.extensions["mainland"].open_store()
    conversations = store.execute("SELECT count(*) FROM conversations").fetchone()[0]
    messages = store.execute("SELECT count(*) FROM messages").fetchone()[0]
    visible = sorted(store.agent_team_ids(store.agent_by_email("agent0@bench.example")["id"]))
    # Conversations the agent may open: of their teams or unrouted, spread over the whole range.
    open_ids = [r[0] for r in store.execute(
        "SELECT id FROM conversations WHERE team_id IS NULL OR team_id IN (?, ?) ORDER BY random() LIMIT ?",
        (visible[0], visible[1], args.requests))]
    store.close()
    load_before = os.getloadavg()[0]
    print(f"{conversations:,} conversations, {messages:,} messages; signed in as an agent of 2 of {TEAMS} teams; "
          f"load average {load_before:.1f} on {os.cpu_count()} CPUs")

    rng = random.Random(7)
    words = Words(random.Random(20261115))
    n = args.requests
    queue = measure(app, ["/"] * n, "queue page")
    filtered = measure(app, [f"/?channel={CHANNELS[i % len(CHANNELS)]}&assignee=unassigned&sort=waiting"
                             for i in range(n)], "filtered queue page")
    conversation = measure(app, [f"/conversations/{cid}" for cid in open_ids], "conversation page")
    # Common words (ranks 20..220: each in tens of thousands of messages) and rarer ones.
    terms = [words.rank(rng.randint(20, 220)) if i % 2 else words.rank(rng.randint(500, 4000)) for i in range(n)]
    search = measure(app, [f"/search?q={term}" for term in terms], "search")
    long_thread = measure(app, [f"/conversations/{long_id}"] * max(20, n // 4), "500-message thread")
    heavy = measure(app, [f"/customers/{heavy_customer}"] * max(20, n // 4), "2,000-message customer")
    sizes = {"long_thread_kb": page_kb(app, f"/conversations/{long_id}"),
             "heavy_customer_kb": page_kb(app, f"/customers/{heavy_customer}")}
    loaded = load(path, data_dir, args.clients, args.seconds)

    summary: dict[str, float | int] = {}
    for name, figures in (("queue", queue), ("filtered", filtered), ("conversation", conversation),
                          ("search", search), ("long_thread", long_thread), ("heavy_customer", heavy)):
        summary |= {f"{name}_p50_ms": figures["p50"], f"{name}_p95_ms": figures["p95"],
                    f"{name}_cpu_p95_ms": figures["cpu_p95"]}
    summary |= {**sizes, **loaded, "clients": args.clients, "conversations": conversations, "messages": messages,
                "load_average": round(max(load_before, os.getloadavg()[0]), 1)}
    missed = [k for k, limit in TARGETS.items() if summary[k] >= limit]
    print("targets met" if not missed else f"targets missed: {', '.join(missed)}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
