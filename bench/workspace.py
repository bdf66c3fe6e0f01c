"""Workspace benchmark: a scripted shift in Chromium on the demo data, keyboard only.

    python bench/workspace.py [--conversations 30] [--resolve] [--headed] [--keep DIR]

1. Set-up, in a temporary folder: a configuration like demo/config.yaml but without the live
   channels (`live_channels: false`) and with one channel of every kind (email, web form, Telegram,
   Mastodon, X, Bluesky, Facebook, Instagram, WhatsApp; disabled, nothing is polled or sent), the
   demo seeded as `mainland demo --seed-only` does (`inbox.demo.seed`: admin, team, answer library,
   the sample mail), then customers writing in on the other channels through the real ingest
   pipeline until `--conversations` conversations need an answer (the sample mail's automatic reply
   comes on top). The app runs under waitress (as `mainland serve`) on 127.0.0.1, in this process.
2. The shift, in Chromium (/usr/bin/chromium) at 1440x900: sign in as the demo admin, open the first
   conversation from the queue (j, Enter), then for each conversation: read it, insert an answer
   from the library (Ctrl+K, type part of its title until it is the palette's first entry, Enter) or,
   when no answer fits, focus the composer (r) and type a short reply, and send with the keyboard
   path the composer offers (Ctrl+Enter: send and set the team's default status; with --resolve, Tab
   to "Send + resolve" and Enter, as there is no shortcut for it), which moves on to the next
   conversation of the view. The sample mail's automatic reply is resolved with "e".
   Every key press except reply text is counted; each one's time, from the press until the page
   shows its result (the row selected, the next page's thread visible, the palette's list shown,
   the composer filled), is measured from Playwright (waits poll on animation frames, so a figure
   includes one frame and the round trip to the browser: a little above what an agent sees).
3. Then every distinct page (queue, conversation, customer, answers, review, reports, settings,
   notifications) is checked with axe-core (WCAG 2.x A/AA, serious and critical; the rules are
   printed on stderr; also with a queue row selected and with the palette and the shortcut help
   open), measured for horizontal overflow at 390x844 and saved as screenshots at
   1440x900 and 390x844 under test-artifacts/workspace/.

Last line: one JSON object with rows_visible_1440x900, keystrokes_per_conversation,
axe_serious_or_critical, mobile_overflow_px, p95_action_ms, handled and details. Targets (the
workspace issue): rows >= 15, keystrokes <= 6, axe 0, overflow 0, p95 action < 300 ms, handled 30.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"]
ARTIFACTS = ROOT / "test-artifacts" / "workspace"
DESKTOP = {"width": 1440, "height": 900}
MOBILE = {"width": 390, "height": 844}
TARGETS = {"rows_visible_1440x900": ">= 15", "keystrokes_per_conversation": "<= 6", "axe_serious_or_critical": "0",
           "mobile_overflow_px": "0", "p95_action_ms": "< 300", "handled": "30"}
#: Nothing listens here: the social channels are configured but disabled, nothing is polled or sent.
NOWHERE = "http://127.0.0.1:9"
TIMEOUT_MS = 20_000


# Set-up ------------------------------------------------------------------------------------------

def channels() -> dict[str, dict]:
    """One channel of every kind, as in the live demo but pointing nowhere and disabled."""
    meta = {"api_url": NOWHERE, "access_token": "bench", "app_secret": "bench", "verify_token": "bench",
            "page_id": "100"}
    return {
        "demo-mail": {"kind": "imap", "enabled": False, "host": "127.0.0.1", "port": 1143, "security": "none",
                      "username": "support@demo.mainland.test", "password": "bench",
                      "address": "support@demo.mainland.test", "from_name": "Mainland Demo Support"},
        "contact": {"kind": "webform", "title": "Contact the Mainland demo shop", "reply_channel": "demo-mail"},
        "telegram": {"kind": "telegram", "enabled": False, "token": "1:bench", "api_url": NOWHERE,
                     "bot_username": "mainland_shop_bot"},
        "mastodon": {"kind": "mastodon", "enabled": False, "base_url": NOWHERE, "access_token": "bench",
                     "account_domain": "mastodon.example"},
        "x": {"kind": "x", "enabled": False, "user_id": "1", "api_url": NOWHERE, "client_id": "bench",
              "access_token": "bench", "refresh_token": "bench"},
        "bluesky": {"kind": "bluesky", "enabled": False, "identifier": "shop.bsky.social", "app_password": "bench",
                    "service_url": NOWHERE, "dms": True},
        "facebook": {"kind": "facebook", "enabled": False, **meta},
        "instagram": {"kind": "instagram", "enabled": False, "account_id": "200", **meta},
        "whatsapp": {"kind": "whatsapp", "enabled": False, "phone_number_id": "300", "access_token": "bench",
                     "app_secret": "bench", "verify_token": "bench", "api_url": NOWHERE},
    }


def write_config(folder: Path) -> Path:
    import yaml

    config = {
        "database": str(folder / "mainland.db"), "data_dir": str(folder / "data"), "secret_key": "bench-workspace",
        "instance_id": "mainland-bench", "base_url": "http://127.0.0.1:5000", "mail_domain": "demo.mainland.test",
        "default_language": "en", "web": {"visibility": "all"},
        "demo": {"admin_email": "demo@mainland.test", "admin_name": "Demo Admin", "mail_channel": "demo-mail",
                 "mail_dir": str(ROOT / "demo" / "mail"), "answers_file": str(ROOT / "demo" / "answers.yaml"),
                 "live_channels": False},
        "channels": channels(),
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


#: Customers writing in on the other channels: (channel, public?, name, handle, language, text).
#: Round-robin over the channels; the texts ask what the answer library answers, in English and Dutch,
#: and two ask something it has no answer for (the agent types a reply there).
WRITERS = [
    ("whatsapp", False, "Emma de Vries", "+31612345678", "Hoi! Ik had gemaild over bestelling 10482, maar nog niets "
     "gehoord. Waar blijft mijn pakket?"),
    ("telegram", False, "Priya Patel", "5551001", "Hi, I still can't reset my password, the link in the mail has "
     "expired. Can you send a new one?"),
    ("x", True, "Tom Baker", "tombaker", "@mainlandshop is the winter sale on in the Leeds shop as well, or only "
     "online? What are your opening hours on Sunday?"),
    ("mastodon", True, "Olivia Brown", "olivia@mastodon.example", "@shop my order 10533 arrived damaged, the "
     "glass of the frame is broken. What now?"),
    ("bluesky", False, "Lars Bakker", "lars.bsky.social", "Hoi, mijn retour is al twee weken binnen. Wanneer krijg "
     "ik mijn geld terug?"),
    ("facebook", False, "Sanne de Vries", "fb-1001", "Kan ik mijn bezorgadres nog wijzigen? Ik ben verhuisd."),
    ("instagram", True, "James Carter", "jamescarter", "How long does delivery to the UK take at the moment?"),
    ("contact", False, "Noor Hassan", "noor.hassan@example.nl", "Ik wil graag een retourlabel voor mijn jas, "
     "bestelling 10577."),
    ("whatsapp", False, "Michael Chen", "+447700900123", "Hello, can I pause my coffee subscription for two months "
     "while I am abroad?"),
    ("telegram", False, "Daan Visser", "5551002", "Wat zijn jullie openingstijden tijdens de feestdagen?"),
    ("x", False, "Sophie Jansen", "sophiej", "Can you send me a copy of the invoice for order 10540? I need it for "
     "my expenses."),
    ("mastodon", False, "Fleur Smit", "fleur@mastodon.example", "Mijn bestelling 10561 is beschadigd aangekomen, "
     "de doos was helemaal ingedeukt."),
    ("bluesky", True, "Grace Lee", "grace.bsky.social", "@shop.bsky.social thank you, the replacement kettle "
     "arrived today and it is perfect!"),
    ("facebook", True, "Bram de Groot", "fb-1002", "Is mijn bestelling 10590 al verzonden? Ik heb nog geen "
     "track-and-trace gekregen."),
    ("instagram", False, "Chloe Martin", "chloemartin", "I ordered the wrong size by mistake, please cancel order "
     "10601."),
    ("contact", False, "Oliver Wright", "oliver.wright@example.co.uk", "Do you sell gift cards that can be used in "
     "the shops as well as online?"),
    ("whatsapp", False, "Julia Bos", "+31687654321", "Hoe lang duurt de levering naar België op dit moment?"),
    ("telegram", True, "Ahmed Yilmaz", "5551003", "Where is my order 10612? It was due yesterday."),
    ("x", True, "Ruby Evans", "rubyevans", "@mainlandshop my refund for order 10498 has not arrived yet, when can "
     "I expect it?"),
    ("mastodon", False, "Thijs Mulder", "thijs@mastodon.example", "Kunnen jullie mijn bestelling 10620 annuleren? "
     "Ik heb hem dubbel besteld."),
    ("bluesky", False, "Isla Walker", "isla.bsky.social", "Can I bring my own cup to the Leeds shop café?"),
    ("facebook", False, "Kevin de Boer", "fb-1003", "Mijn wachtwoord werkt niet meer en de resetlink komt niet aan."),
    ("instagram", False, "Mila Hendriks", "milahendriks", "Wat zijn jullie openingstijden op zondag in Utrecht?"),
    ("contact", False, "Harry Green", "harry.green@example.co.uk", "My parcel arrived damaged, the lamp shade is "
     "dented. Can you replace it?"),
]

IDENTITY_KIND = {"whatsapp": "phone", "contact": "email"}


def make_item(channel: str, public: bool, name: str, handle: str, text: str, n: int):
    from inbox.models import Author, InboundItem

    kind = IDENTITY_KIND.get(channel, channel)
    subject = text.split("?")[0][:60] if channel == "contact" else None
    return InboundItem(channel=channel, external_id=f"bench-{channel}-{n}", text=text, subject=subject,
                       thread_key=f"bench-thread-{n}", public=public,
                       author=Author(handle=handle, name=name, identity_kind=kind))


@dataclass
class Setup:
    folder: Path
    config_path: Path
    email: str
    password: str
    conversation_ids: list[int]
    automatic_ids: list[int]
    channels: dict[str, int]


def build(folder: Path, conversations: int) -> Setup:
    """The demo data (as `mainland demo --seed-only`) and conversations on every channel."""
    from inbox import config as config_module
    from inbox import demo
    from inbox.models import FetchResult
    from inbox.runtime import Mainland

    config = config_module.load(write_config(folder))
    mainland = Mainland(config)
    store = mainland.open_store(migrate=True)
    try:
        demo.seed(mainland, store)
        settings = demo.DemoSettings.from_config(config)
        ingestor = mainland.ingestor(store)
        present = store.recent_conversations(limit=500)
        automatic = [c["id"] for c in present if "auto_submitted" in (c.get("flags") or "")]
        needed = conversations - (len(present) - len(automatic))
        if needed > len(WRITERS):
            raise SystemExit(f"at most {len(present) - len(automatic) + len(WRITERS)} conversations")
        for n, (channel, public, name, handle, text) in enumerate(WRITERS[:max(0, needed)], start=1):
            ingestor.ingest(channel, FetchResult(items=[make_item(channel, public, name, handle, text, n)],
                                                 cursor=f"bench-{n}"))
        rows = store.recent_conversations(limit=500)
        ids = [c["id"] for c in rows if c["id"] not in automatic]
        by_channel: dict[str, int] = {}
        for c in rows:
            by_channel[c["channel"]] = by_channel.get(c["channel"], 0) + 1
        return Setup(folder, config.source, settings.admin_email, demo.demo_password(settings), ids, automatic,
                     by_channel)
    finally:
        store.close()


class Server:
    """The web app under waitress, as `mainland serve` runs it (same threads), on a free port of
    127.0.0.1, in a thread of this process; no worker (nothing is polled or sent)."""

    def __init__(self, config_path: Path) -> None:
        import logging

        from waitress import create_server

        import inbox.cli  # noqa: F401 - loads the commands; importing running.py first is a circular import
        from inbox import create_app
        from inbox.commands.running import DEFAULT_THREADS

        logging.getLogger("waitress.queue").setLevel(logging.ERROR)
        self.app = create_app(config_path)
        self.server = create_server(self.app, host="127.0.0.1", port=0, threads=DEFAULT_THREADS, ident="Mainland")
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{self.server.effective_port}"

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.close()
        self.thread.join(timeout=5)


# The shift ---------------------------------------------------------------------------------------

#: Which answer of demo/answers.yaml fits a question: (words in the question, title). First match wins.
ANSWER_RULES = [
    (("wachtwoord", "resetlink"), "Wachtwoord opnieuw instellen"),
    (("password",), "Resetting your password"),
    (("automatisch antwoord",), None),
    (("feestdagen",), "Openingstijden tijdens de feestdagen"),
    (("holiday", "christmas"), "Opening hours over the holidays"),
    (("openingstijden",), "Openingstijden"),
    (("opening hours",), "Opening hours"),
    (("terugbetaling", "geld terug"), "Terugbetaling onderweg"),
    (("refund",), "Refund on its way"),
    (("bezorgadres", "adres"), "Bezorgadres wijzigen"),
    (("delivery address",), "Change of delivery address"),
    (("retourlabel", "retour aanvragen", "terugsturen"), "Retourlabel"),
    (("return label",), "Returns label"),
    (("levering", "levertijd"), "Levertijden"),
    (("how long does delivery", "delivery time"), "Delivery times"),
    (("pauzeren",), "Abonnement pauzeren"),
    (("pause", "subscription"), "Pausing your subscription"),
    (("beschadigd", "kapot"), "Artikel beschadigd aangekomen"),
    (("damaged", "cracked", "broken", "dented"), "Item arrived damaged"),
    (("factuur",), "Kopie van je factuur"),
    (("invoice",), "A copy of your invoice"),
    (("annuleren",), "Bestelling geannuleerd"),
    (("cancel",), "Order cancelled"),
    (("bedankt", "dank je"), "Bedankt voor je compliment"),
    (("thank you", "thanks"), "Thank you for your kind words"),
    (("bestelling", "pakket", "verzonden"), "Waar is mijn bestelling?"),
    (("where is my order", "order", "parcel"), "Where is my order?"),
]

REPLY_TEXT = "Thank you for asking. Let me check this with the shop and I will come back to you today."


def pick_answer(text: str) -> str | None:
    lowered = text.lower()
    for words, title in ANSWER_RULES:
        if any(word in lowered for word in words):
            return title
    return None


@dataclass
class Action:
    what: str
    keys: int
    ms: float  # key event to result shown, on the browser's clock
    wall_ms: float  # around Playwright's calls, on this process's clock
    key_at: float | None = None
    shown_at: float | None = None


@dataclass
class Shift:
    actions: list[Action] = field(default_factory=list)
    worked: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    #: Per navigating action: (ms until the next page starts loading, its server time, ms to DOM ready).
    breakdown: dict[str, list[tuple[float, float, float]]] = field(default_factory=dict)
    #: Sends after which the page showed an undo bar and moved on only when told (or when it ended).
    undo_windows: int = 0
    #: (url, status) of every response the browser had during the shift.
    responses: list[tuple[str, int]] = field(default_factory=list)

    @property
    def keys(self) -> int:
        return sum(a.keys for a in self.actions)


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


#: Injected into every page: the time of each key press (the event's own time stamp, on the page's
#: clock, in ms since the epoch), kept in sessionStorage so that the next page can still read it.
KEY_CLOCK_JS = """document.addEventListener('keydown', function (ev) {
    try { sessionStorage.setItem('__benchKeyAt', String(performance.timeOrigin + ev.timeStamp)); } catch (e) {}
}, true);"""
#: A condition (a JS expression over `arg`) as a function that returns the page's time once it holds.
SHOWN_AT = "arg => ({cond}) ? performance.timeOrigin + performance.now() : 0"
#: The page a key press led to is shown: its DOM is ready and it has painted content; returns when.
PAGE_SHOWN_AT = """() => {
    const n = performance.getEntriesByType('navigation')[0];
    const paint = performance.getEntriesByName('first-contentful-paint')[0];
    if (!n || !(n.domContentLoadedEventEnd > 0) || !(paint || document.readyState === 'complete')) { return 0; }
    return performance.timeOrigin + Math.max(n.domContentLoadedEventEnd, paint ? paint.startTime : 0);
}"""
#: Of that page: when its load started, its request went out, its first byte came (ms since the epoch).
NAVIGATION_JS = """() => { const n = performance.getEntriesByType('navigation')[0];
    return {start: performance.timeOrigin, request: performance.timeOrigin + n.requestStart,
            first_byte: performance.timeOrigin + n.responseStart}; }"""


def shown_when(page, cond: str, arg=None) -> float:
    """Wait (polling on animation frames) until the JS expression `cond` holds; the page's time then."""
    handle = page.wait_for_function(SHOWN_AT.replace("{cond}", cond), arg=arg, polling="raf", timeout=TIMEOUT_MS)
    return float(handle.json_value())


