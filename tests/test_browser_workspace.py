"""The agent's workspace in a real Chromium: a screenful of queue rows, live rows without a reload,
no sideways scrolling on a phone, no serious accessibility faults (axe-core), and the command palette.

Small data made through the real ingest pipeline (bench/workspace.py runs a whole shift on the demo
data). Screenshots of every page visited, at 1440x900 and 390x844, are saved under
test-artifacts/screenshots/ (kept by CI as artifacts, ignored by git). axe-core comes from npm
(scripts/setup.sh --test); without it the accessibility test skips, and fails under CI.
"""

from __future__ import annotations

import itertools
import re

import pytest

from inbox.models import Author, FetchResult, InboundItem
from tests.axe import describe, run_axe

# LAUNCH_ARGS and SCREENSHOTS: other browser tests import them from here.
from tests.browser_helpers import (  # noqa: F401
    DESKTOP,
    LAUNCH_ARGS,
    PHONE,
    SCREENSHOTS,
    screenshots_at_both_sizes,
    sign_in,
)
from tests.test_web_auth import make_agent

pytestmark = pytest.mark.browser

TIMEOUT = 15_000

#: Customers on a chat channel: (name, handle, question).
PEOPLE = [
    ("Emma de Vries", "1001", "Waar blijft mijn bestelling 10482?"),
    ("James Carter", "1002", "My kettle arrived with a cracked lid."),
    ("Priya Patel", "1003", "I can't reset my password, the link has expired."),
    ("Tom Baker", "1004", "Is the winter sale on in the Leeds shop as well?"),
    ("Sophie Jansen", "1005", "Kan ik een kopie van mijn factuur krijgen?"),
    ("Lars Bakker", "1006", "Wanneer krijg ik mijn geld terug voor de retour?"),
    ("Olivia Brown", "1007", "Thank you, the replacement arrived today!"),
    ("Daan Visser", "1008", "Kan ik mijn bezorgadres nog wijzigen?"),
    ("Noor Hassan", "1009", "Wat zijn jullie openingstijden op zondag?"),
    ("Michael Chen", "1010", "Please cancel my coffee subscription."),
]


class Customers:
    """Conversations made through the real ingest pipeline, one Telegram chat each."""

    def __init__(self, app) -> None:
        self.mainland = app.extensions["mainland"]
        self.store = self.mainland.open_store()
        self._n = itertools.count(1)

    def write(self, name: str, handle: str, text: str, chat: str | None = None) -> int:
        n = next(self._n)
        item = InboundItem(channel="telegram", external_id=f"tg-{n}", text=text, thread_key=chat or f"chat-{handle}",
                           author=Author(handle=handle, name=name, identity_kind="telegram"))
        report = self.mainland.ingestor(self.store).ingest("telegram", FetchResult(items=[item], cursor=f"c{n}"))
        [message_id] = report.message_ids
        return self.store.message(message_id)["conversation_id"]

    def many(self, count: int) -> list[int]:
        """`count` conversations from different people; the last one made is the newest."""
        ids = []
        for n in range(count):
            name, handle, text = PEOPLE[n % len(PEOPLE)]
            ids.append(self.write(f"{name} {n // len(PEOPLE) + 1}" if n >= len(PEOPLE) else name,
                                  f"{handle}-{n}", text))
        return ids

    def reply(self, conversation_id: int, text: str) -> None:
        """Our reply, queued as the composer queues it (its row then shows it as the latest message)."""
        from inbox.store.base import now_iso

        with self.store.write():
            self.store.queue_outbound(outbox_id=f"out-{next(self._n)}", conversation_id=conversation_id,
                                      channel="telegram", agent_id=None, text=text, html=None, subject="",
                                      message_id=None, refs="", author_name="Ann Agent", now=now_iso())

    def close(self) -> None:
        self.store.close()


@pytest.fixture
def customers(app):
    app.config.update(LIVE_POLL_SECONDS=0.2)
    people = Customers(app)
    make_agent(people.store)
    yield people
    people.close()


def open_page(browser, base: str, target: str = "/", viewport: dict | None = None):
    """A signed-in page at `target`; page errors are collected in `page.errors`."""
    page = browser.new_context(viewport=viewport or DESKTOP).new_page()
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    sign_in(page, base, target=target)
    return page


