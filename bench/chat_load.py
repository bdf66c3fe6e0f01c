"""Chat load benchmark: 500 open website-chat widgets and 50 agents on one `mainland serve` (issue #18).

    .venv/bin/python bench/chat_load.py                 # 500 widgets, 50 agents, 3 minutes (about 5 minutes in all)
    .venv/bin/python bench/chat_load.py --quick         # 50 widgets, 5 agents, 40 s
    .venv/bin/python bench/chat_load.py --widgets 500 --agents 50 --minutes 3 --keep /tmp/chatload

1. A real installation in a temporary folder: a configuration with one website chat channel (`chat`)
   whose widget runs on `https://shop.bench.example` (its `allowed_origins`), behind one trusted proxy
   (`web.trusted_proxies: 1`) so that each visitor has an address of its own (`X-Forwarded-For`), as on
   the internet, for the per-address limits; an empty inbox and `--agents` agents with passwords.
2. `mainland serve` in a child process as docs/operations.md documents it for production (its default
   threads, the worker in the same process: it sends the agents' replies; only `--port` is given).
3. The load, for `--minutes`:
   - widgets: each asks for the chat's config and history, then holds the long poll open all the time
     as static/chat/widget.js does (`GET /chat/chat/messages?wait=25` with `X-Mainland-Since`, again at
     once after each answer; after a `busy` answer or a failure it backs off 3 s, doubling to 30 s,
     or the server's `retry_ms`), and sends the receipts the open widget sends (delivered and read)
     after each answer that holds a new reply. All requests carry the allowed site's `Origin`;
   - visitors: a share (`--writing`, 30%) write, Poisson with a mean gap of `--gap` seconds (40): one
     typing report, then the message (`POST .../messages` with its own `client_id`; resent with the same
     id after a failure, as the widget does). Each message carries `[chat-msg-V-N]`;
   - agents: each signs in (bench/load.py's helpers), keeps one live stream (`GET /events`, as
     EventSource, reconnecting with `Last-Event-ID`), and loops: the queue page, a conversation from
     its first rows, and most of the time a reply (`[chat-reply-A-N]`, the page's CSRF token and
     `seen_up_to`). A reply waits out the undo window (`web.undo_send_seconds`, 10 s) in the outbox,
     which the worker works every 10 s, and is then "sent": stored as sent, which the widget's long
     poll shows.
4. Drain: the writers and agents stop; the widgets keep polling until every reply the server stored
   has reached its widget (or DRAIN_SECONDS), then everything is counted.

Delivery latency, both ways:
- `visitor_to_agent`: from the start of the visitor's POST to the first event of an agent's live
  stream about the conversation whose `last_message_at` covers the message;
- `agent_to_visitor`: from the reply's sending (its `sent_at`, stamped by the worker when it left the
  outbox; the same clock as the bench's) to the moment the visitor's long poll returned it.
  `agent_to_visitor_from_post` is the same from the agent's POST (undo window and outbox round included).
  Where the visitor's side goes: `visitor_post` (the POST's answer, from its first try) and
  `visitor_to_agent_from_stored` (from the message's stamp, taken while it is stored, to the event).

Lost and doubled at both ends: visitor messages accepted (2xx) against stored (by marker, once each),
and seen by an agent's stream; replies stored against seen by a widget (a marker seen under two message
ids in one widget is doubled). Errors: answers other than 2xx/3xx (a 409 "held" reply and a long poll
answered `busy` are counted apart), and exceptions.

Last line, one JSON object: `delivery_p50_ms`, `delivery_p95_ms`, `delivery_p99_ms` (each an object
`visitor_to_agent`, `agent_to_visitor`, and the parts above), `widgets`, `agents`,
`messages_sent`, `replies_sent`, `lost`, `doubled`, `errors`, `busy_answers`, `serve_cpu_s`, `wall_s`,
`peak_rss_mb`, `load_average` [before, after], and details (`write_lock_max_ms`, the code that held it
`write_lock_max_at` and the count of holds over a second `write_locks_slow`, from `/-/health`,
`queue_depth_warnings`: waitress's "Task queue depth" log lines). Targets: p95 < 300 ms both ways, 0 lost,
0 doubled, 0 errors.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import random
import re
import secrets
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _load_bench(name: str):
    """Another bench script (bench/ is not a package): bench/load.py's server and sign-in helpers."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


