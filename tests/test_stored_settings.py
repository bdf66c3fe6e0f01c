"""Settings made in the browser: stored, sealed, laid over the config file, taken in without a restart."""

from __future__ import annotations

import json

import pytest

import connectors
from inbox import config as config_module
from inbox import service_levels
from inbox.runtime import Mainland
from inbox.secrets_box import SecretBox
from inbox.worker import Worker, poll_plans
from tests.test_worker import TIMEOUT, FakeConnector, PushConnector

SECRET = "s3cret-token-value-123"


class TokenConnector(FakeConnector):
    """A pollable channel with one required secret and one plain setting."""

    kind = "tokenfake"
    display_name = "Token fake"
    settings = (
        connectors.base.Setting("token", required=True, secret=True),
        connectors.base.Setting("mode", default="ok"),
    )


@pytest.fixture(autouse=True)
def registry(monkeypatch):
    real = connectors.discover

    def discover(**kwargs):
        return {**real(**kwargs), "fake": FakeConnector, "fakepush": PushConnector, "tokenfake": TokenConnector}

    monkeypatch.setattr(connectors, "discover", discover)


@pytest.fixture
def make_mainland(tmp_path, monkeypatch):
    monkeypatch.delenv("MAINLAND_SECRETS_KEY", raising=False)

    def make(extra: dict | None = None) -> Mainland:
        cfg = config_module.from_mapping({
            "database": str(tmp_path / "mainland.db"),
            "data_dir": str(tmp_path / "data"),
            "secret_key": "test",
            "worker": {"lease_seconds": 2, "renew_every": 0.2},
            **(extra or {}),
        }, base=tmp_path)
        return Mainland(cfg)
    return make


def add_channel(mainland: Mainland, name: str = "tg", *, kind: str = "tokenfake", state: str = "enabled",
                poll_every: float | None = 0.2, **settings) -> None:
    box = mainland.secret_box()
    stored = {"token": box.seal(SECRET), **settings}
    store = mainland.open_store()
    store.migrate()
    try:
        assert store.stored_settings.add_channel(name=name, kind=kind, settings=stored, poll_every=poll_every,
                                                 state=state, by=None)
    finally:
        store.close()


def test_a_channel_added_in_the_database_is_in_force_with_its_secret_open(make_mainland):
    mainland = make_mainland()
    add_channel(mainland, mode="ok")
    store = mainland.open_store(migrate=True)  # what every process does at start
    try:
        raw = store.conn.execute("SELECT settings FROM channel_settings").fetchone()[0]
    finally:
        store.close()
    assert SECRET not in raw and "$encrypted" in raw
    channel = mainland.config.channels["tg"]
    assert channel.settings["token"] == SECRET and channel.origin == "browser"
    assert mainland.connector("tg").config["token"] == SECRET


def test_the_config_file_wins_over_a_stored_channel_of_the_same_name(make_mainland):
    mainland = make_mainland({"channels": {"tg": {"kind": "fake"}}})
    add_channel(mainland)
    store = mainland.open_store(migrate=True)
    store.close()
    assert mainland.config.channels["tg"].kind == "fake" and mainland.config.channels["tg"].origin == "file"
    assert "config file" in mainland.settings_problems["channels.tg"]


def test_a_secret_sealed_with_another_key_leaves_the_channel_out_and_says_why(make_mainland, monkeypatch):
    mainland = make_mainland()
    monkeypatch.setenv("MAINLAND_SECRETS_KEY", "the-old-key-" * 4)
    add_channel(mainland)
    monkeypatch.setenv("MAINLAND_SECRETS_KEY", "a-new-key-" * 4)
    store = mainland.open_store(migrate=True)
    store.close()
    assert "tg" not in mainland.config.channels
    assert "secrets key changed" in mainland.settings_problems["channels.tg"]


def test_an_env_reference_stays_a_reference(tmp_path, monkeypatch):
    monkeypatch.setenv("TG_TOKEN", "from-the-environment")
    box = SecretBox(tmp_path)
    assert box.seal("$env:TG_TOKEN") == {"$env": "TG_TOKEN"}
    assert box.open({"$env": "TG_TOKEN"}) == "from-the-environment"
    assert box.open(box.seal("plain secret")) == "plain secret"


