"""Load benchmark: a working day under `mainland serve`, with a burst (issue #16).

    .venv/bin/python bench/load.py                  # 50 agents, 3 min at 2,000 items/h, 1 min at 10x (~6 min)
    .venv/bin/python bench/load.py --quick          # 10 agents, a small inbox, 1 minute in all
    .venv/bin/python bench/load.py --streams 200    # and 200 more live connections held open the whole time
    .venv/bin/python bench/load.py --minutes 60 --burst-minutes 10   # the long run
    .venv/bin/python bench/load.py --engine postgresql --web-processes 2 --agents 100   # #17

1. A real installation in a temporary folder: a configuration with one Telegram channel (`tg`) whose
   Bot API is the loopback imitation in `sandbox/telegram.py`, run by this process; an inbox of a few
   thousand conversations (bench/web.py's generator at `--scale`, cached in /tmp); `--agents` agents
   with passwords, spread over the five teams.
2. `mainland serve` in a child process, as docs/operations.md documents it for production (the
   default threads, the worker in the same process; only `--port` is given).
3. The load, for `--minutes` and then `--burst-minutes`:
   - arrivals: customers write to the bot (Poisson, seeded), `--rate` items an hour, then
     `--burst`x that. Every item carries a token `[load-item-N]` in its text: counted at the source;
     the worker polls getUpdates as it would Telegram;
   - agents: each signs in with its own session (CSRF token from the sign-in form), keeps one live
     stream (`GET /events`) open as EventSource does (reconnecting after the `retry:` the server
     asks for, with `Last-Event-ID`), and loops: the queue page, a conversation from it, and on a
     Telegram conversation sometimes a reply (`[load-reply-A-N]`, POST with the CSRF token) that
     goes through the outbox to the imitation's sendMessage (the sink). Think times are drawn from
     a seeded random generator: an agent acts every few seconds;
   - `--streams N`: N more live connections, held open (as idle tabs do) the whole time.
4. Drain: waits (polling the database) until every item sent is stored and every reply queued has
   left the outbox, then counts at the source and the sink.

Latencies are measured at the client, per page: `queue`, `conversation`, `reply` (the POST),
`live` (from the request to the stream's first event). Errors: answers other than 2xx/3xx and
exceptions (a 503 counts); a reply held because the customer wrote meanwhile (409) is counted
apart (`replies_held`), it is the product's answer, not a failure.

`--engine postgresql` (#17): the inbox is copied into a fresh database of a throwaway durable
PostgreSQL cluster (`mainland migrate-to-postgresql`'s code), and the installation runs as several
machines would: `--web-processes` processes of `mainland serve --no-worker` (each agent signs in to
one of them, in turn) and one `mainland worker`. The CPU figure is then their sum, the memory the
largest of them; the database server's own CPU is not in it.

Last line, one JSON object: `engine`, `web_processes`, `p50_ms`, `p95_ms`, `p99_ms` (each page -> ms), `errors`, `lost`,
`doubled` (items and replies together; `items_*`, `replies_*` apart), `write_lock_max_ms` (from
`/-/health`), `peak_rss_mb` (VmHWM of the serve process), and extras: the serve process's CPU
seconds beside the wall seconds, `after_first_minute_p95_ms` (the same without the first minute,
when the server has just started and every client shows up at once), `queue_depth_warnings`
(waitress's "Task queue depth" log lines), `connection_limit_reached` (waitress's "no longer
accepting new connections"), requests per page, the load average. Targets: p95 < 200 ms for every
page, 0 errors, 0 lost, 0 doubled.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import random
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sandbox.telegram import TelegramImitation  # noqa: E402

TARGET_P95_MS = 200
PASSWORD = "load bench password 1"
CHANNEL = "tg"
ITEM = re.compile(r"\[load-item-(\d+)\]")
REPLY = re.compile(r"\[load-reply-(\d+-\d+)\]")
ROW = re.compile(r'<tr data-id="(\d+)"')
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
SEEN = re.compile(r'name="seen_up_to" value="(\d+)"')
PAGES = ("queue", "conversation", "reply", "live")
#: How long the drain may take: the undo window, an outbox round and a poll round, with room to spare.
DRAIN_SECONDS = 180


def _load_web_bench():
    """bench/web.py (not a package): its generator makes the inbox's conversations."""
    spec = importlib.util.spec_from_file_location("bench_web", ROOT / "bench" / "web.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Figures --------------------------------------------------------------------------------------

class Recorder:
    """Latencies per page and errors, from every client thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started = time.perf_counter()
        self.ms: dict[str, list[float]] = defaultdict(list)
        #: The same latencies after the first minute (the server's start and everyone's first sign of life).
        self.later_ms: dict[str, list[float]] = defaultdict(list)
        self.errors: Counter[str] = Counter()
        self.held = 0

    def time(self, page: str, seconds: float) -> None:
        with self.lock:
            self.ms[page].append(seconds * 1000)
            if time.perf_counter() - self.started > 60:
                self.later_ms[page].append(seconds * 1000)

    def error(self, page: str, what: str) -> None:
        with self.lock:
            self.errors[f"{page} {what}"] += 1

    def answer(self, page: str, response: requests.Response, started: float) -> bool:
        """Times `response`; an answer other than 2xx/3xx is an error. True when it was fine."""
        self.time(page, time.perf_counter() - started)
        if response.status_code >= 400:
            self.error(page, str(response.status_code))
            return False
        return True


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)], 1)


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:13]) / os.sysconf("SC_CLK_TCK")  # utime, stime


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


# The installation -----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def prepare(work: Path, scale: float, agents: int, imitation: TelegramImitation, port: int,
            postgresql: str | None = None) -> tuple[Path, Path | str]:
    """The database (the cached inbox, copied; with `postgresql`, then copied into that database), the
    agents, and the configuration file; returns its path and the database."""
    from inbox.store import Store
    from inbox.web.auth import hash_password

    web = _load_web_bench()
    web.apply_scale(scale)
    cached = web.default_db()
    if not cached.exists():
        print(f"building {cached} ({web.CONVERSATIONS:,} conversations, once)...", flush=True)
        web.build(cached)
    database = work / "mainland.db"
    shutil.copyfile(cached, database)
    store = Store(database)
    store.migrate()
    teams = [t["id"] for t in store.teams()]
    hashed = hash_password(PASSWORD)
    for n in range(agents):
        agent_id = store.create_agent(email=f"load{n}@bench.example", name=f"Load Agent {n}", role="agent",
                                      password_hash=hashed)
        store.set_agent_teams(agent_id, [teams[n % len(teams)]])
    store.close()
    used: Path | str = database
    if postgresql:
        from inbox.migrate_to_postgresql import migrate_to_postgresql

        started = time.perf_counter()
        source = Store(database)
        try:
            migrate_to_postgresql(source, postgresql, attachments_dir=work / "data" / "attachments")
        finally:
            source.close()
        print(f"copied the inbox into PostgreSQL in {time.perf_counter() - started:.0f} s", flush=True)
        used = postgresql
    config = work / "config.yaml"
    config.write_text(json.dumps({  # JSON is YAML
        "database": str(used), "data_dir": str(work / "data"), "base_url": f"http://127.0.0.1:{port}",
        "channels": {CHANNEL: {"kind": "telegram", "token": imitation.token, "api_url": imitation.url}},
    }, indent=2))
    return config, used


def start_worker(config: Path, log: Path) -> subprocess.Popen:
    """`mainland worker`, for web processes started with --no-worker."""
    mainland = Path(sys.executable).with_name("mainland")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen([str(mainland), "--config", str(config), "worker"], stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, cwd=str(config.parent), env=env)


def start_server(config: Path, port: int, log: Path, *, worker: bool = True) -> subprocess.Popen:
    """`mainland serve` as docs/operations.md documents it; returns once it answers."""
    mainland = Path(sys.executable).with_name("mainland")
    command = [str(mainland), "--config", str(config), "serve", "--port", str(port), *([] if worker else ["--no-worker"])]
    # The checkout's code (this bench's), also when the virtualenv's package is installed from elsewhere.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    server = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=str(config.parent),
                              env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"mainland serve exited ({server.returncode}); see {log}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/-/health", timeout=2).ok:
                return server
        except requests.ConnectionError:
            pass
        time.sleep(0.2)  # waiting for a process to start: nothing to wait on but the socket
    server.terminate()
    raise SystemExit(f"mainland serve did not answer within 120 s; see {log}")


def sign_in(base: str, email: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{base}/login", timeout=30)
    token = CSRF.search(page.text).group(1)
    answer = session.post(f"{base}/login", data={"email": email, "password": PASSWORD, "csrf_token": token},
                          allow_redirects=False, timeout=60)
    if answer.status_code not in (302, 303):
        raise SystemExit(f"signing in as {email} failed: {answer.status_code}")
    return session


# The clients ----------------------------------------------------------------------------------

class Telegram:
    """The source and the sink: customers writing to the bot, and what the bot sent them."""

    def __init__(self, imitation: TelegramImitation, rng: random.Random) -> None:
        self.imitation = imitation
        self.rng = rng
        self.sent: list[int] = []
        self.users: list[dict] = []

    def customer_writes(self) -> None:
        number = len(self.sent) + 1
        # Mostly new customers; some write again (a follow-up in their conversation).
        if self.users and self.rng.random() < 0.3:
            user = self.rng.choice(self.users)
        else:
            user = self.imitation.user(f"Customer{number}", username=f"load_customer_{number}")
            self.users.append(user)
        self.imitation.private_message(user, f"Hello, my order has not arrived yet. [load-item-{number}]")
        self.sent.append(number)

    def received_replies(self) -> Counter[str]:
        return Counter(m.group(1) for r in self.imitation.replies() for m in REPLY.finditer(r.get("text") or ""))


def arrivals(telegram: Telegram, phases: list[tuple[float, float]], stop: threading.Event) -> None:
    """Poisson arrivals: for each (seconds, items an hour) phase, exponential gaps at that rate."""
    for seconds, per_hour in phases:
        end = time.monotonic() + seconds
        while not stop.is_set():
            gap = telegram.rng.expovariate(per_hour / 3600)
            if time.monotonic() + gap >= end:
                stop.wait(max(0.0, end - time.monotonic()))
                break
            if stop.wait(gap):
                return
            telegram.customer_writes()


class TelegramConversations:
    """Which conversations are on the Telegram channel (the ones a reply can go to), read from the database."""

    def __init__(self, database: Path | str) -> None:
        self.database = database
        self.lock = threading.Lock()
        self.ids: set[int] = set()
        self.read_at = 0.0

    def __contains__(self, conversation_id: int) -> bool:
        with self.lock:
            if conversation_id not in self.ids and time.monotonic() - self.read_at > 2:
                with _read_only(self.database) as db:
                    self.ids = {r[0] for r in db.execute("SELECT id FROM conversations WHERE channel = ?", (CHANNEL,))}
                self.read_at = time.monotonic()
            return conversation_id in self.ids


def agent_loop(number: int, session: requests.Session, base: str, rng: random.Random, record: Recorder,
               telegram_conversations: TelegramConversations, replies: list[str], stop: threading.Event) -> None:
    """Queue page, a conversation, sometimes a reply; think times of a few seconds."""
    sent = 0
    stop.wait(rng.uniform(0, 5))  # agents do not all start in the same second
    while not stop.is_set():
        try:
            started = time.perf_counter()
            queue = session.get(f"{base}/", timeout=60)
            if not record.answer("queue", queue, started):
                stop.wait(rng.expovariate(1 / 4))
                continue
            rows = [int(x) for x in ROW.findall(queue.text)][:12]
            if stop.wait(rng.expovariate(1 / 3)) or not rows:
                continue
            conversation_id = rng.choice(rows)
            started = time.perf_counter()
            page = session.get(f"{base}/conversations/{conversation_id}", timeout=60)
            if not record.answer("conversation", page, started):
                continue
            answer = conversation_id in telegram_conversations and rng.random() < 0.4
            if stop.wait(rng.expovariate(1 / (8 if answer else 5))) or not answer:
                continue
            sent += 1
            token = f"{number}-{sent}"
            seen, csrf = SEEN.search(page.text), CSRF.search(page.text)
            data = {"text": f"Thank you, we are looking into it. [load-reply-{token}]",
                    "seen_up_to": seen.group(1) if seen else "0", "csrf_token": csrf.group(1) if csrf else ""}
            started = time.perf_counter()
            posted = session.post(f"{base}/conversations/{conversation_id}/reply", data=data, allow_redirects=False,
                                  timeout=60)
            if posted.status_code == 409:  # held: the customer wrote meanwhile
                record.time("reply", time.perf_counter() - started)
                with record.lock:
                    record.held += 1
            elif record.answer("reply", posted, started):
                replies.append(token)
            stop.wait(rng.expovariate(1 / 3))
        except requests.RequestException as exc:
            record.error("agent", type(exc).__name__)
            stop.wait(1)


def live_stream(session: requests.Session, base: str, record: Recorder, stop: threading.Event,
                opened: list[requests.Response]) -> None:
    """One EventSource: reads events until the server ends the answer, then reconnects after its `retry:`."""
    last_id: str | None = None
    retry_ms = 3000  # EventSource's usual default until the server says otherwise
    while not stop.is_set():
        headers = {"Accept": "text/event-stream", **({"Last-Event-ID": last_id} if last_id else {})}
        started = time.perf_counter()
        try:
            with session.get(f"{base}/events", headers=headers, stream=True, timeout=(30, 60)) as response:
                if response.status_code != 200:
                    record.answer("live", response, started)
                else:
                    opened.append(response)
                    first = True
                    for line in response.iter_lines(decode_unicode=True):
                        if line.startswith("retry:"):
                            retry_ms = int(line[6:].strip())
                        elif line.startswith("id:"):
                            last_id = line[3:].strip()
                        elif line.startswith("data:") and first:
                            record.time("live", time.perf_counter() - started)
                            first = False
                        if stop.is_set():
                            break
        except (requests.RequestException, AttributeError, ValueError) as exc:
            if not stop.is_set():
                record.error("live", type(exc).__name__)
        stop.wait(retry_ms / 1000)


# Counting -------------------------------------------------------------------------------------

class _read_only:
    """A reading connection: SQLite's file opened read-only, or a store on the PostgreSQL URL."""

    def __init__(self, database: Path | str) -> None:
        if isinstance(database, str):
            from inbox.store import Store

            self.db: Any = Store(database, check=False)
        else:
            self.db = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)

    def __enter__(self) -> Any:
        return self.db

    def __exit__(self, *exc: object) -> None:
        self.db.close()