load = _load_bench("load")

TARGET_P95_MS = 300
CHANNEL = "chat"
SITE = "https://shop.bench.example"
MESSAGE = re.compile(r"\[chat-msg-(\d+-\d+)\]")
REPLY = re.compile(r"\[chat-reply-(\d+-\d+)\]")
DIRECTIONS = ("visitor_to_agent", "agent_to_visitor", "agent_to_visitor_from_post", "visitor_post",
              "visitor_to_agent_from_stored")
#: The widget's own figures (static/chat/widget.js): the long poll's wait, and its back-off.
WAIT_SECONDS = 25
POLL_OPEN_MS, POLL_MAX_MS = 3000, 30000
#: How long the widgets may go on after the load to receive the last replies (undo window, outbox round).
DRAIN_SECONDS = 90


def wall_of(stamp: str) -> float:
    """A stored ISO moment (inbox.store.base.iso) as seconds since the epoch."""
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


class Figures:
    """Everything the clients saw, from every thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.errors: Counter[str] = Counter()
        self.busy = 0
        self.held = 0
        self.polls = 0
        #: Visitor messages: marker -> wall time the POST started; accepted markers.
        self.posted_at: dict[str, float] = {}
        self.accepted: set[str] = set()
        #: How long each accepted POST took (ms), from its first try.
        self.post_ms: list[float] = []
        #: Replies: marker -> wall time of the agent's POST (those the server took).
        self.replied_at: dict[str, float] = {}
        #: Replies seen by widgets: marker -> (first wall time seen, sent_at) and marker -> message ids.
        self.reply_seen: dict[str, tuple[float, str]] = {}
        self.reply_ids: dict[str, set[int]] = defaultdict(set)
        #: Agents' stream events: conversation id -> [(wall time, last_message_at)].
        self.events: dict[int, list[tuple[float, str]]] = defaultdict(list)

    def error(self, what: str) -> None:
        with self.lock:
            self.errors[what] += 1


# The installation -----------------------------------------------------------------------------

def prepare(work: Path, agents: int, port: int) -> Path:
    """An empty inbox with the agents, and the configuration file; returns its path."""
    from inbox.store import Store
    from inbox.web.auth import hash_password

    database = work / "mainland.db"
    store = Store(database)
    store.migrate()
    hashed = hash_password(load.PASSWORD)
    for n in range(agents):
        store.create_agent(email=f"chat{n}@bench.example", name=f"Chat Agent {n}", role="agent", password_hash=hashed)
    store.close()
    config = work / "config.yaml"
    config.write_text(json.dumps({  # JSON is YAML
        "database": str(database), "data_dir": str(work / "data"), "base_url": f"http://127.0.0.1:{port}",
        # The bench's client is the proxy: each visitor gets an address of its own (X-Forwarded-For).
        "web": {"trusted_proxies": 1},
        "channels": {CHANNEL: {"kind": "chat", "allowed_origins": [SITE]}},
    }, indent=2))
    return config


# The widgets ----------------------------------------------------------------------------------

class Widget:
    """One open chat widget at the HTTP level: the requests static/chat/widget.js makes."""

    def __init__(self, number: int, base: str, figures: Figures) -> None:
        self.number = number
        self.api = f"{base}/chat/{CHANNEL}"
        self.figures = figures
        self.token = secrets.token_urlsafe(32)  # the widget's random visitor token (32 bytes, base64url)
        self.headers = {"Origin": SITE, "X-Mainland-Visitor": self.token,
                        "X-Forwarded-For": f"10.{number // 65536 % 256}.{number // 256 % 256}.{number % 256 + 1}",
                        "User-Agent": "chat-load-bench"}
        self.poller = requests.Session()  # the long poll's connection
        self.poster = requests.Session()  # posts go beside it (a browser opens a second connection)
        self.version = ""
        self.receipted: dict[int, str] = {}  # message id -> the status the widget last reported

    def start(self) -> None:
        self.poller.get(f"{self.api}/config?lang=en", headers=self.headers, timeout=60).raise_for_status()
        self.refresh(wait=False)

    def refresh(self, wait: bool) -> dict:
        headers = {**self.headers, **({"X-Mainland-Since": self.version} if wait else {})}
        path = f"{self.api}/messages?wait={WAIT_SECONDS}" if wait else f"{self.api}/messages"
        answer = self.poller.get(path, headers=headers, timeout=(30, WAIT_SECONDS + 60))
        if answer.status_code >= 400:
            self.figures.error(f"poll {answer.status_code}")
            return {"ok": False}
        data = answer.json()
        seen_at = time.time()
        with self.figures.lock:
            self.figures.polls += 1
        self.version = data.get("version") or ""
        self._note_replies(data.get("messages") or [], seen_at)
        self._receipts(data.get("messages") or [])
        return data

    def _note_replies(self, messages: list[dict], seen_at: float) -> None:
        with self.figures.lock:
            for message in messages:
                if message.get("from") != "team":
                    continue
                for marker in REPLY.findall(message.get("text") or ""):
                    self.figures.reply_ids[marker].add(message["id"])
                    self.figures.reply_seen.setdefault(marker, (seen_at, message.get("at") or ""))

    def _receipts(self, messages: list[dict]) -> None:
        """Delivered and read, as the open, visible widget reports them (only what moved)."""
        delivered = [m["id"] for m in messages if m.get("from") == "team" and m.get("status") == "sent"]
        read = [m["id"] for m in messages if m.get("from") == "team" and m.get("status") != "read"
                and self.receipted.get(m["id"]) != "read"]
        if not delivered and not read:
            return
        answer = self.poster.post(f"{self.api}/receipts", json={"delivered": delivered, "read": read},
                                  headers=self.headers, timeout=60)
        if answer.status_code >= 400:
            self.figures.error(f"receipts {answer.status_code}")
        else:
            self.receipted.update({i: "read" for i in read})

    def listen(self, stop: threading.Event) -> None:
        """The open widget's loop: one long poll after the other, backing off when busy or failing."""
        backoff_ms = 0
        try:
            self.start()
        except (requests.RequestException, ValueError) as exc:
            self.figures.error(f"widget start {type(exc).__name__}")
        while not stop.is_set():
            try:
                data = self.refresh(wait=True)
            except (requests.RequestException, ValueError) as exc:
                if stop.is_set():
                    return  # the server stopped after the run: not an error of the run
                self.figures.error(f"poll {type(exc).__name__}")
                data = {"ok": False}
            if data.get("ok") and not data.get("busy"):
                backoff_ms = 0
                continue
            if data.get("busy"):
                with self.figures.lock:
                    self.figures.busy += 1
            backoff_ms = min(max(data.get("retry_ms") or 0, backoff_ms * 2 if backoff_ms else POLL_OPEN_MS),
                             POLL_MAX_MS)
            stop.wait(backoff_ms / 1000)

    def write(self, number: int) -> None:
        """The visitor types and sends one message; resent with the same client id until it is taken."""
        marker = f"{self.number}-{number}"
        body = {"client_id": str(uuid.uuid4()), "text": f"Where is my parcel? [chat-msg-{marker}]"}
        if number > 1:  # the widget reports typing once there is a conversation to show it on
            try:
                self.poster.post(f"{self.api}/typing", json={"typing": True}, headers=self.headers, timeout=60)
            except requests.RequestException as exc:
                self.figures.error(f"typing {type(exc).__name__}")
        with self.figures.lock:
            self.figures.posted_at[marker] = time.time()
        for attempt in range(5):
            try:
                answer = self.poster.post(f"{self.api}/messages", json=body, headers=self.headers, timeout=60)
            except requests.RequestException as exc:
                self.figures.error(f"post {type(exc).__name__}")
            else:
                if answer.ok:
                    with self.figures.lock:
                        self.figures.accepted.add(marker)
                        self.figures.post_ms.append((time.time() - self.figures.posted_at[marker]) * 1000)
                    return
                self.figures.error(f"post {answer.status_code}")
                if answer.status_code < 500 and answer.status_code != 429:
                    return  # refused for good: the widget drops it too
            time.sleep(min(30, 3 * 2 ** attempt))  # the widget's back-off before resending


