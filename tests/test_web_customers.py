"""Customer pages, the review queue, admin import, export/erase and the CRM API, through the Flask app.

Access (IN-65): an agent sees a customer only through a conversation they may see; another team's
customers are 404 by id and absent from search, counts and the suggestion queue.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import zipfile

import pytest

from inbox import config as config_module
from inbox.models import Author, InboundItem
from tests.test_web_auth import PASSWORD, csrf_token, login, make_agent, web_store  # noqa: F401

TOKEN = "crm-token-0123456789abcdef"
DAY = dt.datetime(2026, 3, 5, 10, tzinfo=dt.UTC)
_ids = iter(range(1, 1_000_000))


@pytest.fixture
def app_config(app_config, monkeypatch):
    monkeypatch.setenv("MAINLAND_TEST_CRM_TOKEN", TOKEN)
    app_config.update(api_tokens=[{"$env": "MAINLAND_TEST_CRM_TOKEN"}], default_phone_region="NL")
    return app_config


@pytest.fixture
def world(app, web_store):  # noqa: F811
    """Two teams; Alice (agent, team A), Adam (admin); customers on team A, team B and unrouted."""
    store = web_store
    ingestor = app.extensions["mainland"].ingestor(store)
    team_a, team_b = store.create_team("A"), store.create_team("B")
    alice = make_agent(store, "alice@example.org", name="Alice")
    store.add_team_member(team_a, alice["id"])
    make_agent(store, "adam@example.org", name="Adam", role="admin")

    def write(channel, kind, handle, name, text="Hello", team=None, when=DAY):
        report = ingestor.ingest_one(channel, InboundItem(
            channel=channel, external_id=f"{channel}-{next(_ids)}", sent_at=when, text=text,
            author=Author(handle=handle, name=name, identity_kind=kind)))
        message = report.message_ids[0]
        conversation, customer = store.execute("SELECT conversation_id, customer_id FROM messages WHERE id = ?",
                                               (message,)).fetchone()
        if team is not None:
            store.set_conversation_team(conversation, team)
        return customer

    jan_mail = write("mail", "email", "jan@example.com", "Jan de Vries", "My parcel never arrived", team=team_a)
    jan_wa = write("whatsapp", "phone", "+31612345678", "Jan de Vries", "Any news? mail: jan@example.com",
                   team=team_a)
    bea = write("mail", "email", "bea@secret.example", "Bea Bunsen", "Team B business", team=team_b)
    bea_tg = write("telegram", "telegram", "777", "Bea Bunsen", "also me: bea@secret.example", team=team_b)
    pool = write("form", "email", "pool@example.com", "Paul Pool", "Unrouted question")
    return {"store": store, "jan_mail": jan_mail, "jan_wa": jan_wa, "bea": bea, "bea_tg": bea_tg, "pool": pool,
            "write": write, "team_b": team_b}


def signed_in(client, email):
    assert login(client, email=email).status_code == 302
    return client


def post(client, path, data=None, page="/customers"):
    data = dict(data or {})
    data["csrf_token"] = csrf_token(client, page)
    return client.post(path, data=data)


# Pages and access ------------------------------------------------------------------------------------

def test_a_customer_page_shows_every_channel_in_one_timeline(client, world):
    signed_in(client, "alice@example.org")
    store = world["store"]
    suggestion = store.suggestion_for_pair(world["jan_mail"], world["jan_wa"])
    assert post(client, f"/customers/suggestions/{suggestion['id']}/confirm").status_code == 302
    page = client.get(f"/customers/{world['jan_mail']}").get_data(as_text=True)
    assert "jan@example.com" in page and "+31612345678" in page
    assert "My parcel never arrived" in page and "Any news?" in page
    assert page.count('class="badge badge-channel"') >= 4  # both channels, in the list and the timeline
    # The merged record's old address leads to the surviving customer.
    assert client.get(f"/customers/{world['jan_wa']}").status_code == 302


def test_a_heavy_customers_page_shows_the_latest_part_of_the_timeline_first(client, world):
    signed_in(client, "alice@example.org")
    write = world["write"]
    for n in range(60):
        customer = write("whatsapp", "phone", "+31600000001", "Hanna Heavy", f"Question number {n:02d}",
                         when=DAY + dt.timedelta(minutes=n))

    def timeline(url: str) -> str:
        return client.get(url).get_data(as_text=True).split('id="h-timeline"')[1].split("</section>")[0]

    page = timeline(f"/customers/{customer}")
    assert "Question number 59" in page and "Question number 10" in page and "Question number 09" not in page
    assert "Show older messages" in page
    everything = timeline(f"/customers/{customer}?timeline=100")
    assert "Question number 00" in everything and "Show older messages" not in everything


def test_another_teams_customer_is_invisible_by_id_search_count_and_queue(client, world):
    signed_in(client, "alice@example.org")
    bea = world["bea"]
    assert client.get(f"/customers/{bea}").status_code == 404
    assert client.get("/customers/999999").status_code == 404
    for q in ("bea@secret.example", "Bunsen", "777", "bea"):
        page = client.get("/customers", query_string={"q": q}).get_data(as_text=True)
        assert f'/customers/{bea}"' not in page and f'/customers/{world["bea_tg"]}"' not in page, q
        assert "No customer matches" in page, q
    queue = client.get("/customers/suggestions").get_data(as_text=True)
    assert "Bunsen" not in queue and "Jan de Vries" in queue
    assert re.search(r"Suggested merges <span class=\"muted\">\(1\)</span>", queue)
    hidden = world["store"].suggestion_for_pair(bea, world["bea_tg"])
    assert post(client, f"/customers/suggestions/{hidden['id']}/confirm").status_code == 404
    assert post(client, f"/customers/suggestions/{hidden['id']}/reject").status_code == 404
    assert post(client, f"/customers/{bea}/notes", {"text": "peek"}).status_code == 404
    assert post(client, f"/customers/{world['jan_mail']}/merge", {"other": str(bea)}).status_code == 404
    assert world["store"].suggestion(hidden["id"])["status"] == "open"
    assert world["store"].customer_notes(bea) == []


def test_admins_see_every_customer_and_unrouted_ones_are_everyones(client, world, app):
    alice = app.test_client()
    signed_in(alice, "alice@example.org")
    assert alice.get(f"/customers/{world['pool']}").status_code == 200
    signed_in(client, "adam@example.org")
    assert client.get(f"/customers/{world['bea']}").status_code == 200
    assert "Bunsen" in client.get("/customers", query_string={"q": "bunsen"}).get_data(as_text=True)
    assert "Bunsen" in client.get("/customers/suggestions").get_data(as_text=True)


@pytest.mark.parametrize("query", ["06-12345678", "+31 6 1234 5678", "JAN@EXAMPLE.COM", "jan@exa", "vries"])
def test_customers_are_found_by_any_identity(client, world, query):
    signed_in(client, "alice@example.org")
    page = client.get("/customers", query_string={"q": query}).get_data(as_text=True)
    assert f"/customers/{world['jan_wa'] if '6' in query else world['jan_mail']}\"" in page


def test_search_with_hostile_input_is_just_text(client, world):
    signed_in(client, "alice@example.org")
    for q in ['"', "%", "_", "' OR 1=1--", "\\", "x" * 5000, "<script>alert(1)</script>"]:
        response = client.get("/customers", query_string={"q": q})
        assert response.status_code == 200
        assert "<script>alert(1)</script>" not in response.get_data(as_text=True)


# The review queue -----------------------------------------------------------------------------------

def test_reject_is_remembered_and_confirm_then_undo_restores_both(client, world):
    signed_in(client, "alice@example.org")
    store = world["store"]
    suggestion = store.suggestion_for_pair(world["jan_mail"], world["jan_wa"])
    assert post(client, f"/customers/suggestions/{suggestion['id']}/reject").status_code == 302
    assert "Jan de Vries" not in client.get("/customers/suggestions").get_data(as_text=True)
    world["write"]("whatsapp", "phone", "+31612345678", "Jan de Vries", "again: jan@example.com")
    assert store.suggestion(suggestion["id"])["status"] == "rejected"

    merged = post(client, f"/customers/{world['jan_mail']}/merge", {"other": str(world["jan_wa"])},
                  page=f"/customers/{world['jan_mail']}")
    assert merged.status_code == 302
    assert store.customer_record(world["jan_wa"])["merged_into"] == world["jan_mail"]
    merge = store.merges_into(world["jan_mail"])[0]
    assert post(client, f"/customers/merges/{merge['id']}/undo").status_code == 302
    assert store.customer_record(world["jan_wa"])["merged_into"] is None
    assert [i["value"] for i in store.identities_of(world["jan_wa"])] == ["+31612345678"]


def test_a_conflicting_merge_needs_merge_anyway(client, world):
    signed_in(client, "adam@example.org")
    other_tg = world["write"]("telegram", "telegram", "888", "Bea Bunsen", "hi", team=world["team_b"])
    response = post(client, f"/customers/{world['bea_tg']}/merge", {"other": str(other_tg)})
    assert response.status_code == 302
    assert world["store"].customer_record(other_tg)["merged_into"] is None
    post(client, f"/customers/{world['bea_tg']}/merge", {"other": str(other_tg), "force": "1"})
    assert world["store"].customer_record(other_tg)["merged_into"] == world["bea_tg"]


def test_state_changes_need_the_form_token(client, world):
    signed_in(client, "alice@example.org")
    store = world["store"]
    suggestion = store.suggestion_for_pair(world["jan_mail"], world["jan_wa"])
    assert client.post(f"/customers/{world['jan_mail']}/notes", data={"text": "x"}).status_code == 400
    assert client.post(f"/customers/suggestions/{suggestion['id']}/confirm").status_code == 400
    assert client.get(f"/customers/suggestions/{suggestion['id']}/confirm").status_code == 405
    assert store.customer_notes(world["jan_mail"]) == []
    assert store.suggestion(suggestion["id"])["status"] == "open"


def test_notes_details_and_attributes(client, world):
    signed_in(client, "alice@example.org")
    cid = world["jan_mail"]
    post(client, f"/customers/{cid}/notes", {"text": "Prefers a call in the morning"})
    post(client, f"/customers/{cid}/edit", {"action": "attribute", "key": "segment", "value": "gold"})
    post(client, f"/customers/{cid}/edit", {"action": "details", "display_name": "Jan de Vries", "locale": "nl",
                                            "owner_agent_id": "", "crm_ref": "HACK-1"})
    page = client.get(f"/customers/{cid}").get_data(as_text=True)
    assert "Prefers a call in the morning" in page and "segment" in page and "gold" in page
    record = world["store"].customer_record(cid)
    # Only admins set the CRM reference (the key the CRM API uses).
    assert record["locale"] == "nl" and record["crm_ref"] is None


# Admin: import, export, erase ----------------------------------------------------------------------

CSV = "Klantnummer;Naam;E-mail;Telefoon\nK1;Jan de Vries;jan@example.com;06-12345678\nK2;Nieuw Mens;new@example.com;\n"


def test_import_page_is_for_admins_and_dry_run_changes_nothing(client, world, app):
    alice = app.test_client()
    signed_in(alice, "alice@example.org")
    assert alice.get("/admin/customers/import").status_code == 403
    signed_in(client, "adam@example.org")
    token = csrf_token(client, "/admin/customers/import")

    def upload(dry_run):
        data = {"csrf_token": token, "file": (io.BytesIO(CSV.encode()), "crm.csv"), "mapping": "Klantnummer=crm_ref"}
        if dry_run:
            data["dry_run"] = "1"
        return client.post("/admin/customers/import", data=data, content_type="multipart/form-data")

    page = upload(True).get_data(as_text=True)
    assert 'data-count="create">1<' in page and 'data-count="update">1<' in page
    assert world["store"].customer_by_crm_ref("K2") is None
    page = upload(False).get_data(as_text=True)
    assert world["store"].customer_by_crm_ref("K1") == world["jan_mail"]
    assert world["store"].customer_by_crm_ref("K2") is not None
    page = upload(False).get_data(as_text=True)
    assert 'data-count="unchanged">2<' in page


def test_export_is_an_admin_download_of_one_customer(client, world, app):
    alice = app.test_client()
    signed_in(alice, "alice@example.org")
    assert post(alice, f"/customers/{world['jan_mail']}/export").status_code == 403
    signed_in(client, "adam@example.org")
    response = post(client, f"/customers/{world['jan_mail']}/export")
    assert response.status_code == 200 and response.mimetype == "application/zip"
    assert "attachment" in response.headers["Content-Disposition"]
    zf = zipfile.ZipFile(io.BytesIO(response.data))
    contact = json.loads(zf.read("contact.json"))
    assert contact["identities"][0]["value"] == "jan@example.com"
    assert b"bea@secret.example" not in b"".join(zf.read(n) for n in zf.namelist())


def test_erase_from_the_page_needs_the_number_typed(client, world):
    signed_in(client, "adam@example.org")
    cid = world["pool"]
    post(client, f"/customers/{cid}/erase", {"confirm": "yes"})
    assert world["store"].live_customer_id(cid) == cid
    response = post(client, f"/customers/{cid}/erase", {"confirm": str(cid)})
    assert response.status_code == 302
    assert world["store"].live_customer_id(cid) is None
    assert client.get(f"/customers/{cid}").status_code == 404


# The CRM API -----------------------------------------------------------------------------------------

def api(client, body, token=TOKEN, **kw):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post("/api/customers", json=body, headers=headers, **kw)


def test_api_needs_a_configured_token_and_ignores_the_session(client, world):
    body = {"crm_ref": "X1", "name": "Api Person", "emails": ["api@example.com"]}
    for response in (api(client, body, token=None), api(client, body, token="wrong-token-0123456789")):
        assert response.status_code == 401
        assert response.get_json() == {"ok": False, "error": "a valid bearer token is required"}
    signed_in(client, "adam@example.org")
    assert api(client, body, token=None).status_code == 401
    assert world["store"].customer_by_crm_ref("X1") is None


def test_api_creates_then_updates_then_changes_nothing(client, world):
    body = {"crm_ref": "X1", "name": "Api Person", "emails": ["Api@Example.com"], "phones": ["06-87654321"],
            "handles": {"telegram": "4242"}, "attributes": {"tier": "gold"}}
    created = api(client, body)
    assert created.status_code == 201
    data = created.get_json()
    assert data["ok"] and data["action"] == "create"
    assert {"kind": "email", "value": "api@example.com"} in data["customer"]["identities"]
    assert data["customer"]["phones"] == ["+31687654321"]
    body["attributes"]["tier"] = "platinum"
    assert api(client, body).get_json()["action"] == "update"
    again = api(client, body)
    assert again.status_code == 200 and again.get_json()["action"] == "unchanged"
    fetched = client.get(f"/api/customers/{data['id']}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert fetched.get_json()["customer"]["attributes"] == {"tier": "platinum"}


def test_api_conflicts_and_bad_bodies_are_json_errors(client, world):
    conflict = api(client, {"crm_ref": "X9", "emails": ["jan@example.com", "bea@secret.example"]})
    assert conflict.status_code == 409 and conflict.get_json()["ok"] is False
    assert world["store"].customer_record(world["bea"])["merged_into"] is None
    for body, status in (({"emails": "not-an-address"}, 400), ({"nonsense": 1}, 400), ([1, 2], 400),
                         ({"handles": {"myspace": "x"}}, 400), ({}, 400)):
        response = api(client, body)
        assert response.status_code == status, body
        assert response.get_json()["ok"] is False
    raw = client.post("/api/customers", data="{not json", content_type="application/json",
                      headers={"Authorization": f"Bearer {TOKEN}"})
    assert raw.status_code == 400 and raw.get_json()["ok"] is False
    missing = client.get("/api/customers/999999", headers={"Authorization": f"Bearer {TOKEN}"})
    assert missing.status_code == 404 and missing.get_json()["ok"] is False


def test_config_checks_the_new_keys(tmp_path):
    base = {"database": str(tmp_path / "x.db"), "secret_key": "k"}
    with pytest.raises(config_module.ConfigError, match="api_tokens"):
        config_module.from_mapping({**base, "api_tokens": ["short"]}, base=tmp_path)
    with pytest.raises(config_module.ConfigError, match="default_phone_region"):
        config_module.from_mapping({**base, "default_phone_region": "Netherlands"}, base=tmp_path)
    ok = config_module.from_mapping({**base, "default_phone_region": "NL", "api_tokens": ["x" * 16]}, base=tmp_path)
    assert ok.extra["default_phone_region"] == "NL"