def stored(database: Path | str) -> tuple[Counter[int], dict[str, str | None]]:
    """The items stored (token -> times) and the replies queued (token -> delivery status)."""
    with _read_only(database) as db:
        items = Counter(int(m.group(1)) for (text,) in db.execute(
            "SELECT text FROM messages WHERE channel = ? AND direction = 'in'", (CHANNEL,))
            for m in ITEM.finditer(text))
        replies = {m.group(1): status for text, status in db.execute(
            "SELECT text, delivery_status FROM messages WHERE direction = 'out' AND text LIKE '%[load-reply-%'")
            for m in REPLY.finditer(text)}
    return items, replies


def drain(database: Path | str, telegram: Telegram, posted: list[str]) -> tuple[Counter[int], dict[str, str | None], float]:
    """Waits until every item is stored and every reply left the outbox (or DRAIN_SECONDS); returns the counts."""
    started = time.monotonic()
    while True:
        items, replies = stored(database)
        pending = [t for t, status in replies.items() if status in ("queued", "sending", None)]
        done = set(telegram.sent) <= set(items) and set(posted) <= set(replies) and not pending
        if done or time.monotonic() - started > DRAIN_SECONDS:
            return items, replies, time.monotonic() - started
        time.sleep(1)  # the worker polls and sends on its own schedule: look again in a second


