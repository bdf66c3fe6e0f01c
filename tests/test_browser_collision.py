"""Two agents in two Chromium contexts on one conversation: presence, typing, and the stale-reply hold.

Ann and Bob open the same conversation. Each page shows the other ("… is viewing"), and Ann's
typing shows on Bob's page. Bob adds a note while Ann writes her reply: Ann's page does not move
under her hands (it only counts the new message), her send is held with the note shown and her
draft kept, and nothing is queued; sending again after seeing it works. Bob's note mentions Ann:
her notification badge counts it without a reload.
"""

from __future__ import annotations

import pytest

from inbox.mail import parse_email
from inbox.models import FetchResult
from tests.mailfactory import raw_mail
from tests.test_browser_conversation import app_config, sign_in  # noqa: F401  (app_config: fixture)
from tests.test_browser_smoke import CHROMIUM, _require_chromium, live_app  # noqa: F401  (live_app: fixture)
from tests.test_web_auth import make_agent

pytestmark = pytest.mark.browser


def outbox_count(store) -> int:
    return store.execute("SELECT count(*) FROM outbox").fetchone()[0]


def test_two_agents_see_each_other_and_a_stale_reply_is_held(app, live_app):  # noqa: F811
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    app.config.update(LIVE_POLL_SECONDS=0.2)
    mainland = app.extensions["mainland"]
    store = mainland.open_store()
    make_agent(store)
    make_agent(store, email="bob@example.org", name="Bob Builder")
    item = parse_email(raw_mail(subject="Refund please", body="I want my money back."), channel="mail")
    [conversation_id] = mainland.ingestor(store).ingest("mail", FetchResult(items=[item], cursor="c1")).new_conversations
    target = f"/conversations/{conversation_id}"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
            try:
                ann = browser.new_context().new_page()
                bob = browser.new_context().new_page()
                errors: list[str] = []
                for page in (ann, bob):
                    page.on("pageerror", lambda exc: errors.append(str(exc)))
                sign_in(ann, live_app, "ann@example.org", target)
                sign_in(bob, live_app, "bob@example.org", target)

                # Presence, both ways.
                expect(bob.locator("#presence")).to_have_text("Ann Agent is viewing", timeout=10_000)
                expect(ann.locator("#presence")).to_have_text("Bob Builder is viewing", timeout=10_000)

                # Ann starts typing: Bob sees it.
                ann.click("#reply-text")
                ann.keyboard.type("Your refund is on its way")
                expect(bob.locator("#presence")).to_have_text("Ann Agent is typing…", timeout=10_000)

                # Bob adds a note meanwhile.
                bob.click("#tab-note")
                expect(ann.locator("#notification-count")).to_be_hidden()
                bob.fill("#note-text", "Wait @ann: finance already refunded this yesterday")
                bob.click("#add-note")
                expect(bob.locator(".message.direction-note")).to_contain_text("finance already refunded")

                # Ann's page only counts it while she writes; her notification badge shows the mention.
                expect(ann.locator("#new-messages")).to_be_visible(timeout=10_000)
                expect(ann.locator("#notification-count")).to_have_text("1", timeout=10_000)
                expect(ann.locator(".message.direction-note")).to_have_count(0)

                # Ann sends: held, the note shown, the draft kept, nothing queued.
                ann.click("#send-reply")
                expect(ann.locator("#composer-error")).to_contain_text("New messages arrived while you were writing")
                expect(ann.locator(".message.direction-note")).to_contain_text("finance already refunded")
                expect(ann.locator("#reply-text")).to_have_value("Your refund is on its way")
                expect(ann.locator("#new-messages")).to_be_hidden()
                assert outbox_count(store) == 0

                # Having seen it, she may still send (here: a corrected reply).
                ann.fill("#reply-text", "Your refund was sent yesterday")
                ann.click("#send-reply-open")  # and keep it open: she stays on the conversation
                expect(ann.locator(".message.direction-out")).to_contain_text("Your refund was sent yesterday")
                expect(ann.locator("#composer-error")).to_be_hidden()
                expect(ann.locator("#reply-text")).to_have_value("")
                assert outbox_count(store) == 1
                # Bob's page gets Ann's reply live (he is not writing).
                expect(bob.locator(".message.direction-out")).to_contain_text("Your refund was sent yesterday",
                                                                              timeout=10_000)
                assert errors == []
            finally:
                browser.close()
    finally:
        store.close()