def visitor_writes(widget: Widget, gap: float, rng: random.Random, stop: threading.Event) -> None:
    """Poisson: one message every `gap` seconds on average."""
    sent = 0
    while not stop.wait(rng.expovariate(1 / gap)):
        sent += 1
        widget.write(sent)


# The agents -----------------------------------------------------------------------------------

def agent_stream(session: requests.Session, base: str, figures: Figures, stop: threading.Event,
                 opened: list[requests.Response]) -> None:
    """One EventSource; notes every conversation event (when it came, and the conversation's last message)."""
    last_id: str | None = None
    retry_ms = 3000
    while not stop.is_set():
        headers = {"Accept": "text/event-stream", **({"Last-Event-ID": last_id} if last_id else {})}
        event = ""
        try:
            with session.get(f"{base}/events", headers=headers, stream=True, timeout=(30, 60)) as response:
                if response.status_code != 200:
                    figures.error(f"live {response.status_code}")
                else:
                    opened.append(response)
                    for line in response.iter_lines(decode_unicode=True):
                        if line.startswith("retry:"):
                            retry_ms = int(line[6:].strip())
                        elif line.startswith("id:"):
                            last_id = line[3:].strip()
                        elif line.startswith("event:"):
                            event = line[6:].strip()
                        elif line.startswith("data:") and event.startswith("conversation."):
                            data = json.loads(line[5:])
                            with figures.lock:
                                figures.events[int(data["id"])].append((time.time(), data.get("last_message_at") or ""))
                        if stop.is_set():
                            break
        except (requests.RequestException, AttributeError, ValueError) as exc:
            if not stop.is_set():
                figures.error(f"live {type(exc).__name__}")
        stop.wait(retry_ms / 1000)


