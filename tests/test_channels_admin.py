"""Channels administered in the browser: added, changed, paused, tested and removed, without a restart."""

from __future__ import annotations

import json

import pytest

from inbox.worker import Worker
from sandbox.telegram import TelegramImitation
from tests.test_web_admin import admin, admin_client, post  # noqa: F401
from tests.test_web_auth import make_agent, web_store  # noqa: F401

TOKEN_FIELD = "setting-token"


@pytest.fixture
def telegram():
    with TelegramImitation() as imitation:
        yield imitation


@pytest.fixture
def app_config(app_config, telegram):
    # The imitation listens on loopback, which the connectors' fetch guard refuses unless allowed.
    return {**app_config, "fetch_allow_hosts": [telegram.host],
            "channels": {"mail-file": {"kind": "imap", "host": "127.0.0.1", "username": "support@example.org",
                                       "password": "file-secret", "smtp_host": "127.0.0.1",
                                       "address": "support@example.org"}}}


def add_telegram(client, telegram, name="tg", **extra):
    return post(client, "/admin/channels/new", {
        "kind": "telegram", "name": name, TOKEN_FIELD: telegram.token, "setting-api_url": telegram.url,
        "poll_every": "10", **extra}, token_from="/admin/channels/new?kind=telegram")


pytestmark = pytest.mark.server  # a loopback imitation of the Telegram Bot API


def test_an_added_channel_is_polled_and_its_first_message_arrives_without_a_restart(
        app, admin_client, telegram, web_store, monkeypatch):  # noqa: F811
    monkeypatch.setattr("inbox.worker.SETTINGS_EVERY", 0.1)
    mainland = app.extensions["mainland"]
    worker = Worker(mainland)
    worker.start()
    try:
        jane = telegram.user("Jane", username="janedoe")
        telegram.private_message(jane, "Is my order on its way?")
        response = add_telegram(admin_client, telegram)
        assert response.status_code == 302 and response.headers["Location"].endswith("/admin/channels/tg")
        assert worker.wait_until(lambda: worker.polls["tg"] >= 1, 30), worker.status()
    finally:
        worker.stop()
    texts = [m["text"] for c in web_store.recent_conversations() for m in web_store.conversation_messages(c["id"])]
    assert "Is my order on its way?" in texts
    raw = web_store.conn.execute("SELECT settings FROM channel_settings WHERE name = 'tg'").fetchone()[0]
    assert telegram.token not in raw
    assert json.loads(raw)["api_url"] == telegram.url
    page = admin_client.get("/admin/channels/tg").get_data(as_text=True)
    assert telegram.token not in page


def test_missing_and_wrong_settings_are_named_and_nothing_is_stored(admin_client, telegram, web_store):  # noqa: F811
    response = post(admin_client, "/admin/channels/new", {"kind": "telegram", "name": "tg", "setting-page_size": "many"},
                    token_from="/admin/channels/new?kind=telegram")
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Required." in page and "Write a number" in page
    assert web_store.stored_settings.channels() == []

    bad_name = add_telegram(admin_client, telegram, name="Support Desk!")
    assert bad_name.status_code == 400 and "lower-case letters" in bad_name.get_data(as_text=True)
    taken = add_telegram(admin_client, telegram, name="mail-file")
    assert taken.status_code == 400 and "There is a channel of this name already." in taken.get_data(as_text=True)
    assert web_store.stored_settings.channels() == []


def test_editing_keeps_a_blank_secret_and_is_audited(app, admin_client, telegram, web_store):  # noqa: F811
    add_telegram(admin_client, telegram)
    sealed = web_store.stored_settings.channel("tg").settings["token"]
    response = post(admin_client, "/admin/channels/tg", {TOKEN_FIELD: "", "setting-api_url": telegram.url,
                                                         "setting-page_size": "50", "poll_every": "2m"},
                    token_from="/admin/channels/tg")
    assert response.status_code == 302
    row = web_store.stored_settings.channel("tg")
    assert row.settings["token"] == sealed and row.settings["page_size"] == 50 and row.poll_every == 120
    channel = app.extensions["mainland"].config.channels["tg"]
    assert channel.settings["token"] == telegram.token and channel.poll_every == 120
    actions = [r[0] for r in web_store.conn.execute(
        "SELECT action FROM audit_log WHERE object_type = 'channel' AND object_id = 'tg' ORDER BY id")]
    assert actions == ["channel_added", "channel_changed"]
    details = json.loads(web_store.conn.execute(
        "SELECT details FROM audit_log WHERE action = 'channel_changed'").fetchone()[0])
    assert details["changed"] == ["page_size"] and telegram.token not in json.dumps(details)


def test_a_channel_from_the_config_file_is_shown_read_only(admin_client, web_store):  # noqa: F811
    page = admin_client.get("/admin/channels/mail-file").get_data(as_text=True)
    assert "Set in the config file: change them there." in page
    assert "file-secret" not in page and "Save settings" not in page
    assert post(admin_client, "/admin/channels/mail-file", {"setting-host": "evil.example"},
                token_from="/admin/channels/mail-file").status_code == 409
    assert post(admin_client, "/admin/channels/mail-file/state", {"state": "disabled"},
                token_from="/admin/channels/mail-file").status_code == 400