def screenshots(page, name: str) -> None:
    """The page as it is now at 1440x900 and at 390x844 (the viewport is put back afterwards)."""
    screenshots_at_both_sizes(page, f"workspace-{name}")


def rows_fully_visible(page) -> int:
    return page.evaluate(
        """() => Array.from(document.querySelectorAll('table.queue tbody tr')).filter(tr => {
            const r = tr.getBoundingClientRect();
            return r.height > 0 && r.top >= 0 && r.left >= 0 && r.bottom <= window.innerHeight
                && r.right <= window.innerWidth;
        }).length""")


def test_a_screenful_of_the_queue_shows_at_least_15_whole_rows(live_app, customers, browser):  # noqa: F811
    customers.many(20)
    page = open_page(browser, live_app, "/")
    page.locator("table.queue tbody tr").nth(19).wait_for()
    visible = rows_fully_visible(page)
    screenshots(page, "queue")
    assert visible >= 15, f"only {visible} rows of the queue are fully visible at 1440x900"
    assert page.errors == []


def test_a_follow_up_updates_its_row_live_without_a_reload_or_losing_the_scroll(live_app, customers,  # noqa: F811
                                                                                browser):
    from playwright.sync_api import expect

    ids = customers.many(30)
    older = ids[5]  # far down the list (newest activity first)
    page = open_page(browser, live_app, "/?sort=activity", viewport={"width": 1440, "height": 600})
    rows = page.locator("table.queue tbody tr")
    expect(rows).to_have_count(30, timeout=TIMEOUT)
    expect(rows.first).to_have_attribute("data-id", str(ids[-1]))
    page.wait_for_function("() => document.documentElement.scrollHeight > window.innerHeight + 200")
    page.evaluate("window.scrollTo(0, 200)")
    page.wait_for_function("() => window.scrollY === 200")
    page.evaluate("window.__sameDocument = true")
    # The page's live stream is open before the customer writes (the queue subscribes on load).
    page.wait_for_function("() => window.Live && Live.lastEventId() !== null", timeout=TIMEOUT)

    name, handle, _ = PEOPLE[5]
    customers.write(name, f"{handle}-5", "Any news? The parcel still has not arrived.", chat=f"chat-{handle}-5")

    expect(rows.first).to_have_attribute("data-id", str(older), timeout=TIMEOUT)
    expect(rows.first).to_contain_text("Any news? The parcel still has not arrived.")
    assert page.evaluate("window.__sameDocument") is True, "the page was reloaded"
    assert page.evaluate("window.scrollY") == 200, "the scroll position was lost"
    assert page.errors == []
    screenshots(page, "queue-live")


#: The elements that stick out to the right while their parent does not: where an overflow starts
#: (an element inside a box that clips is left out, unless it is positioned out of that box's reach).
OVERFLOWING_JS = """width => Array.from(document.body.querySelectorAll('*')).filter(el => {
        const r = el.getBoundingClientRect(), p = el.parentElement.getBoundingClientRect();
        const escapes = ['absolute', 'fixed'].includes(getComputedStyle(el).position);
        for (let a = el.parentElement; a && a !== document.body && !escapes; a = a.parentElement) {
            if (getComputedStyle(a).overflowX !== 'visible' && a.getBoundingClientRect().right <= width + 0.5) {
                return false;
            }
        }
        return r.width > 0 && r.right > width + 0.5 && (escapes || p.right <= width + 0.5);
    }).slice(0, 6).map(el => el.parentElement.tagName.toLowerCase() + ' > ' + el.tagName.toLowerCase()
        + (el.className ? '.' + String(el.className).split(' ').join('.') : '')
        + ' (left ' + Math.round(el.getBoundingClientRect().left) + 'px, right edge '
        + Math.round(el.getBoundingClientRect().right) + 'px)')"""