def test_a_stored_section_applies_unless_the_file_sets_it(make_mainland):
    policy = {"policy": {"first_response": {"desired": "15m", "adequate": "1h"}}}
    mainland = make_mainland()
    store = mainland.open_store(migrate=True)
    store.stored_settings.save_section("service_levels", policy, by=None)
    assert mainland.refresh(store)
    assert service_levels.for_config(mainland.config).default.first_response.desired.total_seconds() == 900
    store.close()

    in_file = make_mainland({"service_levels": {"policy": {"first_response": {"desired": "2h", "adequate": "8h"}}}})
    store = in_file.open_store(migrate=True)
    store.close()
    assert service_levels.for_config(in_file.config).default.first_response.desired.total_seconds() == 7200


def test_an_invalid_stored_section_is_left_out_and_reported(make_mainland):
    mainland = make_mainland()
    store = mainland.open_store(migrate=True)
    store.stored_settings.save_section("service_levels", {"policy": {"first_response": {"desired": "soon"}}},
                                       by=None)
    mainland.refresh(store)
    store.close()
    assert "service_levels" not in mainland.config.extra
    assert "service_levels" in mainland.settings_problems


def test_a_paused_channel_is_not_polled(make_mainland):
    mainland = make_mainland()
    add_channel(mainland, "a")
    add_channel(mainland, "b", state="paused")
    add_channel(mainland, "c", state="disabled")
    mainland.open_store(migrate=True).close()
    assert [p.channel for p in poll_plans(mainland)] == ["a"]


def test_the_worker_polls_a_channel_added_while_it_runs_and_stops_when_it_is_paused(make_mainland, monkeypatch,
                                                                                   frozen_clock):
    monkeypatch.setattr("inbox.worker.SETTINGS_EVERY", 0.2)
    mainland = make_mainland()
    worker = Worker(mainland)
    worker.start()
    try:
        assert worker.plans == []
        add_channel(mainland, "late", poll_every=0.2)
        assert worker.wait_until(lambda: worker.polls["late"] >= 2, TIMEOUT), worker.status()

        store = mainland.open_store()
        store.stored_settings.set_channel_state("late", "paused", by=None)
        store.close()
        assert worker.wait_until(lambda: worker.plans == [], TIMEOUT)
        assert "poll:late" not in {job.id for job in worker.scheduler.get_jobs()}
    finally:
        worker.stop()


def test_another_process_s_change_reaches_the_web_app_on_its_next_request(app_config, monkeypatch):
    from inbox import create_app

    monkeypatch.setattr(connectors, "discover", lambda **kw: {"tokenfake": TokenConnector})
    app = create_app(app_config)
    mainland = app.extensions["mainland"]
    assert "tg" not in mainland.config.channels
    add_channel(mainland)  # as another process would: straight into the database
    app.test_client().get("/login")
    assert "tg" in mainland.config.channels


def test_settings_json_is_what_the_connector_declares(make_mainland):
    mainland = make_mainland()
    add_channel(mainland, mode="slow")
    store = mainland.open_store(migrate=True)
    stored = store.stored_settings.channel("tg")
    store.close()
    assert stored.settings["mode"] == "slow"
    assert set(stored.settings["token"]) == {"$encrypted"}
    assert json.dumps(stored.settings).count(SECRET) == 0


class HookConnector(TokenConnector):
    kind = "hookfake"
    push_only = True

    def verify_webhook(self, request):
        return None

    def parse_webhook(self, request):
        from inbox.models import FetchResult

        return FetchResult(items=[], cursor=None)


def test_a_paused_channel_asks_the_provider_to_deliver_later(app_config, monkeypatch):
    from inbox import create_app

    monkeypatch.setattr(connectors, "discover", lambda **kw: {"hookfake": HookConnector})
    app = create_app(app_config)
    mainland = app.extensions["mainland"]
    add_channel(mainland, "hooks", kind="hookfake", state="paused", poll_every=None)
    client = app.test_client()
    response = client.post("/webhooks/hooks", data=b"{}", content_type="application/json")
    assert response.status_code == 503 and response.headers["Retry-After"] == "60"
    store = mainland.open_store()
    store.stored_settings.set_channel_state("hooks", "enabled", by=None)
    store.close()
    assert client.post("/webhooks/hooks", data=b"{}", content_type="application/json").status_code == 200
