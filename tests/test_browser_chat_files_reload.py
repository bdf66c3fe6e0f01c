"""A visitor's file outlives a reload of the page (#18), in Chromium.

The widget keeps a waiting file's bytes in IndexedDB and its name in localStorage's queue: a file
attached while uploads fail is sent after the page reloads and the network is back, with the same
client id, and arrives once. Without IndexedDB (an init script makes `indexedDB.open` throw, as some
private modes do) the widget still loads and sends messages; the file that could not be kept is
named in one line asking the visitor to attach it again. Every wait is for an element, a request or
the browser's storage, never a sleep.

With MAINLAND_SHOTS=<dir> the test saves the widget with that line at 1440x900 and 390x844.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.test_browser_chat import PDF, app_config, host_site  # noqa: F401 - fixtures
from tests.test_browser_smoke import CHROMIUM, _require_chromium, live_app  # noqa: F401 - fixture
from tests.test_web_auth import login, make_agent

pytestmark = pytest.mark.browser

TIMEOUT = 15_000
SHOTS = os.environ.get("MAINLAND_SHOTS")
NO_INDEXEDDB = "IDBFactory.prototype.open = function () { throw new DOMException('blocked', 'SecurityError'); };"
#: Waits until `count` files wait in the widget's IndexedDB database (its name is in docs/chat.md, 5.),
#: looking again every 50 ms like Playwright's wait_for_function (which does not await a promise).
#: A database not there yet counts as none kept, and is not made by looking.
KEPT_FILES = """async ([origin, count, timeout]) => {
    const kept = async () => {
        const db = await new Promise((ok) => {
            const open = indexedDB.open(`mainland-chat:${origin}:site:files`);
            open.onupgradeneeded = () => open.transaction.abort();
            open.onsuccess = () => ok(open.result);
            open.onerror = () => ok(null);
        });
        if (!db) return 0;
        const keys = db.transaction("f").objectStore("f").count();
        const found = await new Promise((ok) => { keys.onsuccess = () => ok(keys.result); });
        db.close();
        return found;
    };
    const end = Date.now() + timeout;
    while ((await kept()) !== count) {
        if (Date.now() > end) return false;
        await new Promise((ok) => setTimeout(ok, 50));
    }
    return true;
}"""


class Uploads:
    """Routes the widget's uploads: refused at the network while `down`, else through to Mainland.
    Notes each upload's client id."""

    def __init__(self) -> None:
        self.down = True
        self.client_ids: list[str] = []

    def __call__(self, route) -> None:
        if route.request.method != "POST":
            route.continue_()  # the CORS preflight
            return
        self.client_ids.append(route.request.headers["x-mainland-client-id"])
        if self.down:
            route.abort("internetdisconnected")
        else:
            route.continue_()


def upload_failed(request) -> bool:
    return "/files" in request.url


def open_chat(browser, site, init_script: str | None = None, chat_button: str = "Chat with us"):
    """A visitor at the shop with the chat open, uploads down. Returns the browser context, the page, the
    list of the page's errors (`watch_errors`) and the `Uploads` route."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    if init_script:
        context.add_init_script(init_script)
    page = context.new_page()
    errors = watch_errors(page)
    uploads = Uploads()
    page.route("**/chat/*/files", uploads)
    page.goto(site.origin + "/")
    page.get_by_role("button", name=chat_button).click()
    return context, page, errors, uploads


def watch_errors(page) -> list[str]:
    """The page's uncaught errors and console errors, except the browser's own line for a refused request."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text)
            if msg.type == "error" and not msg.text.startswith("Failed to load resource") else None)
    # Playwright intercepts file pickers once a listener is there (see test_browser_chat.py).
    page.on("filechooser", lambda chooser: None)
    return errors


def attach(page, name: str, data: bytes, mime: str, button: str = "Attach a file") -> None:
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name=button).click()
    chooser.value.set_files(files=[{"name": name, "mimeType": mime, "buffer": data}])


