"""/admin/quarantine (issue 13): list, show (bytes as escaped text only), download, reprocess through the
command line's code path, and delete, for admins, each audited and each change behind the CSRF token.
"""

from __future__ import annotations

import re

import pytest

from inbox.store.audit import AuditFilter
from inbox.store.quarantine import QUARANTINE_PAGE
from tests.test_access import mail_with_attachment
from tests.test_web_auth import csrf_token, login, make_agent, web_store  # noqa: F401

NO_SENDER = b"To: support@mainland.test\r\nSubject: who am I\r\n\r\nNo sender. <script>alert('x')</script>\r\n"
GOOD = mail_with_attachment(sender="Pia Parser <pia@example.com>", subject="Held by a parser bug",
                            body="Please take me in.", message_id="<held-1@example.com>")


@pytest.fixture
def app_config(app_config):
    app_config["channels"] = {
        "mail": {"kind": "imap", "host": "127.0.0.1", "port": 1143, "security": "none", "poll_every": "10m",
                 "username": "support@mainland.test", "password": "not-a-real-password",
                 "address": "support@mainland.test"}}
    return app_config


@pytest.fixture
def held(web_store):  # noqa: F811
    """Two items from `mainland import` (no configured channel: parsed as email): one fixable, one not."""
    with web_store.write():
        good = web_store.quarantine_put("import", GOOD, "IndexError: parser bug", source_ref="a.eml",
                                        exception="IndexError", now="2026-03-05T10:00:00.000000Z")
        bad = web_store.quarantine_put("import", NO_SENDER, "no sender", source_ref="b.eml", exception="ItemError",
                                       now="2026-03-05T11:00:00.000000Z")
    return {"good": good, "bad": bad}


@pytest.fixture
def admin_client(app, web_store):  # noqa: F811
    make_agent(web_store, "ada@example.org", name="Ada Admin", role="admin")
    client = app.test_client()
    assert login(client, "ada@example.org").status_code == 302
    return client


def _post(client, path, quarantine_id):
    token = csrf_token(client, f"/admin/quarantine/{quarantine_id}")
    return client.post(path, data={"csrf_token": token})


def _audited(store, action):
    return store.audit_log.page(AuditFilter(action=action))


def test_only_admins_reach_the_quarantine(app, web_store, held, client):  # noqa: F811
    assert client.get("/admin/quarantine").status_code == 302
    make_agent(web_store, "lee@example.org", role="lead")
    login(client, "lee@example.org")
    for path in ("/admin/quarantine", f"/admin/quarantine/{held['bad']}", f"/admin/quarantine/{held['bad']}/raw"):
        assert client.get(path).status_code == 403, path
    assert client.post(f"/admin/quarantine/{held['bad']}/delete").status_code in (400, 403)
    assert web_store.quarantine_item(held["bad"])


def test_the_list_shows_channel_reason_time_and_size_newest_first(admin_client, held):
    page = admin_client.get("/admin/quarantine").get_data(as_text=True)
    ids = re.findall(r'<tr id="quarantine-(\d+)"', page)
    assert ids == [str(held["bad"]), str(held["good"])]
    assert "no sender" in page and "IndexError: parser bug" in page and "import" in page
    assert f">{len(NO_SENDER)} B<" in page and ">1.0 kB<" not in page
    assert 'href="/admin/quarantine"' in admin_client.get("/admin/agents").get_data(as_text=True), "admin menu"


def test_the_list_filters_by_channel_and_pages_by_id(admin_client, web_store, held):  # noqa: F811
    with web_store.write():
        for i in range(QUARANTINE_PAGE + 3):
            web_store.quarantine_put("mail", f"junk {i}".encode(), "unreadable", source_ref=None, exception=None,
                                     now="2026-03-06T10:00:00.000000Z")
    page = admin_client.get("/admin/quarantine?channel=import").get_data(as_text=True)
    assert len(re.findall(r'<tr id="quarantine-', page)) == 2
    first = admin_client.get("/admin/quarantine?channel=mail").get_data(as_text=True)
    assert len(re.findall(r'<tr id="quarantine-', first)) == QUARANTINE_PAGE
    older = re.search(r'href="([^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    rest = admin_client.get(older).get_data(as_text=True)
    assert len(re.findall(r'<tr id="quarantine-', rest)) == 3 and "channel=mail" in older


def test_an_item_shows_its_bytes_as_escaped_text_and_downloads_them_exactly(admin_client, web_store, held):  # noqa: F811
    page = admin_client.get(f"/admin/quarantine/{held['bad']}").get_data(as_text=True)
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    assert "no sender" in page
    raw = admin_client.get(f"/admin/quarantine/{held['bad']}/raw")
    assert raw.data == NO_SENDER and raw.mimetype == "application/octet-stream"
    assert raw.headers["Content-Disposition"].startswith("attachment")
    assert raw.headers["X-Content-Type-Options"] == "nosniff"
    admin_client.get(f"/admin/quarantine/{held['bad']}")
    assert len(_audited(web_store, "quarantine_viewed")) == 1, "one line an hour per admin and item"
    assert len(_audited(web_store, "quarantine_downloaded")) == 1


def test_reprocess_takes_a_fixed_item_in_and_keeps_a_failing_one(admin_client, web_store, held):  # noqa: F811
    assert admin_client.post(f"/admin/quarantine/{held['good']}/reprocess").status_code == 400, "CSRF"
    assert web_store.quarantine_item(held["good"])["status"] == "held"
    response = _post(admin_client, f"/admin/quarantine/{held['good']}/reprocess", held["good"])
    assert response.status_code == 302
    item = web_store.quarantine_item(held["good"])
    assert item["status"] == "released" and item["message_id"]
    assert web_store.message(item["message_id"])["subject"] == "Held by a parser bug"
    assert "is taken in" in admin_client.get(response.headers["Location"]).get_data(as_text=True)

    response = _post(admin_client, f"/admin/quarantine/{held['bad']}/reprocess", held["bad"])
    page = admin_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "still cannot be taken in" in page
    assert web_store.quarantine_item(held["bad"])["status"] == "held"
    outcomes = [r.details for r in _audited(web_store, "quarantine_reprocessed")]
    assert '"outcome": "still failing"' in outcomes[0] and '"outcome": "stored"' in outcomes[1]


def test_delete_removes_the_item_and_its_bytes(admin_client, web_store, held):  # noqa: F811
    assert admin_client.post(f"/admin/quarantine/{held['bad']}/delete").status_code == 400, "CSRF"
    response = _post(admin_client, f"/admin/quarantine/{held['bad']}/delete", held["bad"])
    assert response.status_code == 302
    assert admin_client.get(f"/admin/quarantine/{held['bad']}").status_code == 404
    assert web_store.execute("SELECT count(*) FROM quarantine WHERE id = ?", (held["bad"],)).fetchone()[0] == 0
    [line] = _audited(web_store, "quarantine_deleted")
    assert line.object_id == str(held["bad"]) and "no sender" in line.details


def test_the_health_page_links_its_quarantine_count(admin_client, app, web_store):  # noqa: F811
    with web_store.write():
        web_store.quarantine_put("mail", b"junk", "unreadable", source_ref=None, exception=None,
                                 now="2026-03-06T10:00:00.000000Z")
    page = admin_client.get("/admin/connectors").get_data(as_text=True)
    assert 'href="/admin/quarantine?channel=mail"' in page