def agent_loop(number: int, session: requests.Session, base: str, rng: random.Random, figures: Figures,
               stop: threading.Event) -> None:
    """Queue page, a chat conversation from its first rows, a reply most of the time; a few seconds' thought."""
    sent = 0
    stop.wait(rng.uniform(0, 3))
    while not stop.is_set():
        try:
            queue = session.get(f"{base}/", timeout=60)
            if queue.status_code >= 400:
                figures.error(f"queue {queue.status_code}")
                stop.wait(3)
                continue
            rows = [int(x) for x in load.ROW.findall(queue.text)][:10]
            if stop.wait(rng.expovariate(1 / 2)) or not rows:
                continue
            conversation_id = rng.choice(rows)
            page = session.get(f"{base}/conversations/{conversation_id}", timeout=60)
            if page.status_code >= 400:
                figures.error(f"conversation {page.status_code}")
                continue
            if stop.wait(rng.expovariate(1 / 6)) or rng.random() > 0.8:
                continue
            sent += 1
            marker = f"{number}-{sent}"
            seen, csrf = load.SEEN.search(page.text), load.CSRF.search(page.text)
            data = {"text": f"Your parcel left our warehouse today. [chat-reply-{marker}]",
                    "seen_up_to": seen.group(1) if seen else "0", "csrf_token": csrf.group(1) if csrf else ""}
            posted_at = time.time()
            answer = session.post(f"{base}/conversations/{conversation_id}/reply", data=data, allow_redirects=False,
                                  timeout=60)
            if answer.status_code == 409:  # held: the visitor wrote meanwhile (the product's answer)
                with figures.lock:
                    figures.held += 1
            elif answer.status_code >= 400:
                figures.error(f"reply {answer.status_code}")
            else:
                with figures.lock:
                    figures.replied_at[marker] = posted_at
            stop.wait(rng.expovariate(1 / 2))
        except requests.RequestException as exc:
            figures.error(f"agent {type(exc).__name__}")
            stop.wait(1)


# Counting -------------------------------------------------------------------------------------

def stored(database: Path) -> tuple[dict[str, list[tuple[int, str]]], dict[str, str]]:
    """Visitor messages stored (marker -> [(conversation id, its moment)]) and replies (marker -> status)."""
    messages: dict[str, list[tuple[int, str]]] = defaultdict(list)
    replies: dict[str, str] = {}
    with load._read_only(database) as db:
        for conversation_id, text, at in db.execute(
                "SELECT conversation_id, text, COALESCE(sent_at, received_at) FROM messages "
                "WHERE channel = ? AND direction = 'in'", (CHANNEL,)):
            for marker in MESSAGE.findall(text or ""):
                messages[marker].append((conversation_id, at))
        for text, status in db.execute("SELECT text, delivery_status FROM messages WHERE direction = 'out' "
                                       "AND text LIKE '%[chat-reply-%'"):
            for marker in REPLY.findall(text or ""):
                replies[marker] = status
    return messages, replies