# Main -----------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="the steady phase (default 3)")
    parser.add_argument("--burst-minutes", type=float, default=1.0, help="the burst phase after it (default 1)")
    parser.add_argument("--rate", type=float, default=2000, help="items an hour in the steady phase")
    parser.add_argument("--burst", type=float, default=10, help="the burst's rate as a multiple of --rate")
    parser.add_argument("--agents", type=int, default=50, help="signed-in agents (default 50)")
    parser.add_argument("--streams", type=int, default=0, help="extra live connections held open (idle tabs)")
    parser.add_argument("--scale", type=float, default=0.03,
                        help="the inbox: bench/web.py's data × SCALE (0.03: 3,000 conversations)")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="10 agents, 1,000 conversations, 40 s + 20 s")
    parser.add_argument("--keep", type=Path, help="work in this folder and leave it (database, config, server log)")
    parser.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite",
                        help="postgresql: the inbox on a throwaway PostgreSQL cluster (#17)")
    parser.add_argument("--web-processes", type=int, default=1,
                        help="with --engine postgresql: web processes (serve --no-worker) beside one worker")
    args = parser.parse_args()
    if args.engine == "sqlite" and args.web_processes != 1:
        parser.error("--web-processes needs --engine postgresql (SQLite's installation is one machine's)")
    if args.quick:
        args.agents, args.scale, args.minutes, args.burst_minutes = min(args.agents, 10), 0.01, 40 / 60, 20 / 60

    work = args.keep or Path(tempfile.mkdtemp(prefix="mainland-bench-load-"))
    work.mkdir(parents=True, exist_ok=True)
    cleanup = contextlib.ExitStack()
    postgresql = None
    if args.engine == "postgresql":
        from tests.pg_cluster import ThrowawayCluster, create_database

        postgresql = create_database(cleanup.enter_context(ThrowawayCluster(durable=True)))
    rng = random.Random(args.seed)
    imitation = TelegramImitation().start()
    ports = [free_port() for _ in range(args.web_processes)]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    base = bases[0]
    config, database = prepare(work, args.scale, args.agents, imitation, ports[0], postgresql)
    log = work / "serve.log"
    separate_worker = args.engine == "postgresql"
    servers = [start_server(config, port, work / f"serve{n}.log" if n else log, worker=not separate_worker)
               for n, port in enumerate(ports)]
    processes = [*servers, *([start_worker(config, work / "worker.log")] if separate_worker else [])]
    record = Recorder()
    stop = threading.Event()
    threads: list[threading.Thread] = []
    opened: list[requests.Response] = []
    try:
        # Each agent works on one web process, in turn (as a load balancer keeping sessions would).
        homes = [bases[n % len(bases)] for n in range(args.agents)]
        sessions = [sign_in(homes[n], f"load{n}@bench.example") for n in range(args.agents)]
        load_before = os.getloadavg()[0]
        print(f"{args.agents} agents signed in, {args.streams} extra live connections; {args.engine}, "
              f"{len(servers)} web process(es) {[s.pid for s in servers]}"
              f"{', a worker of its own' if separate_worker else ''}; "
              f"load average {load_before:.1f} on {os.cpu_count()} CPUs", flush=True)
        telegram = Telegram(imitation, random.Random(rng.random()))
        telegram_conversations = TelegramConversations(database)
        posted: list[str] = []
        for n, session in enumerate(sessions):
            threads.append(threading.Thread(target=live_stream, args=(session, homes[n], record, stop, opened),
                                            daemon=True))
            threads.append(threading.Thread(target=agent_loop, daemon=True, args=(
                n, session, homes[n], random.Random(rng.random()), record, telegram_conversations, posted, stop)))
        for n in range(args.streams):
            threads.append(threading.Thread(target=live_stream, daemon=True, args=(
                sessions[n % len(sessions)], homes[n % len(sessions)], record, stop, opened)))
        phases = [(args.minutes * 60, args.rate), (args.burst_minutes * 60, args.rate * args.burst)]
        cpu_before, wall_before = sum(process_cpu_seconds(p.pid) for p in processes), time.perf_counter()
        record.started = wall_before
        for thread in threads:
            thread.start()
        arrivals(telegram, phases, threading.Event())
        stop.set()
        for response in list(opened):
            response.close()
        wall = time.perf_counter() - wall_before
        cpu = sum(process_cpu_seconds(p.pid) for p in processes) - cpu_before
        load_after = os.getloadavg()[0]
        deadline = time.monotonic() + 70  # a stream notices the stop at its next event (a heartbeat: 15 s)
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        items, replies, drained = drain(database, telegram, posted)
        received = telegram.received_replies()
        health = sessions[0].get(f"{base}/-/health", timeout=30).json()
        rss = max(peak_rss_mb(p.pid) for p in processes)
    finally:
        stop.set()
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=90)
        imitation.stop()
        cleanup.close()

    lines = [line for n in range(len(servers)) for line in
             (work / f"serve{n}.log" if n else log).read_text(errors="replace").splitlines()]
    warnings = sum("Task queue depth" in line for line in lines)
    refusing = sum("no longer accepting new connections" in line for line in lines)
    items_lost = len(set(telegram.sent) - set(items))
    items_doubled = sum(1 for n in telegram.sent if items[n] > 1)
    # Replies the server queued: those it said so for, and those in the database (an answer that timed
    # out may still have queued its reply).
    queued = set(posted) | set(replies)
    replies_lost = sum(1 for t in queued if received[t] == 0)
    replies_doubled = sum(1 for t in queued if received[t] > 1)
    summary: dict[str, Any] = {
        "engine": args.engine,
        "web_processes": len(servers),
        "p50_ms": {p: percentile(record.ms[p], 0.50) for p in PAGES},
        "p95_ms": {p: percentile(record.ms[p], 0.95) for p in PAGES},
        "p99_ms": {p: percentile(record.ms[p], 0.99) for p in PAGES},
        "errors": sum(record.errors.values()),
        "lost": items_lost + replies_lost,
        "doubled": items_doubled + replies_doubled,
        "write_lock_max_ms": health.get("write_lock", {}).get("max_ms"),
        "peak_rss_mb": rss,
        "after_first_minute_p95_ms": {p: percentile(record.later_ms[p], 0.95) for p in PAGES},
        "requests": {p: len(record.ms[p]) for p in PAGES},
        "error_kinds": dict(record.errors),
        "items_sent": len(telegram.sent), "items_stored": len(items), "items_lost": items_lost,
        "items_doubled": items_doubled, "replies_queued": len(queued), "replies_received": sum(received.values()),
        "replies_lost": replies_lost, "replies_doubled": replies_doubled, "replies_held": record.held,
        "replies_failed": sum(1 for s in replies.values() if s == "failed"),
        "queue_depth_warnings": warnings, "connection_limit_reached": refusing, "serve_cpu_s": round(cpu, 1), "wall_s": round(wall, 1),
        "drain_s": round(drained, 1), "write_lock_slow": health.get("write_lock", {}).get("slow"),
        "agents": args.agents, "streams": args.streams, "scale": args.scale, "minutes": round(args.minutes, 2),
        "burst_minutes": round(args.burst_minutes, 2), "rate": args.rate, "burst": args.burst, "seed": args.seed,
        "load_average": [round(load_before, 1), round(load_after, 1)], "cpus": os.cpu_count(),
    }
    missed = [p for p, ms in summary["p95_ms"].items() if ms is not None and ms >= TARGET_P95_MS]
    missed += [k for k in ("errors", "lost", "doubled") if summary[k]]
    print("targets met" if not missed else f"targets missed: {', '.join(missed)}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