def test_pause_disable_and_remove(app, admin_client, telegram, web_store):  # noqa: F811
    add_telegram(admin_client, telegram)
    mainland = app.extensions["mainland"]
    post(admin_client, "/admin/channels/tg/state", {"state": "paused"}, token_from="/admin/channels/tg")
    assert mainland.config.channels["tg"].paused
    refused = post(admin_client, "/admin/channels/tg/delete", token_from="/admin/channels/tg")
    assert refused.status_code == 302 and web_store.stored_settings.channel("tg") is not None
    post(admin_client, "/admin/channels/tg/state", {"state": "disabled"}, token_from="/admin/channels/tg")
    assert not mainland.config.channels["tg"].enabled
    post(admin_client, "/admin/channels/tg/delete", token_from="/admin/channels/tg")
    assert web_store.stored_settings.channel("tg") is None and "tg" not in mainland.config.channels
    listing = admin_client.get("/admin/channels").get_data(as_text=True)
    assert "mail-file" in listing and "/admin/channels/tg\"" not in listing


def test_the_connection_test_shows_the_outcome_and_changes_nothing(admin_client, telegram, web_store):  # noqa: F811
    add_telegram(admin_client, telegram)
    cursors = web_store.health.cursors()
    response = post(admin_client, "/admin/channels/tg/test", token_from="/admin/channels/tg")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Connection works" in page or "Connection failed" in page
    assert telegram.token not in page
    assert web_store.health.cursors() == cursors


def test_the_verify_token_is_shown_to_copy_into_the_provider_but_no_other_secret(app, admin_client, web_store):  # noqa: F811
    box = app.extensions["mainland"].secret_box()
    web_store.stored_settings.add_channel(name="wa", kind="whatsapp", poll_every=None, by=None, settings={
        "phone_number_id": "1234567890", "access_token": box.seal("EAAG-access-token"),
        "app_secret": box.seal("app-secret-value"), "verify_token": box.seal("verify-me-please")})
    page = admin_client.get("/admin/channels/wa").get_data(as_text=True)
    assert 'value="verify-me-please"' in page and "/webhooks/wa" in page
    assert "EAAG-access-token" not in page and "app-secret-value" not in page


# A connector's words in Dutch (connectors mark them with N_; the page translates them). These need the
# Dutch catalog with the connector strings (/tmp/nl2/conni18n.po, merged by the lead).

def test_a_dutch_admin_reads_the_settings_form_in_dutch(admin_client, admin, web_store):  # noqa: F811
    web_store.set_agent_locale(admin["id"], "nl")
    page = admin_client.get("/admin/channels/new?kind=telegram").get_data(as_text=True)
    assert "De bottoken van @BotFather (123456789:AA...)." in page  # the help of "token"
    assert ">Gebruikersnaam van de bot</label>" in page  # the label made from "bot_username"
    assert "The bot token from @BotFather" not in page and ">Bot username</label>" not in page


def test_a_dutch_admin_reads_the_connection_test_in_dutch(admin_client, admin, telegram, web_store):  # noqa: F811
    add_telegram(admin_client, telegram)
    web_store.set_agent_locale(admin["id"], "nl")
    page = post(admin_client, "/admin/channels/tg/test", token_from="/admin/channels/tg").get_data(as_text=True)
    assert f"Telegram-bot @{telegram.bot['username']} antwoordt (id {telegram.bot_id})" in page
    assert "answers (id" not in page

    telegram.revoke_token()
    page = post(admin_client, "/admin/channels/tg/test", token_from="/admin/channels/tg").get_data(as_text=True)
    assert "Telegram weigerde de bottoken (401): kopieer de token opnieuw bij @BotFather" in page
    assert telegram.token not in page


# Needs the kinds' names in the Dutch catalog (/tmp/nl2/review.po, merged by the lead).
def test_a_dutch_admin_reads_the_kinds_of_channel_in_dutch(admin_client, admin, web_store):  # noqa: F811
    web_store.set_agent_locale(admin["id"], "nl")
    page = admin_client.get("/admin/channels").get_data(as_text=True)
    for kind, dutch in (("webform", "Webformulier"), ("chat", "Websitechat"), ("imap", "E-mail (IMAP/SMTP)"),
                        ("api", "API"), ("telegram", "Telegram"), ("x", "X (Twitter)")):
        assert f'<option value="{kind}">{dutch}</option>' in page
    assert ">Web form<" not in page and ">Website chat<" not in page
    assert "<td>E-mail (IMAP/SMTP)</td>" in page  # the kind of the config file's mail channel
    form = admin_client.get("/admin/channels/new?kind=webform").get_data(as_text=True)
    assert "<h1>Een Webformulier-kanaal toevoegen</h1>" in form
    detail = admin_client.get("/admin/channels/mail-file").get_data(as_text=True)
    assert '<span class="muted">· E-mail (IMAP/SMTP)</span>' in detail