def shot(page, name: str) -> None:
    if not SHOTS:
        return
    Path(SHOTS).mkdir(parents=True, exist_ok=True)
    for width, height in ((1440, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(Path(SHOTS) / f"{name}-{width}x{height}.png"))


def stored_files(store) -> list[tuple[str, dict]]:
    """(message text, attachment) for every file visitors sent."""
    return [(m["text"], a) for c in store.recent_conversations() for m in store.conversation_messages(c["id"])
            for a in m["attachments"] if m["direction"] == "in"]


def test_a_file_attached_while_uploads_fail_is_sent_once_after_a_reload(app, live_app, host_site):  # noqa: F811
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    host_site.app_url = live_app
    store = app.extensions["mainland"].open_store()
    make_agent(store)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            context, page, errors, uploads = open_chat(browser, host_site)
            page.get_by_label("Your message").fill("Here is my invoice")
            page.keyboard.press("Enter")
            log = page.get_by_role("log")
            expect(log).to_contain_text("Delivered", timeout=TIMEOUT)

            with page.expect_event("requestfailed", upload_failed):
                attach(page, "invoice 7.pdf", PDF, "application/pdf")
            expect(log).to_contain_text("invoice 7.pdf", timeout=TIMEOUT)
            assert page.evaluate(KEPT_FILES, [live_app, 1, TIMEOUT]), "the file's bytes were not kept"
            assert stored_files(store) == []

            # Reloaded while uploads still fail: the file is back in the chat, and tried again.
            with page.expect_event("requestfailed", upload_failed, timeout=TIMEOUT):
                page.reload()
            expect(log).to_contain_text("invoice 7.pdf", timeout=TIMEOUT)
            assert len(uploads.client_ids) >= 2 and stored_files(store) == []

            # The network is back (a drop and a return make the widget send at once): it arrives.
            uploads.down = False
            context.set_offline(True)
            context.set_offline(False)
            expect(log.get_by_role("button", name="Download invoice 7.pdf")).to_be_enabled(timeout=TIMEOUT)
            assert page.evaluate(KEPT_FILES, [live_app, 0, TIMEOUT]), "the sent file's bytes were kept"
            assert len(set(uploads.client_ids)) == 1, "the file went up under another client id after the reload"

            # Another reload sends nothing again; the agent finds one message with the file.
            page.reload()
            expect(log.get_by_role("button", name="Download invoice 7.pdf")).to_have_count(1, timeout=TIMEOUT)
            [(text, attachment)] = stored_files(store)
            assert (text, attachment["filename"]) == ("", "invoice 7.pdf")
            agent = app.test_client()
            login(agent)
            assert agent.get(f"/attachments/{attachment['id']}").data == PDF
            assert len(set(uploads.client_ids)) == 1
            assert errors == []
        finally:
            browser.close()
            store.close()


def test_without_indexeddb_the_widget_still_sends_and_asks_for_a_lost_file_again(  # noqa: F811
        app, live_app, host_site):  # noqa: F811
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    host_site.app_url = live_app
    store = app.extensions["mainland"].open_store()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            _, page, errors, uploads = open_chat(browser, host_site, init_script=NO_INDEXEDDB)
            log = page.get_by_role("log")
            with page.expect_event("requestfailed", upload_failed):
                attach(page, "receipt.pdf", PDF, "application/pdf")
            expect(log).to_contain_text("receipt.pdf", timeout=TIMEOUT)
            # A message written now waits behind the file, which is tried first and fails again.
            page.get_by_label("Your message").fill("Do you have my receipt?")
            with page.expect_event("requestfailed", upload_failed):
                page.keyboard.press("Enter")
            expect(log).to_contain_text("Sending", timeout=TIMEOUT)
            assert store.recent_conversations() == []

            # Reloaded: the file's bytes were in that page only. The widget says so in one line and
            # the message behind it is sent, and so is one written now.
            page.reload()
            lost = page.get_by_role("alert")
            expect(lost).to_have_text("receipt.pdf could not be sent. Please attach it again.", timeout=TIMEOUT)
            expect(log).to_contain_text("Do you have my receipt?", timeout=TIMEOUT)
            expect(log).not_to_contain_text("Sending", timeout=TIMEOUT)
            expect(log).not_to_contain_text("receipt.pdf")
            page.get_by_label("Your message").fill("It was for order 1021.")
            page.keyboard.press("Enter")
            expect(log).to_contain_text("It was for order 1021.")
            expect(log).not_to_contain_text("Sending", timeout=TIMEOUT)
            expect(lost).to_have_text("receipt.pdf could not be sent. Please attach it again.")
            shot(page, "files-lost")
            [conversation] = store.recent_conversations()
            assert [m["text"] for m in store.conversation_messages(conversation["id"])] == [
                "Do you have my receipt?", "It was for order 1021."]
            assert stored_files(store) == []

            # Attaching the file again (uploads work now) takes the line away and sends it.
            uploads.down = False
            attach(page, "receipt.pdf", PDF, "application/pdf")
            expect(log.get_by_role("button", name="Download receipt.pdf")).to_be_enabled(timeout=TIMEOUT)
            expect(page.get_by_text("could not be sent")).to_have_count(0)
            assert [a["filename"] for _, a in stored_files(store)] == ["receipt.pdf"]
            assert errors == []
        finally:
            browser.close()
            store.close()


def test_on_a_dutch_page_the_lost_file_line_is_dutch(app, live_app, host_site):  # noqa: F811
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    host_site.app_url = live_app
    host_site.lang = "nl"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            _, page, errors, _ = open_chat(browser, host_site, init_script=NO_INDEXEDDB, chat_button="Chat met ons")
            with page.expect_event("requestfailed", upload_failed):
                attach(page, "bon.pdf", PDF, "application/pdf", button="Een bestand toevoegen")
            expect(page.get_by_role("log")).to_contain_text("bon.pdf", timeout=TIMEOUT)
            page.reload()
            expect(page.get_by_role("alert")).to_have_text(
                "bon.pdf kon niet worden verstuurd. Wilt u het opnieuw toevoegen?", timeout=TIMEOUT)
            shot(page, "files-lost-nl")
            assert errors == []
        finally:
            browser.close()


def test_a_new_conversation_forgets_the_bytes_of_a_file_still_waiting(app, live_app, host_site):  # noqa: F811
    """The browser's storage for the site is cleared but IndexedDB is not (as some privacy tools do): the
    widget makes a new visitor token, so a new conversation, and keeps no earlier file's bytes."""
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    host_site.app_url = live_app
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            _, page, errors, uploads = open_chat(browser, host_site)
            with page.expect_event("requestfailed", upload_failed):
                attach(page, "passport.pdf", PDF, "application/pdf")
            assert page.evaluate(KEPT_FILES, [live_app, 1, TIMEOUT]), "the file's bytes were not kept"

            page.evaluate("localStorage.clear()")
            page.reload()
            expect(page.get_by_role("button", name="Chat with us")).to_be_visible(timeout=TIMEOUT)
            assert page.evaluate(KEPT_FILES, [live_app, 0, TIMEOUT]), "an earlier conversation's file was kept"
            assert len(uploads.client_ids) == 1 and errors == []
        finally:
            browser.close()
