"""Service levels, business hours, surveys and the digest set in the browser (issue #13).

Each form stores a section that `check_section` accepts and that is in force at once; invalid input
shows the field's error and stores nothing; a section the YAML file sets is read-only; every save is
one audit row; the digest's SMTP password is sealed and never shown; due times of open conversations
follow a changed policy.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json

import pytest

from inbox import digest, service_levels
from inbox.models import Author, FetchResult, InboundItem
from inbox.settings import check_section
from inbox.store.base import iso
from tests.test_web_auth import PASSWORD, csrf_token, login, make_agent  # noqa: F401

H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)
SECRET = "smtp-pass-Xq81-never-shown"
_SEQUENCE = itertools.count(1)
MAIL = {"kind": "imap", "host": "127.0.0.1", "username": "support@mainland.test", "password": "x",
        "address": "support@mainland.test", "security": "none"}


@pytest.fixture
def app_config(app_config, monkeypatch):
    monkeypatch.delenv("MAINLAND_SECRETS_KEY", raising=False)
    app_config["channels"] = {"mail": dict(MAIL), "chat": {"kind": "telegram", "token": "123:abc"}}
    return app_config


@pytest.fixture
def mainland(app):
    return app.extensions["mainland"]


@pytest.fixture
def admin_store(mainland):
    store = mainland.open_store()
    yield store
    store.close()


@pytest.fixture
def admin_client(app, admin_store):
    make_agent(admin_store, "ada@example.org", name="Ada Admin", role="admin")
    client = app.test_client()
    assert login(client, "ada@example.org").status_code == 302
    return client


def post(client, path, data):
    return client.post(path, data={"csrf_token": csrf_token(client, path.split("/overrides")[0]
                                                            .split("/teams")[0]), **data})


def policy_form(**changes):
    form = {"first_response_on": "1", "first_response_desired": "1h", "first_response_adequate": "4h",
            "next_response_on": "1", "next_response_desired": "2h", "next_response_adequate": "8h",
            "resolution_on": "1", "resolution_desired": "24h", "resolution_adequate": "72h",
            "warn_before": "15m", "notify": "1"}
    form.update(changes)
    return {k: v for k, v in form.items() if v is not None}


def stored(store, section):
    return store.stored_settings.sections().get(section)


def in_force(mainland):
    return service_levels.for_config(mainland.config)


def audit_rows(store):
    keys = ("actor", "action", "object_type", "object_id", "details")
    rows = store.execute(f"SELECT {', '.join(keys)} FROM audit_log WHERE action = 'settings_changed' "  # noqa: S608
                         "ORDER BY id").fetchall()
    return [dict(zip(keys, row[:4], strict=False), details=json.loads(row[4])) for row in rows]


def text(response):
    return response.get_data(as_text=True)


PAGES = ("/admin/service-levels", "/admin/business-hours", "/admin/surveys", "/admin/digest")


# Who may ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("role", ["agent", "lead", "manager"])
def test_only_admins_reach_the_settings_pages(app, admin_store, role):
    make_agent(admin_store, f"{role}@example.org", role=role)
    client = app.test_client()
    login(client, f"{role}@example.org")
    token = csrf_token(client, "/settings")
    for path in PAGES:
        assert client.get(path).status_code == 403, path
        assert client.post(path, data={"csrf_token": token, **policy_form()}).status_code == 403, path
    assert stored(admin_store, "service_levels") is None and stored(admin_store, "digest") is None


def test_the_admin_tabs_link_every_settings_page(admin_client):
    page = text(admin_client.get("/admin/agents"))
    for path in PAGES:
        assert f'href="{path}"' in page


def test_a_save_without_its_csrf_token_is_refused(admin_client, admin_store):
    response = admin_client.post("/admin/service-levels", data=policy_form(first_response_desired="30m"))
    assert response.status_code == 400
    assert stored(admin_store, "service_levels") is None


# The default policy ------------------------------------------------------------------------------------

def test_saving_the_policy_stores_a_valid_section_that_is_in_force_at_once(admin_client, admin_store, mainland):
    assert in_force(mainland).default.first_response.desired == H
    response = post(admin_client, "/admin/service-levels", policy_form(
        first_response_desired="30m", first_response_adequate="2 h", resolution_on=None, warn_before="10m"))
    assert response.status_code == 302
    section = stored(admin_store, "service_levels")
    assert check_section("service_levels", section, mainland.config.channels) == []
    levels = in_force(mainland)
    assert levels.default.first_response == service_levels.Target(30 * M, 2 * H)
    assert levels.default.resolution is None, "an unticked metric is not measured"
    assert levels.warn_before == 10 * M
    page = text(admin_client.get("/admin/service-levels"))
    assert 'value="30m"' in page and 'value="2h"' in page and "The service levels are saved." in page
    assert "Last changed" in page and "Ada Admin" in page


def test_a_policy_save_is_one_audit_row_naming_what_changed(admin_client, admin_store):
    post(admin_client, "/admin/service-levels", policy_form(first_response_desired="45m"))
    [row] = audit_rows(admin_store)
    assert row["object_type"] == "settings" and row["object_id"] == "service_levels"
    assert row["actor"].startswith("agent:")
    changes = row["details"]["changes"]
    assert changes["policy.first_response.desired"] == {"before": None, "after": "45m"}
    post(admin_client, "/admin/service-levels", policy_form(first_response_desired="50m"))
    second = audit_rows(admin_store)[-1]["details"]["changes"]
    assert second == {"policy.first_response.desired": {"before": "45m", "after": "50m"}}


@pytest.mark.parametrize(("field", "value", "message"), [
    ("first_response_desired", "soon", "is not a duration: write minutes, hours or days, like 30m, 4h or 2d"),
    ("next_response_adequate", "", "Enter a duration, like 30m, 4h or 2d."),
    ("resolution_adequate", "2h", "The adequate time cannot be shorter than the desired time (24h)."),
    ("warn_before", "-5m", "is not a duration"),
])
def test_an_invalid_policy_shows_the_fields_error_and_stores_nothing(admin_client, admin_store, mainland, field,
                                                                     value, message):
    response = post(admin_client, "/admin/service-levels", policy_form(**{field: value}))
    assert response.status_code == 400
    page = text(response)
    assert message in page
    error_id = "policy-" + field.replace("_desired", "-desired").replace("_adequate", "-adequate") \
        if field != "warn_before" else "warn-before"
    assert f'aria-describedby="{error_id}-error"' in page, "the error belongs to its field"
    assert stored(admin_store, "service_levels") is None and audit_rows(admin_store) == []
    assert in_force(mainland).default.first_response.desired == H


# Overrides ------------------------------------------------------------------------------------------------

def override_form(**changes):
    form = {"channel": "chat", "priority": "", "first_response_mode": "set", "first_response_desired": "15m",
            "first_response_adequate": "1h", "next_response_mode": "inherit", "resolution_mode": "inherit"}
    form.update(changes)
    return form


def test_an_override_is_added_edited_and_removed(admin_client, admin_store, mainland):
    assert post(admin_client, "/admin/service-levels/overrides", override_form()).status_code == 302
    policy = in_force(mainland).policy_for("chat", 0)
    assert policy.name == "override: channel chat"
    assert policy.first_response == service_levels.Target(15 * M, H)
    assert policy.next_response == in_force(mainland).default.next_response, "unnamed metrics follow the default"
    assert set(stored(admin_store, "service_levels")["overrides"][0]) == {"channel", "first_response"}
    page = text(admin_client.get("/admin/service-levels"))
    assert "Override" in page and "15m / 1h" in page

    edited = override_form(channel="", priority="4", first_response_mode="inherit", resolution_mode="off",
                           key="chat|")
    assert post(admin_client, "/admin/service-levels/overrides/0", edited).status_code == 302
    levels = in_force(mainland)
    assert levels.policy_for("chat", 0).name == "default"
    urgent = levels.policy_for("mail", 4)
    assert urgent.name == "override: priority 4" and urgent.resolution is None

    assert post(admin_client, "/admin/service-levels/overrides/0/delete", {"key": "|4"}).status_code == 302
    assert in_force(mainland).overrides == ()
    assert [r["details"]["changes"] != {} for r in audit_rows(admin_store)] == [True, True, True]


@pytest.mark.parametrize(("changes", "message"), [
    ({"channel": ""}, "Choose a channel, a priority or both"),
    ({"first_response_mode": "inherit"}, "Change at least one target"),
    ({"first_response_desired": "quick"}, "“quick” is not a duration"),
    ({"channel": "no-such-channel"}, "Choose a channel from the list."),
])
def test_an_invalid_override_shows_the_error_and_stores_nothing(admin_client, admin_store, changes, message):
    response = post(admin_client, "/admin/service-levels/overrides", override_form(**changes))
    assert response.status_code == 400 and message in text(response)
    assert stored(admin_store, "service_levels") is None


def test_a_second_override_for_the_same_channel_is_refused(admin_client, admin_store):
    post(admin_client, "/admin/service-levels/overrides", override_form())
    response = post(admin_client, "/admin/service-levels/overrides", override_form(first_response_desired="5m"))
    assert response.status_code == 400 and "already an override for this channel" in text(response)
    assert len(stored(admin_store, "service_levels")["overrides"]) == 1


def test_an_edit_aimed_at_an_override_that_changed_meanwhile_changes_nothing(admin_client, admin_store):
    post(admin_client, "/admin/service-levels/overrides", override_form())
    response = post(admin_client, "/admin/service-levels/overrides/0", override_form(channel="mail", key="mail|"))
    assert response.status_code == 302
    assert stored(admin_store, "service_levels")["overrides"][0]["channel"] == "chat"
    assert "The overrides changed meanwhile" in text(admin_client.get("/admin/service-levels"))


# Business hours ------------------------------------------------------------------------------------------

def hours_form(**changes):
    form = {"timezone": "Europe/Amsterdam", "hours_mon": "09:00-17:00", "hours_tue": "09:00-17:00",
            "hours_wed": "09:00-12:00, 13:00-17:00", "hours_thu": "09:00-17:00", "hours_fri": "09:00-15:00",
            "hours_sat": "closed", "hours_sun": "", "holidays": "2026-12-25\n2026-12-26\n"}
    form.update(changes)
    return form


def test_saving_the_default_business_hours_puts_them_in_force(admin_client, admin_store, mainland):
    assert post(admin_client, "/admin/business-hours", hours_form()).status_code == 302
    section = stored(admin_store, "service_levels")
    assert check_section("service_levels", section, mainland.config.channels) == []
    hours = in_force(mainland).hours
    assert hours.timezone == "Europe/Amsterdam" and not hours.always_open
    assert hours.holidays == {dt.date(2026, 12, 25), dt.date(2026, 12, 26)}
    monday_nine = dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC)  # 09:00 in Amsterdam
    assert hours.add(monday_nine, 8 * H) == dt.datetime(2026, 11, 23, 16, 0, tzinfo=dt.UTC)
    page = text(admin_client.get("/admin/business-hours"))
    assert 'value="09:00-12:00, 13:00-17:00"' in page and "2026-12-25" in page
    assert '<datalist id="timezones">' in page and '<option value="America/New_York">' in page


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"timezone": "Mars/Olympus"}, "timezone", "Choose a time zone from the list"),
    ({"hours_tue": "nine to five"}, "hours-tue", "Write the hours like 09:00-17:00"),
    ({"hours_wed": "17:00-09:00"}, "hours-wed", "Write the hours like 09:00-17:00"),
    ({"holidays": "2026-12-25\nChristmas"}, "holidays", "“Christmas” is not a date"),
    ({f"hours_{d}": "closed" for d in ("mon", "tue", "wed", "thu", "fri")}, "hours-mon", "Open on at least one day"),
])
def test_invalid_business_hours_show_the_fields_error_and_store_nothing(admin_client, admin_store, changes, field,
                                                                        message):
    response = post(admin_client, "/admin/business-hours", hours_form(**changes))
    assert response.status_code == 400
    page = text(response)
    assert message in page and f'id="default-{field}-error"' in page
    assert stored(admin_store, "service_levels") is None


def test_around_the_clock_keeps_the_time_zone(admin_client, mainland):
    response = post(admin_client, "/admin/business-hours", {"always": "1", "timezone": "Asia/Tokyo", "holidays": ""})
    assert response.status_code == 302
    hours = in_force(mainland).hours
    assert hours.always_open and hours.timezone == "Asia/Tokyo"


def test_a_team_gets_hours_of_its_own_and_goes_back_to_the_default(admin_client, admin_store, mainland):
    us = admin_store.create_team("Support US")
    admin_store.create_team("Support EU")
    post(admin_client, "/admin/business-hours", hours_form())
    page = text(admin_client.get("/admin/business-hours"))
    assert page.count("uses the default") == 2
    response = post(admin_client, f"/admin/business-hours/teams/{us}",
                    hours_form(timezone="America/New_York", holidays="", hours_fri="09:00-18:00"))
    assert response.status_code == 302
    levels = in_force(mainland)
    assert levels.hours_for("Support US").timezone == "America/New_York"
    assert levels.hours_for("Support EU").timezone == "Europe/Amsterdam", "a team without its own uses the default"
    page = text(admin_client.get("/admin/business-hours"))
    assert page.count("uses the default") == 1 and "America/New_York" in page
    assert post(admin_client, f"/admin/business-hours/teams/{us}/default", {}).status_code == 302
    assert in_force(mainland).hours_for("Support US").timezone == "Europe/Amsterdam"
    assert "teams" not in stored(admin_store, "service_levels")


def test_hours_for_a_team_that_does_not_exist_are_a_404(admin_client, admin_store):
    assert post(admin_client, "/admin/business-hours/teams/999", hours_form()).status_code == 404
    assert stored(admin_store, "service_levels") is None


# Surveys ---------------------------------------------------------------------------------------------------

def test_saving_the_surveys_puts_them_in_force(admin_client, admin_store, mainland):
    from inbox import csat

    response = post(admin_client, "/admin/surveys", {"delay": "20m", "expires": "3d", "channel:chat": "off",
                                                      "channel:mail": ""})
    assert response.status_code == 302
    assert check_section("service_levels", stored(admin_store, "service_levels"), mainland.config.channels) == []
    settings = csat.settings(in_force(mainland))
    assert settings == {"enabled": False, "delay": 20 * M, "expires": dt.timedelta(days=3),
                        "channels": {"chat": "off"}}
    assert csat.survey_kind(mainland, "chat", settings["channels"]) is None
    assert csat.survey_kind(mainland, "mail", settings["channels"]) == "link"


def test_an_invalid_survey_delay_is_refused(admin_client, admin_store):
    response = post(admin_client, "/admin/surveys", {"enabled": "1", "delay": "later", "expires": "7d"})
    assert response.status_code == 400 and "“later” is not a duration" in text(response)
    assert stored(admin_store, "service_levels") is None


def test_saving_one_part_keeps_the_others(admin_client, admin_store, mainland):
    post(admin_client, "/admin/service-levels", policy_form(first_response_desired="20m"))
    post(admin_client, "/admin/business-hours", hours_form())
    post(admin_client, "/admin/surveys", {"enabled": "1", "delay": "5m", "expires": "7d"})
    post(admin_client, "/admin/service-levels/overrides", override_form())
    levels = in_force(mainland)
    assert levels.default.first_response.desired == 20 * M
    assert levels.hours.timezone == "Europe/Amsterdam"
    assert levels.csat["delay"] == "5m" and len(levels.overrides) == 1


# The digest ------------------------------------------------------------------------------------------------

def digest_form(**changes):
    form = {"enabled": "1", "weekday": "tue", "hour": "7", "timezone": "Europe/Amsterdam", "send": "send",
            "delivery": "smtp", "channel": "", "smtp_host": "smtp.example.com", "smtp_port": "587",
            "smtp_security": "starttls", "smtp_username": "reports", "smtp_password": SECRET,
            "smtp_from_address": "reports@example.com", "smtp_from_name": "Mainland reports",
            "recipients": "Boss@Example.com\nowner@example.org", "goal": "85"}
    form.update(changes)
    return form


def test_saving_the_digest_seals_the_password_and_never_shows_it(admin_client, admin_store, mainland):
    assert post(admin_client, "/admin/digest", digest_form()).status_code == 302
    raw = admin_store.execute("SELECT value FROM stored_settings WHERE section = 'digest'").fetchone()[0]
    assert SECRET not in raw and "$encrypted" in raw
    assert SECRET not in json.dumps(audit_rows(admin_store))
    settings = digest.settings_for(mainland.config)
    assert (settings.weekday, settings.hour, settings.timezone, settings.goal) == (1, 7, "Europe/Amsterdam", 0.85)
    assert settings.smtp["password"] == SECRET and settings.smtp["host"] == "smtp.example.com"
    assert settings.recipients == ("boss@example.com", "owner@example.org")
    page = text(admin_client.get("/admin/digest"))
    assert SECRET not in page and "A password is stored" in page
    assert check_section("digest", mainland.config.extra["digest"], mainland.config.channels) == []


def test_a_blank_password_keeps_the_stored_one(admin_client, admin_store, mainland):
    post(admin_client, "/admin/digest", digest_form())
    sealed = stored(admin_store, "digest")["smtp"]["password"]
    assert post(admin_client, "/admin/digest", digest_form(smtp_password="", hour="9")).status_code == 302
    assert stored(admin_store, "digest")["smtp"]["password"] == sealed
    assert digest.settings_for(mainland.config).smtp["password"] == SECRET
    changes = audit_rows(admin_store)[-1]["details"]["changes"]
    assert changes == {"hour": {"before": 7, "after": 9}}
    post(admin_client, "/admin/digest", digest_form(smtp_password="another-one", hour="9"))
    changes = audit_rows(admin_store)[-1]["details"]["changes"]
    assert changes == {"smtp.password": {"before": "(secret)", "after": "(secret, changed)"}}
    assert "another-one" not in json.dumps(audit_rows(admin_store))


def test_the_digest_through_an_email_channel_archive_only(admin_client, admin_store, mainland):
    response = post(admin_client, "/admin/digest", digest_form(delivery="channel", channel="mail", send="archive",
                                                               enabled=None, recipients=""))
    assert response.status_code == 302
    settings = digest.settings_for(mainland.config)
    assert settings.channel == "mail" and settings.smtp is None and not settings.send and not settings.enabled


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"recipients": "boss@example.com\nnot an address"}, "recipients", "“not an address” is not an email address"),
    ({"goal": "150"}, "goal", "Enter a percentage above 0 and at most 100"),
    ({"smtp_host": ""}, "smtp-host", "Enter the mail server"),
    ({"smtp_from_address": "reports"}, "smtp-from-address", "Enter the address the digest comes from"),
    ({"timezone": "Europe/Atlantis"}, "timezone", "Choose a time zone from the list"),
    ({"delivery": "channel", "channel": "chat"}, "channel", "Choose an email channel from the list."),
])
def test_an_invalid_digest_shows_the_fields_error_and_stores_nothing(admin_client, admin_store, changes, field,
                                                                     message):
    response = post(admin_client, "/admin/digest", digest_form(**changes))
    assert response.status_code == 400
    page = text(response)
    assert message in page and f'id="digest-{field}-error"' in page
    assert SECRET not in page, "the typed password is not shown back either"
    assert stored(admin_store, "digest") is None and audit_rows(admin_store) == []


# Set in the config file; stored but not in force -------------------------------------------------------------

def test_sections_the_file_sets_are_read_only_and_a_post_is_refused(app_config, monkeypatch):
    from inbox import create_app

    app_config["service_levels"] = {"policy": {"first_response": {"desired": "2h", "adequate": "6h"}}}
    app_config["digest"] = {"weekday": "fri", "smtp": {"host": "smtp.example.com", "from_address": "a@example.com",
                                                      "password": "file-secret-value"}}
    app = create_app(app_config)
    store = app.extensions["mainland"].open_store()
    make_agent(store, "ada@example.org", name="Ada Admin", role="admin")
    client = app.test_client()
    login(client, "ada@example.org")
    for path in PAGES:
        page = text(client.get(path))
        assert "Set in the config file." in page, path
        assert 'class="settings-fields" disabled' in page and 'type="submit" class="primary"' not in page, path
    assert 'value="2h"' in text(client.get("/admin/service-levels"))
    digest_page = text(client.get("/admin/digest"))
    assert "file-secret-value" not in digest_page and '<option value="fri" selected>' in digest_page
    token = csrf_token(client, "/settings")
    for path, form in (("/admin/service-levels", policy_form()), ("/admin/business-hours", hours_form()),
                       ("/admin/surveys", {"delay": "1m", "expires": "1d"}),
                       ("/admin/service-levels/overrides", override_form()), ("/admin/digest", digest_form())):
        assert client.post(path, data={"csrf_token": token, **form}).status_code == 409, path
    assert store.stored_settings.sections() == {}
    assert audit_rows(store) == []
    store.close()


def test_a_stored_section_that_fails_its_check_is_named_on_the_page(admin_client, admin_store, mainland):
    admin_store.stored_settings.save_section("digest", {"smtp": {
        "host": "smtp.example.com", "from_address": "a@example.com",
        "password": {"$encrypted": "not-a-fernet-token"}}}, by=None)
    mainland.refresh(admin_store)
    assert "digest" in mainland.settings_problems
    page = text(admin_client.get("/admin/digest"))
    assert "The settings saved here are not in force" in page and "cannot be decrypted" in page
    # Saved again with the password typed anew, it is in force.
    assert post(admin_client, "/admin/digest", digest_form()).status_code == 302
    assert "digest" not in mainland.settings_problems
    assert digest.settings_for(mainland.config).smtp["password"] == SECRET


# Due times follow the policy ---------------------------------------------------------------------------------

def ingest(mainland, store, when, handle):
    n = next(_SEQUENCE)
    ingestor = mainland.ingestor(store)
    ingestor.now = lambda: when
    item = InboundItem(channel="chat", external_id=f"admin-{n}", author=Author(handle, handle), text="Help please",
                       thread_key=handle)
    [conversation_id] = ingestor.ingest("chat", FetchResult(items=[item], cursor=None),
                                        save_cursor=False).new_conversations
    return conversation_id


def due(store, conversation_id):
    return store.execute("SELECT first_response_due_desired, first_response_due_adequate, sla_due_desired "
                         "FROM conversations WHERE id = ?", (conversation_id,)).fetchone()


def test_due_times_of_an_open_conversation_move_when_the_target_changes(frozen_clock, admin_client, admin_store,
                                                                        mainland):
    now = frozen_clock.now()
    waiting = ingest(mainland, admin_store, now - 30 * M, "wendy")
    assert due(admin_store, waiting)[0] == iso(now + 30 * M)
    response = post(admin_client, "/admin/service-levels",
                    policy_form(first_response_desired="15m", first_response_adequate="20m"))
    assert response.status_code == 302
    desired, adequate, earliest = due(admin_store, waiting)
    assert (desired, adequate, earliest) == (iso(now - 15 * M), iso(now - 10 * M), iso(now - 15 * M))
    page = text(admin_client.get("/?sort=urgency"))
    assert "sla sla-past_adequate" in page


def test_hours_change_moves_due_times_and_the_worker_does_the_rest_in_batches(frozen_clock, admin_client,
                                                                              admin_store, mainland, monkeypatch):
    from inbox.web import service_admin

    monkeypatch.setattr(service_admin, "SAVE_BATCH", 1)
    now = frozen_clock.now()  # Monday 2026-11-23 09:00 UTC
    first = ingest(mainland, admin_store, now - 30 * M, "first")
    second = ingest(mainland, admin_store, now - 30 * M, "second")
    resolved = ingest(mainland, admin_store, now - 30 * M, "resolved")
    with admin_store.write():
        admin_store.execute("UPDATE conversations SET status = 'resolved' WHERE id = ?", (resolved,))
    service_levels.refresh_stale(admin_store, in_force(mainland), now)
    before_resolved = admin_store.execute("SELECT sla_computed_at FROM conversations WHERE id = ?",
                                          (resolved,)).fetchone()[0]
    frozen_clock.advance(M)
    # Open 10:00-11:00 UTC on Mondays and Tuesdays: a first message at 08:30 gets its desired hour at 11:00.
    post(admin_client, "/admin/business-hours",
         hours_form(timezone="UTC", hours_mon="10:00-11:00", hours_tue="10:00-11:00", holidays=""))
    expected = iso(dt.datetime(2026, 11, 23, 11, 0, tzinfo=dt.UTC))
    assert due(admin_store, first)[0] == expected, "the save recomputes the first batch at once"
    assert due(admin_store, second)[0] == iso(now + 30 * M), "the rest waits for the worker"
    store_levels = in_force(mainland)
    changed_at = service_levels.stored_policy_changed_at(admin_store, mainland.bootstrap)
    refreshed, _ = service_levels.run_checks(admin_store, store_levels, frozen_clock.now(), policy_changed_at=changed_at)
    assert refreshed >= 1
    assert due(admin_store, second)[0] == expected
    assert admin_store.execute("SELECT sla_computed_at FROM conversations WHERE id = ?",
                               (resolved,)).fetchone()[0] == before_resolved, "closed conversations keep their results"


def test_due_times_computed_with_the_old_policy_just_after_the_change_are_redone(frozen_clock, admin_client,
                                                                                   admin_store, mainland, tmp_path):
    """Another process may still measure with the old policy for a few seconds after the save."""
    from inbox.config import from_mapping

    now = frozen_clock.now()
    old_levels = in_force(mainland)
    waiting = ingest(mainland, admin_store, now - 30 * M, "late")
    post(admin_client, "/admin/service-levels", policy_form(first_response_desired="15m",
                                                            first_response_adequate="20m"))
    frozen_clock.advance(10 * dt.timedelta(seconds=1))
    service_levels.refresh(admin_store, old_levels, [waiting], frozen_clock.now())  # a slow process
    assert due(admin_store, waiting)[0] == iso(now + 30 * M)
    frozen_clock.advance(M)
    changed_at = service_levels.stored_policy_changed_at(admin_store, mainland.bootstrap)
    service_levels.run_checks(admin_store, in_force(mainland), frozen_clock.now(), policy_changed_at=changed_at)
    assert due(admin_store, waiting)[0] == iso(now - 15 * M)
    # When the file sets the section, the stored one is not in force and nothing is swept for it.
    file_config = from_mapping({"database": str(tmp_path / "other.db"), "service_levels": {"notify": False}},
                               base=tmp_path)
    assert service_levels.stored_policy_changed_at(admin_store, file_config) is None


# Sign-in security: roles that must use two-step sign-in -------------------------------------------------

def test_an_admin_requires_two_step_sign_in_of_a_role_and_its_agents_are_led_to_set_it_up(
        app, admin_client, admin_store, mainland):
    make_agent(admin_store, "ann@example.org", role="agent")
    response = post(admin_client, "/admin/security", {"role_agent": "1"})
    assert response.status_code == 302
    assert stored(admin_store, "security") == {"require_second_factor": ["agent"]}
    assert [r["object_id"] for r in audit_rows(admin_store)] == ["security"]
    ann = app.test_client()
    login(ann, "ann@example.org")
    page = ann.get("/")
    assert page.status_code == 302 and page.headers["Location"].endswith("/account/security")
    assert admin_client.get("/").status_code == 200, "admins were not ticked"
    post(admin_client, "/admin/security", {})
    assert ann.get("/").status_code == 200


def test_the_config_files_roles_win_and_the_page_is_read_only(app_config, monkeypatch):
    from inbox import create_app

    app_config["web"] = {**app_config.get("web", {}), "require_second_factor": ["agent"]}
    app = create_app(app_config)
    store = app.extensions["mainland"].open_store()
    make_agent(store, "ada@example.org", name="Ada Admin", role="admin")
    store.close()
    client = app.test_client()
    login(client, "ada@example.org")
    page = client.get("/admin/security").get_data(as_text=True)
    assert "Set in the config file." in page and "disabled" in page and 'type="submit"' not in page.split(
        "second-factor-title")[1]
    assert post(client, "/admin/security", {"role_manager": "1"}).status_code == 409