def timed(shift: Shift, page, what: str, press, until=None, keys: int = 1) -> Action:
    """Press (a callable), then wait for the result (`until` returns the page's time when it showed).
    The action's time runs from the key event's own time stamp to that moment, both on the browser's
    clock; the wall clock around the two calls (which adds the round trips to the browser) is kept too."""
    started = time.perf_counter()
    press()
    shown_at = until() if until else None
    wall = (time.perf_counter() - started) * 1000
    key_at = page.evaluate("() => Number(sessionStorage.getItem('__benchKeyAt') || 0)")
    ms = shown_at - key_at if shown_at and key_at else wall
    action = Action(what, keys, ms, wall, key_at, shown_at)
    shift.actions.append(action)
    return action


def next_page_shown(page, before: str):
    """For a press that leads to another page: wait for it; returns when it was shown."""
    def wait() -> float:
        page.wait_for_url(lambda url: url != before, wait_until="commit", timeout=TIMEOUT_MS)
        return float(page.wait_for_function(PAGE_SHOWN_AT, polling="raf", timeout=TIMEOUT_MS).json_value())
    return wait


def navigate(shift: Shift, page, what: str, press, until) -> Action:
    """A press that leads to another page: timed like any action, and split into the time until the
    browser starts loading the next page (the action's own request: a JSON post, a status change),
    that page's server time (request to first byte) and the rest (to DOM ready and painted)."""
    url_before = page.url
    action = timed(shift, page, what, press, until)
    if action.shown_at and action.key_at and page.url != url_before:
        nav = page.evaluate(NAVIGATION_JS)
        shift.breakdown.setdefault(what, []).append(
            (nav["start"] - action.key_at, nav["first_byte"] - nav["request"], action.shown_at - nav["first_byte"]))
    return action