@pytest.mark.parametrize("view", [
    "queue",
    # A row whose latest message is our reply: its screen-reader words must stay inside the clipped cell.
    "queue-all",
    "conversation",
])
def test_no_sideways_scrolling_on_a_phone(live_app, customers, browser, view):  # noqa: F811
    [first, second, _] = customers.many(3)
    name, handle, _ = PEOPLE[0]
    # Rows with a latest message beside the question, as in a busy queue: a follow-up, and our reply.
    customers.write(name, f"{handle}-0", "Any news? The parcel still has not arrived and I am waiting at home all day.",
                    chat=f"chat-{handle}-0")
    customers.reply(second, "Hi James, thank you for letting us know. We are sending you a new kettle today; you "
                            "will find the track-and-trace link in your shipping confirmation. Kind regards, Ann")
    # A long question answered by us, waiting for the customer (pending), as after a shift.
    long_one = customers.write("Harry Green", "2001", "My parcel with order 10612 arrived damaged, the lamp shade is "
                                                      "dented and the base is cracked. Can you replace it?")
    customers.reply(long_one, "Hi Harry, we are sorry to hear that. A new lamp is on its way to you today.")
    customers.store.bulk_update([long_one], action="status", value="pending", actor="test")
    path = {"queue": "/", "queue-all": "/?status=all", "conversation": f"/conversations/{first}"}[view]
    page = open_page(browser, live_app, path, viewport=PHONE)
    page.wait_for_load_state("load")
    excess = page.evaluate("() => document.documentElement.scrollWidth") - PHONE["width"]
    screenshots(page, f"phone-{view}")
    where = page.evaluate(OVERFLOWING_JS, PHONE["width"]) if excess > 0 else []
    assert excess <= 0, f"{view} is {excess} px wider than a 390 px phone: " + "; ".join(where)
    assert page.errors == []


@pytest.mark.parametrize("page_name", [
    "queue",
    # A row selected with j: its grey text stays readable on the highlight (4.5:1).
    "queue-row-selected",
    "conversation",
])
def test_no_serious_or_critical_accessibility_faults(live_app, customers, browser, page_name):  # noqa: F811
    [first, second, _] = customers.many(3)
    # A row as after a reply: ours is its latest message, and it waits for the customer (pending).
    customers.reply(second, "We are sending you a new one today.")
    customers.store.bulk_update([second], action="status", value="pending", actor="test")
    path = {"queue": "/?status=all", "queue-row-selected": "/?status=all",
            "conversation": f"/conversations/{first}"}[page_name]
    page = open_page(browser, live_app, path)
    page.wait_for_load_state("load")
    if page_name == "queue-row-selected":
        selected = page.locator("table.queue tr.selected")
        for _ in range(3):
            page.keyboard.press("j")
            selected.wait_for(timeout=TIMEOUT)
            if selected.get_attribute("data-id") == str(second):
                break
        assert selected.get_attribute("data-id") == str(second)
    violations = run_axe(page)
    screenshots(page, f"axe-{page_name}")
    assert violations == [], f"{page_name}:\n{describe(violations)}"


def test_no_serious_or_critical_accessibility_faults_with_the_palette_open(live_app, customers,  # noqa: F811
                                                                            browser):
    [first, *_] = customers.many(2)
    page = open_page(browser, live_app, f"/conversations/{first}")
    page.keyboard.press("Control+k")
    page.locator("#palette ul li").first.wait_for(timeout=TIMEOUT)
    violations = run_axe(page)
    screenshots(page, "axe-palette")
    assert violations == [], describe(violations)


def test_the_palette_resolves_a_conversation_and_moves_on(live_app, customers, browser):  # noqa: F811
    from playwright.sync_api import expect

    ids = customers.many(3)
    newest, following = ids[-1], ids[-2]
    page = open_page(browser, live_app, f"/conversations/{newest}")
    palette = page.locator("#palette")
    expect(palette).to_be_hidden()

    page.keyboard.press("Control+k")
    expect(palette).to_be_visible()
    expect(page.locator("#palette input")).to_be_focused()
    entries = page.locator("#palette ul li")
    expect(entries.first).to_be_visible(timeout=TIMEOUT)
    everything = entries.count()
    screenshots(page, "palette")

    page.keyboard.type("resolved")
    expect(entries.first).to_contain_text("Set status: Resolved")
    assert entries.count() < everything, "typing did not filter the list"

    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf"/conversations/{following}(\?|$)"), timeout=TIMEOUT)
    expect(page.locator("h1")).to_be_visible()
    assert customers.store.conversation(newest)["status"] == "resolved"
    screenshots(page, "palette-moved-on")
    assert page.errors == []