def drain(database: Path, figures: Figures) -> float:
    """Waits until every reply stored has been seen by its widget, or DRAIN_SECONDS."""
    started = time.monotonic()
    while time.monotonic() - started < DRAIN_SECONDS:
        try:
            _, replies = stored(database)
        except sqlite3.OperationalError:
            replies = {}
        with figures.lock:
            expected = {m for m, status in replies.items() if status != "failed"} | set(figures.replied_at)
            missing = [m for m in expected if m not in figures.reply_seen]
        if not missing:
            break
        time.sleep(1)  # the worker sends on its own schedule: look again in a second
    return time.monotonic() - started


def visitor_to_agent(messages: dict[str, list[tuple[int, str]]], figures: Figures
                     ) -> tuple[list[float], list[float], int]:
    """Latencies (ms) from each message's POST, and from its storing (its stamp), to the first agent stream
    event covering it; and how many no agent's stream ever told."""
    latencies, from_stored, unseen = [], [], 0
    for marker, rows in messages.items():
        posted = figures.posted_at.get(marker)
        if posted is None or not rows:
            continue
        conversation_id, at = rows[0]
        told = [t for t, last in figures.events.get(conversation_id, []) if last >= at and t >= posted]
        if told:
            latencies.append((min(told) - posted) * 1000)
            from_stored.append((min(told) - wall_of(at)) * 1000)
        else:
            unseen += 1
    return latencies, from_stored, unseen


def percentiles(values: list[float]) -> dict[str, float | None]:
    return {"p50": load.percentile(values, 0.50), "p95": load.percentile(values, 0.95),
            "p99": load.percentile(values, 0.99)}


