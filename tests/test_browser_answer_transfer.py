"""The answer library's export and import in Chromium (#13): a lead exports the library as YAML, edits one
answer's text in the downloaded file, uploads it, sees the preview (one changed answer, the lines removed
and added) and confirms. The pages pass axe and fit the screen at 1440x900 and 390x844.

Set MAINLAND_SCREENSHOTS=<folder> to keep a screenshot of each page and size.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from inbox.store.base import iso
from tests.axe import describe, run_axe
from tests.test_browser_smoke import CHROMIUM, _require_chromium, live_app  # noqa: F401 - fixture
from tests.test_web_auth import PASSWORD, make_agent

pytestmark = pytest.mark.browser

SIZES = {"wide": (1440, 900), "phone": (390, 844)}


def _library(app, now) -> dict[str, int]:
    store = app.extensions["mainland"].open_store()
    lead = make_agent(store, "lea@example.org", name="Lea Lead", role="lead")
    ids = {}
    for title, body, language, tags in (
            ("Where is my order?", "Hi {{customer_first_name}},\n\nyour order is on its way.\n\n{{agent_name}}", "en",
             ["order", "shipping"]),
            ("Waar is mijn bestelling?", "Hoi {{customer_first_name}}, je bestelling is onderweg.", "nl",
             ["bestelling"]),
            ("Opening hours", "Our shops are open Monday to Saturday from 9:00 to 18:00.", "en", ["hours"])):
        ids[title] = store.answers.create(title=title, body=body, language=language, tags=tags, owner_id=lead["id"],
                                          now=iso(now))
    store.close()
    return ids


def _look(page, name: str, size: str) -> None:
    """No serious axe violation, nothing wider than the screen; a screenshot when asked for."""
    width = SIZES[size][0]
    found = run_axe(page)
    assert found == [], f"{name}: {describe(found)}"
    assert page.evaluate("document.documentElement.scrollWidth") <= width, f"{name} is wider than the screen"
    shots = os.environ.get("MAINLAND_SCREENSHOTS")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=f"{shots}/answers-{name}-{size}.png", full_page=True)


def test_a_lead_exports_edits_and_imports_the_library(app, live_app, frozen_clock, tmp_path):  # noqa: F811
    _require_chromium()
    from playwright.sync_api import sync_playwright

    ids = _library(app, frozen_clock.now())
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            context = browser.new_context(viewport={"width": 1440, "height": 900}, accept_downloads=True)
            page = context.new_page()
            page.goto(f"{live_app}/login")
            page.fill("#email", "lea@example.org")
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{live_app}/")

            page.goto(f"{live_app}/answers")
            _look(page, "index", "wide")
            with page.expect_download() as download_info:
                page.get_by_role("button", name="Export").click()
            download = download_info.value
            assert download.suggested_filename == "answers-2026-11-23.yaml"
            exported = tmp_path / download.suggested_filename
            download.save_as(exported)

            data = yaml.safe_load(exported.read_text(encoding="utf-8"))
            [order] = [e for e in data["answers"] if e["title"] == "Where is my order?"]
            order["body"] = order["body"].replace("your order is on its way.", "your order left our warehouse today.")
            edited = tmp_path / "edited.yaml"
            edited.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")

            page.get_by_role("link", name="Import", exact=True).click()
            page.wait_for_url(f"{live_app}/answers/import")
            _look(page, "import", "wide")
            page.set_input_files("#import-file", str(edited))
            page.get_by_role("button", name="Show what changes").click()
            page.wait_for_selector("table.import-preview")
            assert page.locator("[data-count=changed]").inner_text() == "1"
            assert page.locator("[data-count=unchanged]").inner_text() == "2"
            row = page.locator("tr.import-changed")
            assert row.locator(".diff-removed").inner_text().endswith("your order is on its way.")
            assert row.locator(".diff-added").inner_text().endswith("your order left our warehouse today.")
            _look(page, "preview", "wide")
            page.set_viewport_size({"width": 390, "height": 844})
            _look(page, "preview", "phone")

            page.get_by_role("button", name="Import 1 answer").click()
            page.wait_for_url(f"{live_app}/answers")
            assert "Imported: 0 new and 1 changed answers." in page.locator(".flash").inner_text()
            _look(page, "index", "phone")
            page.goto(f"{live_app}/answers/import")
            _look(page, "import", "phone")
        finally:
            browser.close()

    store = app.extensions["mainland"].open_store()
    try:
        answers = {a.id: a for a in store.answers.all()}
        assert answers[ids["Where is my order?"]].version == 2
        assert "left our warehouse today" in answers[ids["Where is my order?"]].body
        assert [answers[ids[t]].version for t in ("Waar is mijn bestelling?", "Opening hours")] == [1, 1]
    finally:
        store.close()
