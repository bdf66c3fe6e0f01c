"""/admin/audit (issue 13): the audit log for admins, filtered, keyset-paged and exported as CSV; and the
audit lines for who viewed, exported or erased a customer's data.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

import pytest

from inbox.store.audit import AUDIT_PAGE, AuditFilter
from inbox.store.base import iso
from tests.test_web_auth import login, make_agent, web_store  # noqa: F401
from tests.test_web_customers import app_config, post, signed_in, world  # noqa: F401

T0 = dt.datetime(2026, 3, 5, 10, tzinfo=dt.UTC)


def _fill(store, n, *, start=T0, actor="agent:1", action="login", object_type="agent", object_id="1",
          step=dt.timedelta(minutes=1)):
    with store.write():
        for i in range(n):
            store.audit(iso(start + i * step), actor, action, object_type, object_id, n=i)


def _rows(page_html: str) -> list[str]:
    return re.findall(r'<tr id="audit-(\d+)"', page_html)


# The store: filters, keyset paging, index use --------------------------------------------------------

def test_pages_follow_ids_newest_first_without_gaps_or_repeats(store):
    _fill(store, 130)
    seen, before = [], None
    while True:
        page = store.audit_log.page(AuditFilter(), before=before)
        if not page:
            break
        assert len(page) <= AUDIT_PAGE
        seen += [r.id for r in page]
        before = page[-1].id
    assert seen == sorted(seen, reverse=True) and len(seen) == len(set(seen)) == 130


def test_each_filter_narrows_the_log(store):
    _fill(store, 3, actor="agent:1", action="login", object_type="agent", object_id="1")
    _fill(store, 2, actor="agent:2", action="customer_viewed", object_type="customer", object_id="9")
    _fill(store, 4, actor="system", action="customer_erased", object_type="customer", object_id="10",
          start=T0 + dt.timedelta(days=3))
    assert len(store.audit_log.page(AuditFilter(actor="agent:2"))) == 2
    assert len(store.audit_log.page(AuditFilter(action="customer_erased"))) == 4
    assert len(store.audit_log.page(AuditFilter(object_type="customer", object_id="9"))) == 2
    assert len(store.audit_log.page(AuditFilter(object_type="customer"))) == 6
    later = AuditFilter(day_from=(T0 + dt.timedelta(days=1)).date())
    assert {r.action for r in store.audit_log.page(later)} == {"customer_erased"}
    # Both ends of a date range are included: "to" the first day keeps that whole day.
    first_day = AuditFilter(day_from=T0.date(), day_to=T0.date())
    assert len(store.audit_log.page(first_day)) == 5


@pytest.mark.parametrize("criteria", [
    AuditFilter(), AuditFilter(actor="agent:3"), AuditFilter(action="customer_erased"),
    AuditFilter(object_type="customer", object_id="17"), AuditFilter(object_type="customer"),
    AuditFilter(actor="agent:3", action="login"),
], ids=["none", "actor", "action", "object", "object type", "actor+action"])
def test_a_page_is_one_index_range_not_a_table_scan_or_a_sort(store, criteria):
    if store.engine != "sqlite":
        pytest.skip("SQLite's fixed plan; PostgreSQL's planner chooses by the table's statistics")
    plan = store.audit_log.page_plan(criteria)
    assert "SEARCH audit_log" in plan and "SCAN audit_log" not in plan, plan
    assert "TEMP B-TREE" not in plan, plan


# The page --------------------------------------------------------------------------------------------

def test_only_admins_see_the_audit_log(client, world, app):  # noqa: F811
    assert client.get("/admin/audit").status_code == 302
    alice = signed_in(app.test_client(), "alice@example.org")
    assert alice.get("/admin/audit").status_code == 403
    assert alice.get("/admin/audit/export.csv").status_code == 403
    assert "/admin/audit" not in alice.get("/customers").get_data(as_text=True)
    signed_in(client, "adam@example.org")
    assert 'href="/admin/audit"' in client.get("/customers").get_data(as_text=True), "Audit log in the admin menu"


def test_the_page_shows_labels_names_and_pages_of_fifty(client, world):  # noqa: F811
    store = world["store"]
    adam = store.agent_by_email("adam@example.org")
    _fill(store, AUDIT_PAGE + 7, actor=f"agent:{adam['id']}", action="team_renamed", object_type="team",
          object_id="4")
    signed_in(client, "adam@example.org")
    page = client.get("/admin/audit", query_string={"action": "team_renamed"}).get_data(as_text=True)
    assert len(_rows(page)) == AUDIT_PAGE
    assert '<span title="team_renamed">Team renamed</span>' in page
    assert ">Adam</a>" in page and "Team #4" in page
    older = re.search(r'href="([^"]+)" rel="next"', page).group(1).replace("&amp;", "&")
    assert "action=team_renamed" in older, "the next page keeps the filters"
    rest = client.get(older).get_data(as_text=True)
    assert len(_rows(rest)) == 7 and not set(_rows(rest)) & set(_rows(page))
    assert 'rel="next"' not in rest


def test_a_malformed_date_is_a_bad_request(client, world):  # noqa: F811
    signed_in(client, "adam@example.org")
    assert client.get("/admin/audit?from=yesterday").status_code == 400
    assert client.get("/admin/audit?from=2026-03-05&to=2026-03-06").status_code == 200


# Who saw, exported or erased a customer's data ---------------------------------------------------------

def _customer_lines(store, customer_id, action):
    return store.audit_log.page(AuditFilter(action=action, object_type="customer", object_id=str(customer_id)))


def test_viewing_a_customer_is_written_once_per_agent_customer_and_hour(client, world, app, frozen_clock):  # noqa: F811
    store, jan = world["store"], world["jan_mail"]
    signed_in(client, "alice@example.org")
    for _ in range(3):
        assert client.get(f"/customers/{jan}").status_code == 200
    assert len(_customer_lines(store, jan, "customer_viewed")) == 1
    frozen_clock.advance(dt.timedelta(minutes=59))
    client.get(f"/customers/{jan}")
    assert len(_customer_lines(store, jan, "customer_viewed")) == 1
    frozen_clock.advance(dt.timedelta(minutes=2))
    client.get(f"/customers/{jan}")
    assert len(_customer_lines(store, jan, "customer_viewed")) == 2
    adam = signed_in(app.test_client(), "adam@example.org")
    adam.get(f"/customers/{jan}")
    lines = _customer_lines(store, jan, "customer_viewed")
    assert len(lines) == 3 and lines[0].actor == f"agent:{store.agent_by_email('adam@example.org')['id']}"
    # A customer Alice may not see is a 404 and writes nothing.
    assert client.get(f"/customers/{world['bea']}").status_code == 404
    assert _customer_lines(store, world["bea"], "customer_viewed") == []


def test_export_and_erase_of_a_customer_show_in_the_audit_log(client, world):  # noqa: F811
    pool = world["pool"]
    signed_in(client, "adam@example.org")
    assert client.get(f"/customers/{pool}").status_code == 200
    assert post(client, f"/customers/{pool}/export").status_code == 200
    assert post(client, f"/customers/{pool}/erase", {"confirm": str(pool)}).status_code == 302
    page = client.get("/admin/audit", query_string={"object_type": "customer", "object_id": str(pool)})
    text = page.get_data(as_text=True)
    for label, raw in (("Customer record viewed", "customer_viewed"), ("Customer data exported", "customer_exported"),
                       ("Customer data erased", "customer_erased")):
        assert f'<span title="{raw}">{label}</span>' in text


# CSV export ---------------------------------------------------------------------------------------------

def test_the_export_streams_every_filtered_row_with_formulas_neutralised(client, world):  # noqa: F811
    store = world["store"]
    _fill(store, 120, actor="agent:99", action="=HYPERLINK(\"http://evil\")", object_type="+cmd", object_id="@1")
    _fill(store, 5, actor="agent:98", action="login")
    signed_in(client, "adam@example.org")
    response = client.get("/admin/audit/export.csv", query_string={"actor": "agent:99"})
    assert response.status_code == 200 and response.mimetype == "text/csv" and response.is_streamed
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert len(rows) == 120, "every matching row, not one page"
    assert {r["actor"] for r in rows} == {"agent:99"}
    assert rows[0]["action"] == "'=HYPERLINK(\"http://evil\")"
    assert rows[0]["object_type"] == "'+cmd" and rows[0]["object_id"] == "'@1"
    assert [int(r["id"]) for r in rows] == sorted((int(r["id"]) for r in rows), reverse=True)
    exported = store.audit_log.page(AuditFilter(action="audit_exported"))
    assert len(exported) == 1 and '"filters": {"actor": "agent:99"}' in exported[0].details, "the export is audited"


def test_a_head_request_for_a_customer_page_writes_no_view(client, world):  # noqa: F811
    store, jan = world["store"], world["jan_mail"]
    signed_in(client, "alice@example.org")
    assert client.head(f"/customers/{jan}").status_code == 200
    assert _customer_lines(store, jan, "customer_viewed") == []
