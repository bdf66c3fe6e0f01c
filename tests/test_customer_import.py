"""Importing customer records from a CRM: mapping, dry run, idempotence, conflicts, the command and its bar."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml
from click.testing import CliRunner

from inbox.attachments import AttachmentStore
from inbox.cli import main
from inbox.customer_import import CustomerImportError, import_csv, parse_mapping
from inbox.ingest import Ingestor
from inbox.models import Author, InboundItem
from inbox.web.auth import hash_password

CSV = """Klantnummer;Voornaam;Achternaam;E-mail;Telefoon;Segment;Notitie
C1;Jan;de Vries;Jan.DeVries@Example.com;06-12345678;gold;likes tea
C2;Piet;Jansen;piet@example.com;+31 6 2222 3333 / 020-7946095;silver;
C3;Bad;Row;not-an-email;;;
C4;Marie;Jansen;piet@example.com;;;
;;;;;;
C5;Anna;Smit;anna@example.com;0612;;
"""
MAPPING = {"Segment": "attr:segment"}


def table_dump(store) -> dict[str, list[tuple]]:
    return {t: [tuple(r) for r in store.execute(f"SELECT * FROM {t} ORDER BY 1, 2")]  # noqa: S608
            for t in ("customers", "identities", "customer_claims", "customer_attributes", "merge_suggestions")}


def test_dry_run_reports_what_would_happen_and_changes_nothing(store):
    empty = table_dump(store)
    report = import_csv(store, CSV, MAPPING, dry_run=True, region="NL")
    assert report.counts == {"create": 2, "update": 0, "unchanged": 0, "conflict": 1, "invalid": 2}
    assert [(r.line, r.action) for r in report.rows] == [(2, "create"), (3, "create"), (4, "invalid"),
                                                         (5, "conflict"), (7, "invalid")]
    assert "not-an-email" in report.rows[2].detail and "0612" in report.rows[4].detail
    assert "C2" in report.rows[3].detail
    assert report.columns == {"Klantnummer": "crm_ref", "Voornaam": "first_name", "Achternaam": "last_name",
                              "E-mail": "email", "Telefoon": "phone", "Segment": "attr:segment"}
    assert report.ignored_columns == ["Notitie"]
    assert table_dump(store) == empty


def test_the_import_does_what_the_dry_run_said_and_a_second_run_changes_nothing(store):
    dry = import_csv(store, CSV, MAPPING, dry_run=True, region="NL")
    real = import_csv(store, CSV, MAPPING, region="NL")
    assert real.counts == dry.counts
    jan = store.customer_by_crm_ref("C1")
    record = store.customer_record(jan)
    assert record["display_name"] == "Jan de Vries"
    assert [(i["kind"], i["value"]) for i in store.identities_of(jan)] == [("email", "jan.devries@example.com")]
    assert [(c["kind"], c["value"], c["source"]) for c in store.claims_of(jan)] == [
        ("phone", "+31612345678", "import")]
    assert store.customer_attributes(jan) == {"segment": "gold"}
    piet = store.customer_by_crm_ref("C2")
    assert {c["value"] for c in store.claims_of(piet)} == {"+31622223333", "+31207946095"}
    after_first = table_dump(store)
    again = import_csv(store, CSV, MAPPING, region="NL")
    assert again.counts == {"create": 0, "update": 0, "unchanged": 2, "conflict": 1, "invalid": 2}
    assert table_dump(store) == after_first


def test_a_changed_row_updates_only_what_changed(store):
    import_csv(store, CSV, MAPPING, region="NL")
    changed = CSV.replace("C1;Jan;de Vries;Jan.DeVries@Example.com;06-12345678;gold",
                          "C1;Jan;de Vries;jan@werk.nl;06-12345678;platinum")
    report = import_csv(store, changed, MAPPING, region="NL")
    assert report.counts["update"] == 1 and report.counts["unchanged"] == 1
    row = next(r for r in report.rows if r.action == "update")
    assert "email jan@werk.nl" in row.detail and "attribute segment" in row.detail
    jan = store.customer_by_crm_ref("C1")
    assert {i["value"] for i in store.identities_of(jan)} == {"jan.devries@example.com", "jan@werk.nl"}


def test_rows_match_existing_customers_by_address(store, tmp_path):
    ingestor = Ingestor(store, AttachmentStore(tmp_path / "att"), instance_id="t")
    ingestor.ingest_one("mail", InboundItem(channel="mail", external_id="1", author=Author("piet@example.com", "P"),
                                            text="hi", sent_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)))
    existing = store.customer_for_identity("email", "piet@example.com")
    report = import_csv(store, CSV, MAPPING, region="NL")
    assert report.counts["create"] == 1 and report.counts["update"] == 1
    assert store.customer_by_crm_ref("C2") == existing
    assert store.customer_record(existing)["display_name"] == "Piet Jansen"


def test_a_crm_phone_matching_a_whatsapp_customer_becomes_a_suggestion(store, tmp_path):
    ingestor = Ingestor(store, AttachmentStore(tmp_path / "att"), instance_id="t", phone_region="NL")
    ingestor.ingest_one("wa", InboundItem(channel="wa", external_id="w1",
                                          author=Author("+31612345678", "Jan", "phone"), text="hoi",
                                          sent_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)))
    whatsapp = store.customer_for_identity("phone", "+31612345678")
    import_csv(store, CSV, MAPPING, region="NL")
    jan = store.customer_by_crm_ref("C1")
    assert jan != whatsapp
    assert store.suggestion_for_pair(jan, whatsapp)["status"] == "open"


def test_mappings_are_checked():
    assert parse_mapping(["Mail=email", "Seg = attr:segment", "x=ignore"]) == {
        "Mail": "email", "Seg": "attr:segment", "x": "ignore"}
    for bad in (["Mail"], ["Mail=nonsense"], ["=email"]):
        with pytest.raises(CustomerImportError):
            parse_mapping(bad)


def test_unknown_columns_and_files_without_fields_are_refused(store):
    with pytest.raises(CustomerImportError, match="no column 'Nope'"):
        import_csv(store, CSV, {"Nope": "email"})
    with pytest.raises(CustomerImportError, match="no column is mapped"):
        import_csv(store, "foo,bar\n1,2\n")
    with pytest.raises(CustomerImportError, match="empty"):
        import_csv(store, "")


def test_owner_and_language_columns(store):
    store.create_agent(email="ann@example.org", name="Ann", role="agent", password_hash=hash_password("x" * 12))
    text = "id,name,email,owner,language\nK1,Jo,jo@example.com,Ann@Example.org,nl\nK2,Al,al@example.com,bob@x.org,xx-\n"
    report = import_csv(store, text)
    assert report.counts["create"] == 1 and report.counts["invalid"] == 1
    record = store.customer_record(store.customer_by_crm_ref("K1"))
    assert record["locale"] == "nl" and record["owner_agent_id"] is not None


# The command ----------------------------------------------------------------------------------------

@pytest.fixture
def cli_config(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"database": "cli.db", "data_dir": "data", "secret_key": "test-secret",
                                    "default_phone_region": "NL"}))
    return path


def test_import_customers_command_dry_run_then_real_then_again(cli_config, tmp_path):
    csv_file = tmp_path / "crm.csv"
    csv_file.write_bytes(CSV.encode("cp1252"))
    runner = CliRunner()
    base = ["--config", str(cli_config), "import-customers", str(csv_file), "--map", "Segment=attr:segment"]
    dry = runner.invoke(main, [*base, "--dry-run"], catch_exceptions=False)
    assert dry.exit_code == 0, dry.output
    assert "dry run: 5 rows: 2 would be created, 0 would be updated, 0 unchanged, 1 in conflict, 2 invalid" in dry.output
    assert "line 4: invalid" in dry.output and "Segment -> attr:segment" in dry.output
    real = runner.invoke(main, base, catch_exceptions=False)
    assert "5 rows: 2 were created" in real.output
    again = runner.invoke(main, base, catch_exceptions=False)
    assert "0 were created, 0 were updated, 2 unchanged" in again.output
    bad = runner.invoke(main, [*base, "--map", "Nope=email"])
    assert bad.exit_code != 0 and "no column 'Nope'" in bad.output


def test_import_customers_shows_a_progress_bar(cli_config, tmp_path):
    rows = "\n".join(f"K{i},Person {i},p{i}@example.com" for i in range(1200))
    csv_file = tmp_path / "big.csv"
    csv_file.write_text("id,name,email\n" + rows + "\n")
    result = CliRunner().invoke(main, ["--config", str(cli_config), "import-customers", str(csv_file), "--progress"],
                                catch_exceptions=False)
    assert "importing: 100%" in result.output and "1200/1200" in result.output
    assert "1200 rows: 1200 were created" in result.output