def sign_in(page, base: str, email: str, password: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def palette_top(page) -> str:
    return page.evaluate("() => { const li = document.querySelector('#palette ul li'); "
                         "return li ? li.textContent : ''; }")


def palette_score(label: str, query: str) -> float | None:
    """static/palette.js `score()`, line for line: how well `query` matches a command's text."""
    if not query:
        return 0
    text, q = label.lower(), query.lower()
    pos, total, last = -1, 0, -2
    for char in q:
        if char == " ":
            continue
        pos = text.find(char, pos + 1)
        if pos < 0:
            return None
        total += (3 if pos == last + 1 else 1) + (2 if pos == 0 or text[pos - 1] == " " else 0)
        last = pos
    return total - len(text) / 100


def palette_first(commands: list[dict], query: str) -> str | None:
    """The label the palette puts first for `query` (palette.js `draw()`: stable sort by score)."""
    scored = [(palette_score(c["group"] + " " + c["label"], query.strip()), n, c) for n, c in enumerate(commands)]
    ranked = sorted(((s, n, c) for s, n, c in scored if s is not None), key=lambda x: (-x[0], x[1]))
    return ranked[0][2]["label"] if ranked else None


def title_prefix_query(commands: list[dict], title: str) -> str | None:
    """An agent typing the answer's title from its start until it comes first."""
    for end in range(1, len(title) + 1):
        if palette_first(commands, title[:end]) == title:
            return title[:end]
    return None


def keyword_query(commands: list[dict], title: str) -> str | None:
    """An agent who knows the library: the shortest start of any word of the title (or of the title)
    that brings the answer first."""
    words = [w.strip("?!.,:;") for w in title.split()]
    candidates = {w[:end] for w in words for end in range(1, len(w) + 1)}
    candidates |= {title[:end] for end in range(1, len(title) + 1)}
    fitting = [q for q in candidates if q.strip() and palette_first(commands, q) == title]
    return min(fitting, key=lambda q: (len(q), q)) if fitting else None


#: What the agent types over an answer variable the library could not fill (an order number).
FILLED_VALUE = "10482"


def insert_answer(page, shift: Shift, title: str, query: str) -> bool:
    """Ctrl+K, type `query`, Enter (ArrowDown first when the answer is not the first entry)."""
    timed(shift, page, "palette open", lambda: page.keyboard.press("Control+k"),
          lambda: shown_when(page, "!document.getElementById('palette').hidden && "
                                   "document.querySelectorAll('#palette ul li').length > 0"))
    typed = ""
    for char in query.lower():
        typed += char
        timed(shift, page, "palette filter", lambda c=char: page.keyboard.type(c),
              lambda t=typed: shown_when(page, "document.querySelector('#palette input').value === arg", t))
    if not palette_top(page).endswith(title):
        shift.problems.append(f"the palette did not put {title!r} first for {query!r} as palette.js scores it")
        labels = page.eval_on_selector_all("#palette ul li", "els => els.map(e => e.textContent)")
        index = next((i for i, label in enumerate(labels) if label.endswith(title)), None)
        if index is None:
            timed(shift, page, "palette close", lambda: page.keyboard.press("Escape"),
                  lambda: shown_when(page, "document.getElementById('palette').hidden"))
            return False
        for n in range(index):
            timed(shift, page, "palette down", lambda: page.keyboard.press("ArrowDown"),
                  lambda i=n + 1: shown_when(page, "document.getElementById('palette-item-' + arg)"
                                                   ".getAttribute('aria-selected') === 'true'", i))
    timed(shift, page, "insert answer", lambda: page.keyboard.press("Enter"),
          lambda: shown_when(page, "document.getElementById('reply-text').value.trim().length > 0"))
    return True


def work_conversation(page, base: str, shift: Shift, automatic: set[int], resolve: bool = False) -> bool:
    """One conversation, from reading it to the next page. False when the shift cannot go on."""
    conversation_id = int(page.get_attribute("#conversation", "data-conversation-id"))
    subject = page.inner_text("h1")
    question = " ".join(page.locator(".message.direction-in .text").all_inner_texts())
    record = {"id": conversation_id, "subject": subject.split("#")[0].strip(), "keys": shift.keys}
    before = page.url

    if conversation_id in automatic:
        navigate(shift, page, "resolve (e)", lambda: page.keyboard.press("e"), next_page_shown(page, before))
        record.update(how="resolved with e, no reply", keys=shift.keys - record["keys"])
        shift.worked.append(record)
        return True

    title = pick_answer(f"{subject}\n{question}")
    query = None
    if title:
        # What the palette will offer (the same list it fetches); fetched outside the timed presses.
        commands = page.request.get(f"{base}/conversations/{conversation_id}/commands").json()["commands"]
        query = keyword_query(commands, title)
        naive = title_prefix_query(commands, title)
        record["title_prefix_chars"] = len(naive) if naive else len(title)
        if query is None:
            shift.problems.append(f"#{conversation_id}: no typed query brings {title!r} first in the palette")
            query = title
    inserted = insert_answer(page, shift, title, query) if title else False
    if inserted:
        record["query"] = query
        # The palette selects a variable the answer could not fill ("{{order_number}}"): the agent
        # types the value over it. That is reply text: neither counted nor timed.
        while "{{" in page.input_value("#reply-text"):
            page.evaluate("() => { const b = document.getElementById('reply-text'); const i = b.value.indexOf('{{');"
                          " b.setSelectionRange(i, b.value.indexOf('}}', i) + 2); b.focus(); }")
            page.keyboard.type(FILLED_VALUE)
    if not inserted:
        if title:
            shift.problems.append(f"#{conversation_id}: the palette did not offer the answer {title!r}")
        timed(shift, page, "composer (r)", lambda: page.keyboard.press("r"),
              lambda: shown_when(page, "document.activeElement && document.activeElement.id === 'reply-text'"))
        page.keyboard.type(REPLY_TEXT)  # reply text: neither counted nor timed
    if page.locator("#send-reply").is_disabled():
        shift.problems.append(f"#{conversation_id}: the inserted answer is too long for the channel; the send "
                              "buttons are disabled")
        page.fill("#reply-text", REPLY_TEXT[:200])  # the agent shortens it: reply text, not counted
    default = page.inner_text("#send-reply .send-then").strip("→ ").strip()

    def sent() -> float | None:
        """The send's result: the next page (no undo window), or the reply in the thread with the undo
        bar counting down (an undo window: the page moves on only when it ends), or an error."""
        page.wait_for_function(
            "before => location.href !== before || !document.getElementById('composer-error').hidden "
            "|| (document.querySelector('#undo-send .undo-form') && !document.getElementById('undo-send').hidden)",
            arg=before, polling="raf", timeout=TIMEOUT_MS)
        if page.url != before:
            return next_page_shown(page, before)()
        return shown_when(page, "true")

    if resolve:
        # No shortcut sends and resolves: from the composer, Tab through the send buttons to "Send + resolve".
        for _ in range(8):
            timed(shift, page, "focus (Tab)", lambda: page.keyboard.press("Tab"),
                  lambda: shown_when(page, "document.activeElement !== null"))
            if page.evaluate("() => document.activeElement.id") == "send-reply-resolved":
                break
        else:
            shift.problems.append(f"#{conversation_id}: Tab did not reach the Send + resolve button")
        default = "Resolved"
        send = navigate(shift, page, "send + resolve (Enter)", lambda: page.keyboard.press("Enter"), sent)
    else:
        send = navigate(shift, page, "send (Ctrl+Enter)", lambda: page.keyboard.press("Control+Enter"), sent)
    if page.url == before and page.locator("#undo-send .undo-next").count():
        # The undo window: the next conversation opens when it ends, or at once with "Go on now"
        # (focus is on Undo after sending; Tab to "Go on now", Enter).
        shift.undo_windows += 1
        send.what += ", undo bar shown"
        for _ in range(4):
            timed(shift, page, "focus (Tab)", lambda: page.keyboard.press("Tab"),
                  lambda: shown_when(page, "document.activeElement !== null"))
            if page.evaluate("() => document.activeElement.classList.contains('undo-next')"):
                break
        else:
            shift.problems.append(f"#{conversation_id}: Tab did not reach \"Go on now\" of the undo bar")
        if page.url == before:
            navigate(shift, page, "go on now (Enter)", lambda: page.keyboard.press("Enter"),
                     next_page_shown(page, before))
    if page.url == before:
        error = page.inner_text("#composer-error")
        shift.problems.append(f"#{conversation_id}: sending failed: {error}")
        record.update(how=f"send failed: {error}", keys=shift.keys - record["keys"])
        shift.worked.append(record)
        return False
    record.update(how=(f"answer {title!r} ({query!r})" if inserted else "typed reply") + f", sent with {default}",
                  keys=shift.keys - record["keys"])
    shift.worked.append(record)
    return True


def run_shift(page, base: str, setup: Setup, resolve: bool = False) -> Shift:
    shift = Shift()
    page.goto(f"{base}/")
    page.wait_for_selector("table.queue tbody tr")
    timed(shift, page, "select row (j)", lambda: page.keyboard.press("j"),
          lambda: shown_when(page, "document.querySelector('table.queue tr.selected')"))
    before = page.url
    navigate(shift, page, "open (Enter)", lambda: page.keyboard.press("Enter"), next_page_shown(page, before))
    automatic = set(setup.automatic_ids)
    limit = len(setup.conversation_ids) + len(setup.automatic_ids) + 5
    for _ in range(limit):
        if page.locator("#conversation").count() == 0:
            break  # back on the queue: nothing left in the view
        if not work_conversation(page, base, shift, automatic, resolve):
            break
    return shift


# Pages -------------------------------------------------------------------------------------------

def rows_fully_visible(page) -> int:
    return page.evaluate(
        """() => Array.from(document.querySelectorAll('table.queue tbody tr')).filter(tr => {
            const r = tr.getBoundingClientRect();
            return r.height > 0 && r.top >= 0 && r.left >= 0 && r.bottom <= window.innerHeight
                && r.right <= window.innerWidth;
        }).length""")


def overflow(page, width: int) -> int:
    return max(0, page.evaluate("() => document.documentElement.scrollWidth") - width)


#: The elements that stick out to the right while their parent does not: where an overflow starts.
OVERFLOWING_JS = """width => {
    const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
        + (el.classList.length ? '.' + Array.from(el.classList).join('.') : '');
    // Inside a box that clips or scrolls within the page: no overflow of the page (unless the element
    // is positioned out of that box's reach).
    const clipped = el => {
        if (['absolute', 'fixed'].includes(getComputedStyle(el).position)) { return false; }
        for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
            if (getComputedStyle(a).overflowX !== 'visible' && a.getBoundingClientRect().right <= width + 0.5) {
                return true;
            }
        }
        return false;
    };
    const out = [];
    for (const el of document.body.querySelectorAll('*')) {
        const r = el.getBoundingClientRect();
        if (r.width === 0 || r.right <= width + 0.5) { continue; }
        const parent = el.parentElement && el.parentElement.getBoundingClientRect();
        const escapes = ['absolute', 'fixed'].includes(getComputedStyle(el).position);
        if (parent && parent.right > width + 0.5 && !escapes) { continue; }
        if (clipped(el)) { continue; }
        out.push(name(el.parentElement) + ' > ' + name(el) + ' (right edge ' + Math.round(r.right) + 'px)');
    }
    return out.slice(0, 6);
}"""


def check_pages(browser, storage: dict, base: str, pages: dict[str, str]) -> dict:
    """Screenshots at both sizes, axe at 1440x900 (also with a queue row selected, and with the palette
    and the shortcut help open on the conversation), the overflow at 390x844 and where it starts."""
    from tests.axe import axe_script, violations_of

    script = axe_script()
    results: dict = {"axe": {}, "overflow": {}, "overflowing": {}, "failed": {}}
    for size, name in ((DESKTOP, "1440x900"), (MOBILE, "390x844")):
        context = browser.new_context(viewport=size, storage_state=storage)
        page = context.new_page()
        try:
            for label, path in pages.items():
                response = page.goto(base + path)
                page.wait_for_load_state("load")
                if response is None or response.status >= 400:
                    results["failed"][label] = response.status if response else None
                page.screenshot(path=str(ARTIFACTS / f"{label}-{name}.png"), full_page=True)
                if size is MOBILE:
                    results["overflow"][label] = overflow(page, size["width"])
                    if results["overflow"][label]:
                        results["overflowing"][label] = page.evaluate(OVERFLOWING_JS, size["width"])
                elif script is not None:
                    results["axe"][label] = violations_of(page, script)
                if label == "queue" and size is DESKTOP and script is not None:
                    page.keyboard.press("j")
                    page.wait_for_selector("table.queue tr.selected")
                    results["axe"]["queue, row selected (j)"] = violations_of(page, script)
                if label == "conversation":
                    page.keyboard.press("Control+k")
                    page.wait_for_selector("#palette ul li")
                    page.screenshot(path=str(ARTIFACTS / f"conversation-palette-{name}.png"))
                    if size is DESKTOP and script is not None:
                        results["axe"]["conversation, palette open"] = violations_of(page, script)
                    page.keyboard.press("Escape")
                    page.keyboard.press("?")
                    page.wait_for_selector("#shortcuts-help", state="visible")
                    page.screenshot(path=str(ARTIFACTS / f"conversation-shortcuts-{name}.png"))
                    if size is DESKTOP and script is not None:
                        results["axe"]["conversation, shortcut help open"] = violations_of(page, script)
                    page.keyboard.press("Escape")
        finally:
            context.close()
    return results


# Main --------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=30, help="conversations that need an answer")
    parser.add_argument("--resolve", action="store_true",
                        help="send with Send + resolve (reached with Tab) instead of Ctrl+Enter (the team default)")
    parser.add_argument("--headed", action="store_true", help="show the browser")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing: scripts/setup.sh --test installs it")
    folder = args.keep or Path(tempfile.mkdtemp(prefix="mainland-bench-workspace-"))
    folder.mkdir(parents=True, exist_ok=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    try:
        setup = build(folder, args.conversations)
        print(f"set-up: {len(setup.conversation_ids)} conversations to answer "
              f"(+{len(setup.automatic_ids)} automatic reply) on "
              + ", ".join(f"{k} {v}" for k, v in sorted(setup.channels.items())))
        with Server(setup.config_path) as server, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=not args.headed, args=CHROMIUM_ARGS)
            try:
                context = browser.new_context(viewport=DESKTOP)
                context.add_init_script(KEY_CLOCK_JS)
                page = context.new_page()
                responses: list[tuple[str, int]] = []
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                sign_in(page, server.url, setup.email, setup.password)
                page.wait_for_selector("table.queue tbody tr")
                rows = rows_fully_visible(page)
                first_customer = page.evaluate(
                    "() => { const a = document.querySelector('a[href^=\"/customers/\"]'); "
                    "return a ? a.getAttribute('href') : null; }")
                page.on("response", lambda r: responses.append((r.url, r.status)))
                shift = run_shift(page, server.url, setup, args.resolve)
                shift.responses = responses
                storage = context.storage_state()
                context.close()

                store = server.app.extensions["mainland"].open_store()
                try:
                    handled, outcome, unfilled = tally(store, setup)
                    customer_id = store.conversation(setup.conversation_ids[0])["customer_id"]
                finally:
                    store.close()
                pages = {
                    # After the shift the "needs attention" view is empty: every status, so the rows are there.
                    "queue": "/?status=all", "conversation": f"/conversations/{setup.conversation_ids[0]}",
                    "customer": first_customer or f"/customers/{customer_id}", "answers": "/answers",
                    "review": "/review", "reports": "/reports", "settings": "/settings",
                    "notifications": "/notifications",
                }
                checked = check_pages(browser, storage, server.url, pages)
            finally:
                browser.close()
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    load = [load_before, os.getloadavg()[0]]  # 1-minute load average before and after: the machine's other work

    report(rows, shift, handled, outcome, unfilled, checked, errors, setup, load)


def tally(store, setup: Setup) -> tuple[int, dict[str, int], list[int]]:
    """Conversations that ended resolved or pending with a reply of ours (sent or queued); and those
    whose reply went out with a variable of the answer left unfilled ("{{order_number}}")."""
    handled = 0
    outcome: dict[str, int] = {}
    unfilled = []
    for cid in setup.conversation_ids:
        conversation = store.conversation(cid)
        replies = [m for m in store.conversation_messages(cid) if m["direction"] == "out"]
        key = f"{conversation['status']}{'' if replies else ' (no reply)'}"
        outcome[key] = outcome.get(key, 0) + 1
        if replies and conversation["status"] in ("resolved", "pending"):
            handled += 1
        if any(re.search(r"\{\{[^}]*\}\}", m.get("text") or "") for m in replies):
            unfilled.append(cid)
    return handled, outcome, unfilled


def report(rows: int, shift: Shift, handled: int, outcome: dict, unfilled: list[int], checked: dict,
           errors: list[str], setup: Setup, load: list[float]) -> None:
    times = [a.ms for a in shift.actions]
    by_kind: dict[str, list[float]] = {}
    for a in shift.actions:
        by_kind.setdefault(a.what, []).append(a.ms)
    worked = len(shift.worked)
    print(f"\nshift: {worked} conversations worked, {shift.keys} counted key presses, {handled} handled "
          f"({', '.join(f'{v} {k}' for k, v in sorted(outcome.items()))})")
    for record in shift.worked:
        print(f"  #{record['id']:<3} {record['keys']:>2} keys  {record['subject'][:48]:<48} {record['how']}")
    print("\naction times (ms):")
    for what, values in by_kind.items():
        print(f"  {what:<20} n={len(values):<4} median {statistics.median(values):7.1f}   "
              f"p95 {_percentile(values, 95):7.1f}   max {max(values):7.1f}")
    print("  (from the key event to the result shown, on the browser's clock)")
    from tests.axe import describe

    axe_total = 0
    for label, violations in checked["axe"].items():
        axe_total += len(violations)
        if violations:
            print(f"axe {label}:\n" + describe(violations), file=sys.stderr)
    if not checked["axe"]:
        print("axe: node_modules/axe-core/axe.min.js is missing (scripts/setup.sh --test installs it)",
              file=sys.stderr)
    for what, parts in shift.breakdown.items():
        before, server_ms, ready = (statistics.median(x[i] for x in parts) for i in range(3))
        print(f"  {what:<20} median split: {before:6.1f} ms until the next page loads (the action's own "
              f"request), {server_ms:6.1f} ms its server time, {ready:6.1f} ms to DOM ready and painted")
    navigations = sum(len(v) for v in shift.breakdown.values())
    static = [status for url, status in shift.responses if "/static/" in url]
    if navigations:
        print(f"  requests during the shift: {len(shift.responses)} ({len(shift.responses) / navigations:.1f} per page "
              f"loaded by a key); static files {len(static)}, of which {static.count(304)} revalidated (304)")
    print("\npages: " + ", ".join(f"{k} overflow {v}px" for k, v in checked["overflow"].items()))
    print("axe serious/critical per page: " + ", ".join(f"{k} {len(v)}" for k, v in checked["axe"].items()))
    for label, where in checked["overflowing"].items():
        print(f"overflow {label} at 390px: " + "; ".join(where), file=sys.stderr)
    server_errors = [f"{status} {url}" for url, status in shift.responses if status >= 500]
    for label, status in checked["failed"].items():
        print(f"page {label} answered {status}: its figures measure an error page", file=sys.stderr)
    for error in server_errors[:10]:
        print(f"server error during the shift: {error}", file=sys.stderr)
    if unfilled:
        print(f"{len(unfilled)} replies went out with an answer variable left unfilled (e.g. {{{{order_number}}}}): "
              + ", ".join(f"#{cid}" for cid in unfilled), file=sys.stderr)
    for problem in shift.problems:
        print(f"problem: {problem}", file=sys.stderr)
    for error in errors:
        print(f"page error: {error}", file=sys.stderr)
    # The same shift if the agent typed each answer's title from its start instead of a keyword.
    naive_keys = shift.keys + sum(r["title_prefix_chars"] - len(r["query"]) for r in shift.worked if "query" in r)
    mobile = {k: v for k, v in checked["overflow"].items() if k in ("queue", "conversation", "customer", "answers")}
    figures = {
        "rows_visible_1440x900": rows,
        "keystrokes_per_conversation": round(shift.keys / worked, 2) if worked else None,
        "axe_serious_or_critical": axe_total if checked["axe"] else None,
        "mobile_overflow_px": max(mobile.values()) if mobile else None,
        "p95_action_ms": round(_percentile(times, 95), 1) if times else None,
        "handled": handled,
        "conversations": len(setup.conversation_ids),
        "worked": worked,
        "keystrokes": shift.keys,
        "keystrokes_per_conversation_title_prefix": round(naive_keys / worked, 2) if worked else None,
        "actions": len(times),
        "p50_action_ms": round(statistics.median(times), 1) if times else None,
        "p95_action_wall_ms": round(_percentile([a.wall_ms for a in shift.actions], 95), 1) if times else None,
        "axe_by_page": {k: sorted({v["id"] for v in vs}) for k, vs in checked["axe"].items()},
        "overflow_by_page": checked["overflow"],
        "replies_with_unfilled_variable": len(unfilled),
        "sends_with_undo_window": shift.undo_windows,
        "page_errors": len(errors),
        "server_errors": len(server_errors) + len(checked["failed"]),
        "problems": len(shift.problems),
        "load_average": [round(x, 2) for x in load],
        "targets": TARGETS,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