# Main -----------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widgets", type=int, default=500, help="open chat widgets (default 500)")
    parser.add_argument("--agents", type=int, default=50, help="signed-in agents (default 50)")
    parser.add_argument("--minutes", type=float, default=3.0, help="how long the load lasts (default 3)")
    parser.add_argument("--writing", type=float, default=0.3, help="share of the visitors who write (0.3)")
    parser.add_argument("--gap", type=float, default=40.0, help="mean seconds between a visitor's messages (40)")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--quick", action="store_true", help="50 widgets, 5 agents, 40 s")
    parser.add_argument("--keep", type=Path, help="work in this folder and leave it (database, config, server log)")
    args = parser.parse_args()
    if args.quick:
        args.widgets, args.agents, args.minutes = min(args.widgets, 50), min(args.agents, 5), 40 / 60
    threading.stack_size(512 * 1024)  # some 700 client threads; the default 8 MB stacks are not needed

    work = args.keep or Path(tempfile.mkdtemp(prefix="mainland-bench-chat-"))
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    port = load.free_port()
    base = f"http://127.0.0.1:{port}"
    config = prepare(work, args.agents, port)
    log = work / "serve.log"
    server = load.start_server(config, port, log)
    figures = Figures()
    stop_load, stop_widgets = threading.Event(), threading.Event()
    opened: list[requests.Response] = []
    try:
        sessions = [load.sign_in(base, f"chat{n}@bench.example") for n in range(args.agents)]
        load_before = os.getloadavg()[0]
        print(f"{args.agents} agents signed in, {args.widgets} widgets opening; serve pid {server.pid}; "
              f"load average {load_before:.1f} on {os.cpu_count()} CPUs", flush=True)
        widgets = [Widget(n, base, figures) for n in range(args.widgets)]
        writers = rng.sample(widgets, round(args.widgets * args.writing))
        listeners = [threading.Thread(target=w.listen, args=(stop_widgets,), daemon=True) for w in widgets]
        workers = [threading.Thread(target=visitor_writes, daemon=True,
                                    args=(w, args.gap, random.Random(rng.random()), stop_load)) for w in writers]
        streams = [threading.Thread(target=agent_stream, args=(s, base, figures, stop_widgets, opened), daemon=True)
                   for s in sessions]
        workers += [threading.Thread(target=agent_loop, daemon=True,
                                     args=(n, s, base, random.Random(rng.random()), figures, stop_load))
                    for n, s in enumerate(sessions)]
        cpu_before, wall_before = load.process_cpu_seconds(server.pid), time.perf_counter()
        for thread in streams + listeners:
            thread.start()
        for thread in workers:
            thread.start()
        stop_load.wait(args.minutes * 60)
        stop_load.set()
        deadline = time.monotonic() + 90  # a request in flight ends within its time-out
        for thread in workers:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        drained = drain(work / "mainland.db", figures)
        wall = time.perf_counter() - wall_before
        cpu = load.process_cpu_seconds(server.pid) - cpu_before
        load_after = os.getloadavg()[0]
        stop_widgets.set()
        for response in list(opened):
            response.close()
        rss = load.peak_rss_mb(server.pid)
        health = sessions[0].get(f"{base}/-/health", timeout=60).json() if sessions else {}
        messages, replies = stored(work / "mainland.db")
    finally:
        stop_load.set()
        stop_widgets.set()
        server.terminate()
        server.wait(timeout=90)

    lines = log.read_text(errors="replace").splitlines()
    with figures.lock:
        to_agent, to_agent_from_stored, unseen_by_agents = visitor_to_agent(messages, figures)
        to_visitor = [(seen - wall_of(at)) * 1000 for seen, at in figures.reply_seen.values() if at]
        from_post = [(figures.reply_seen[m][0] - posted) * 1000 for m, posted in figures.replied_at.items()
                     if m in figures.reply_seen]
        messages_lost = sum(1 for m in figures.accepted if m not in messages)
        messages_doubled = sum(1 for rows in messages.values() if len(rows) > 1)
        taken = set(figures.replied_at) | {m for m, s in replies.items() if s != "failed"}
        replies_lost = sum(1 for m in taken if m not in figures.reply_seen)
        replies_doubled = sum(1 for m in taken if len(figures.reply_ids.get(m, ())) > 1)
        latencies = {"visitor_to_agent": percentiles(to_agent), "agent_to_visitor": percentiles(to_visitor),
                     "agent_to_visitor_from_post": percentiles(from_post),
                     "visitor_post": percentiles(figures.post_ms),
                     "visitor_to_agent_from_stored": percentiles(to_agent_from_stored)}
        summary: dict[str, Any] = {
            "delivery_p50_ms": {d: latencies[d]["p50"] for d in DIRECTIONS},
            "delivery_p95_ms": {d: latencies[d]["p95"] for d in DIRECTIONS},
            "delivery_p99_ms": {d: latencies[d]["p99"] for d in DIRECTIONS},
            "widgets": args.widgets, "agents": args.agents, "writing_visitors": len(writers),
            "messages_sent": len(figures.posted_at), "messages_accepted": len(figures.accepted),
            "messages_stored": len(messages), "replies_sent": len(figures.replied_at), "replies_stored": len(replies),
            "replies_seen": len(figures.reply_seen), "replies_held": figures.held,
            "lost": messages_lost + replies_lost, "doubled": messages_doubled + replies_doubled,
            "messages_lost": messages_lost, "messages_doubled": messages_doubled,
            "messages_unseen_by_agents": unseen_by_agents, "replies_lost": replies_lost,
            "replies_doubled": replies_doubled, "errors": sum(figures.errors.values()),
            "error_kinds": dict(figures.errors), "busy_answers": figures.busy, "long_poll_answers": figures.polls,
            "serve_cpu_s": round(cpu, 1), "wall_s": round(wall, 1), "drain_s": round(drained, 1),
            "peak_rss_mb": rss, "write_lock_max_ms": health.get("write_lock", {}).get("max_ms"),
            "write_lock_max_at": health.get("write_lock", {}).get("max_at"),
            "write_locks_slow": health.get("write_lock", {}).get("slow"),
            "load_average": [round(load_before, 1), round(load_after, 1)],
            "cpus": os.cpu_count(), "minutes": round(args.minutes, 2), "seed": args.seed,
            "queue_depth_warnings": sum("Task queue depth" in line for line in lines),
            "connection_limit_reached": sum("no longer accepting new connections" in line for line in lines),
        }
    missed = [d for d in ("visitor_to_agent", "agent_to_visitor")
              if (summary["delivery_p95_ms"][d] or 0) >= TARGET_P95_MS]
    missed += [k for k in ("errors", "lost", "doubled") if summary[k]]
    print("targets met" if not missed else f"targets missed: {', '.join(missed)}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
