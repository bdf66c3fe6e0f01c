"""The live demo as a newcomer runs it: `mainland --config demo/config.yaml demo` as a real process.

Within a minute the queue holds conversations from at least five channels, fed by the loopback
imitations and the scenario; an agent who signs in and answers a Telegram customer and an email
customer through the web composer sees each reply reach its channel (the imitation, the SMTP sink)
and the console says so. The process stops cleanly on SIGTERM. Works on a copy of demo/ in a
temporary folder.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from inbox.store import Store

ROOT = Path(__file__).resolve().parent.parent
IMITATED = {"telegram", "mastodon", "x", "bluesky", "facebook", "instagram", "whatsapp"}

pytestmark = pytest.mark.slow


class Console:
    """The demo's merged stdout and stderr, read in a thread so the pipe never fills."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            with self._lock:
                self.lines.append(line)

    @property
    def text(self) -> str:
        with self._lock:
            return "".join(self.lines)

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.text)
            if found:
                return found
            time.sleep(0.2)
        raise AssertionError(f"the demo did not print {pattern!r} within {timeout:.0f} s:\n{self.text[-4000:]}")


@pytest.fixture
def demo_dir(tmp_path):
    target = tmp_path / "demo"
    shutil.copytree(ROOT / "demo", target, ignore=shutil.ignore_patterns("data"))
    return target


@pytest.fixture
def running_demo(demo_dir):
    proc = subprocess.Popen(
        [sys.executable, "-c", "from inbox.cli import run; run()", "--config", str(demo_dir / "config.yaml"),
         "demo", "--port", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    console = Console(proc)
    try:
        yield proc, console
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def channels_with_conversations(database: Path) -> set[str]:
    store = Store(database)
    try:
        return {c["channel"] for c in store.recent_conversations(limit=500)}
    finally:
        store.close()


def sign_in(url: str, email: str, password: str) -> requests.Session:
    http = requests.Session()
    page = http.get(url + "login", timeout=10).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    answer = http.post(url + "login", data={"email": email, "password": password, "csrf_token": token},
                       allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text[:500]
    return http


def reply(http: requests.Session, url: str, conversation_id: int, text: str) -> None:
    page = http.get(f"{url}conversations/{conversation_id}", timeout=10).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    seen = re.search(r'name="seen_up_to" value="(\d*)"', page).group(1)
    answer = http.post(f"{url}conversations/{conversation_id}/reply",
                       data={"text": text, "seen_up_to": seen, "csrf_token": token}, timeout=10)
    assert answer.status_code == 200, answer.text[:500]
    assert "Reply queued" in answer.text, answer.text[:2000]


def conversation_on(database: Path, channel: str, author: str) -> dict:
    store = Store(database)
    try:
        for conversation in store.recent_conversations(limit=500):
            if conversation["channel"] == channel:
                messages = store.conversation_messages(conversation["id"])
                if any(author in (m["author_name"] or "") for m in messages if m["direction"] == "in"):
                    return conversation
    finally:
        store.close()
    raise AssertionError(f"no {channel} conversation with {author}")


def delivery_of(database: Path, conversation_id: int, text: str) -> str | None:
    store = Store(database)
    try:
        for message in store.conversation_messages(conversation_id):
            if message["direction"] == "out" and message["text"].startswith(text):
                return message["delivery_status"]
    finally:
        store.close()
    return None


def test_the_live_demo_fills_the_queue_from_five_channels_and_replies_reach_them(demo_dir, running_demo):
    proc, console = running_demo
    url = console.wait_for(r"open\s+(http://\S+/)", 60).group(1)
    email, password = console.wait_for(r"sign in\s+(\S+) / (\S+)", 5).groups()
    live = console.wait_for(r"live\s+(.+)", 5).group(1)
    for name in ("Telegram", "Mastodon", "X", "Bluesky", "Facebook", "Instagram", "WhatsApp"):
        assert name in live
    database = demo_dir / "data" / "mainland.db"

    # Within a minute of starting, conversations from at least five imitated channels.
    started = time.monotonic()
    found: set[str] = set()
    while time.monotonic() - started < 60:
        found = channels_with_conversations(database) & IMITATED
        if len(found) >= 5:
            break
        time.sleep(1)
    assert len(found) >= 5, (found, console.text[-3000:])
    assert "demo-mail" in channels_with_conversations(database)  # the sample mail is there too

    # An agent answers Priya on Telegram and Emma by email, through the web composer.
    http = sign_in(url, email, password)
    console.wait_for(r"Priya Patel wrote on Telegram", 30)
    deadline = time.monotonic() + 30
    while True:
        try:
            priya = conversation_on(database, "telegram", "Priya")
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    reply(http, url, priya["id"], "Hi Priya, we have sent you a new reset link. Sorry for the trouble!")
    emma = conversation_on(database, "demo-mail", "Emma de Vries")
    reply(http, url, emma["id"], "Beste Emma, je pakket is onderweg en komt morgen aan.")

    console.wait_for(r"→ Telegram received a reply to @priya_p: Hi Priya, we have sent you a new reset link", 45)
    console.wait_for(r"→ Email received a reply to emma\.devries@example\.nl: .*Beste Emma", 45)
    assert delivery_of(database, priya["id"], "Hi Priya") == "sent"
    assert delivery_of(database, emma["id"], "Beste Emma") == "sent"

    # Connector health sees every imitated channel working, and what came in today.
    health = {c["name"]: c for c in http.get(url + "-/connectors", timeout=10).json()["channels"]}
    assert IMITATED <= set(health)
    assert all(health[name]["failures"] == 0 and health[name]["last_success_at"] for name in IMITATED), health
    assert sum(1 for name in IMITATED if health[name]["items_24h"]) >= 5
    assert health["whatsapp"]["push_only"] and health["whatsapp"]["last_webhook_at"]
    page = http.get(url + "admin/connectors", timeout=10).text
    assert "Connector health" in page and "has not been reachable" not in page

    # Ctrl-C (SIGTERM here) stops everything cleanly.
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, console.text[-3000:]
    assert "Traceback" not in console.text, console.text[-5000:]
