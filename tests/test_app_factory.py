"""The app factory (#15): every page area and subsystem is set up, and outside connectors can be passed in.

`inbox.web.create_app` lists each subsystem's `init_app` and each page area's blueprint by hand (no
scanning), so a module left out of it must fail here rather than be missing in production. And an
application embedding Mainland passes connector classes of its own to `create_app(connectors=[...])`:
`PostboxConnector` below stands for one, and is offered in Admin → Channels and takes in messages.
"""

from __future__ import annotations

import hmac
import importlib
import json
import pkgutil
import types
from collections import Counter
from typing import ClassVar

import pytest
from flask import Blueprint

import connectors
import inbox.web
from connectors.base import Connector, IdentityRule, PermanentError, Setting, WebhookRequest
from inbox import create_app
from inbox.config import ConfigError
from inbox.models import Author, FetchResult, InboundItem
from tests.test_web_admin import admin, admin_client  # noqa: F401
from tests.test_web_auth import web_store  # noqa: F401

SECRET = "postbox-shared-secret"


class PostboxConnector(Connector):
    """A push-only channel of the embedding application: a shared-secret header, JSON bodies."""

    kind = "factory-postbox"
    display_name = "Postbox"
    push_only = True
    settings: ClassVar = (Setting("secret", required=True, secret=True, help="The shared secret"),)
    identities = (IdentityRule("postbox", case_insensitive=True),)

    def fetch(self, cursor):
        return FetchResult(items=[], cursor=cursor)

    def send(self, reply):
        raise PermanentError("this test sends no replies")

    def verify_webhook(self, request: WebhookRequest) -> None:
        given = (request.headers.get("X-Postbox-Secret") or "").encode()
        if not hmac.compare_digest(given, self.config["secret"].encode()):
            raise PermanentError("X-Postbox-Secret does not match")

    def parse_webhook(self, request: WebhookRequest) -> FetchResult:
        data = json.loads(request.body)
        item = InboundItem(channel=self.name, external_id=str(data["id"]),
                           author=Author(str(data["from"]), str(data["name"]), identity_kind="postbox"),
                           text=str(data["text"]), thread_key=str(data["from"]))
        return FetchResult(items=[item], cursor=None)


@pytest.fixture
def postbox_config(app_config):
    return {**app_config, "channels": {"postbox": {"kind": PostboxConnector.kind, "secret": SECRET}}}


@pytest.fixture
def app(postbox_config):
    app = create_app(postbox_config, connectors=[PostboxConnector])
    app.config.update(TESTING=True)
    return app


def web_modules() -> list[types.ModuleType]:
    return [importlib.import_module(f"inbox.web.{m.name}") for m in pkgutil.iter_modules(inbox.web.__path__)]


def unregistered_blueprints(app, modules) -> list[str]:
    """The modules whose blueprint `bp` is not the one `app` has under its name."""
    return [m.__name__ for m in modules
            if getattr(m, "bp", None) is not None and app.blueprints.get(m.bp.name) is not m.bp]


# Every page area and subsystem ---------------------------------------------------------------------

def test_every_module_with_a_blueprint_is_registered(app):
    assert unregistered_blueprints(app, web_modules()) == [], \
        "add the page area to inbox.web.register_page_areas"


def test_a_page_area_left_out_is_found(app):
    stray = types.ModuleType("inbox.web.stray")
    stray.bp = Blueprint("stray", "inbox.web.stray")
    assert unregistered_blueprints(app, [*web_modules(), stray]) == ["inbox.web.stray"]


def test_every_init_app_under_inbox_web_runs_once(app_config, monkeypatch):
    calls: Counter[str] = Counter()
    expected = set()
    for module in web_modules():
        original = getattr(module, "init_app", None)
        if not callable(original):
            continue
        expected.add(module.__name__)

        def recording(app, _original=original, _name=module.__name__):
            calls[_name] += 1
            _original(app)

        monkeypatch.setattr(module, "init_app", recording)
    create_app(app_config)
    assert {name for name in expected if calls[name] != 1} == set(), \
        "each init_app is called once, by inbox.web.create_app"


def test_the_factory_keeps_the_csrf_check_before_the_page_hooks(app):
    # security.init_app comes before the subsystems whose hooks read the session (auth, the second factor):
    # a forged form post is refused before any of them runs.
    hooks = [getattr(f, "__module__", "") for f in app.before_request_funcs[None]]
    csrf_at = next(i for i, f in enumerate(app.before_request_funcs[None]) if "csrf" in repr(f))
    assert csrf_at < hooks.index("inbox.web.account") < hooks.index("inbox.web.auth")


# Outside connectors passed to create_app ---------------------------------------------------------

def post(client, body: dict, secret: str = SECRET):
    return client.post("/webhooks/postbox", data=json.dumps(body).encode(), content_type="application/json",
                       headers={"X-Postbox-Secret": secret})


def test_a_passed_connector_is_offered_in_admin_channels(admin_client):  # noqa: F811
    page = admin_client.get("/admin/channels").get_data(as_text=True)
    assert f'<option value="{PostboxConnector.kind}">Postbox</option>' in page
    form = admin_client.get(f"/admin/channels/new?kind={PostboxConnector.kind}")
    assert form.status_code == 200 and 'name="setting-secret"' in form.get_data(as_text=True)


def test_a_passed_connectors_channel_takes_in_messages(app, web_store):  # noqa: F811
    client = app.test_client()
    message = {"id": "pb-1", "from": "Tina", "name": "Tina Post", "text": "Where is my parcel?"}
    assert post(client, message, secret="wrong").status_code == 403
    assert web_store.counts()["messages"] == 0
    response = post(client, message)
    assert response.status_code == 200 and response.get_json()["stored"] == 1
    [conversation] = web_store.recent_conversations()
    [stored] = web_store.conversation_messages(conversation["id"])
    assert (stored["channel"], stored["text"]) == ("postbox", "Where is my parcel?")
    # Its declared identity rule is the core's: the same person in another case is the same customer.
    post(client, {**message, "id": "pb-2", "from": "TINA", "text": "Any news?"})
    assert web_store.identity_owner("postbox", "tina") == conversation["customer_id"]
    assert web_store.counts()["customers"] == 1


def test_without_the_connector_the_channel_is_refused(postbox_config):
    with pytest.raises(ConfigError, match="no connector 'factory-postbox' is installed"):
        create_app(postbox_config)


def test_a_passed_connector_claiming_a_built_in_kind_is_an_error(app_config):
    class Impostor(PostboxConnector):
        kind = "telegram"

    with pytest.raises(connectors.RegistryError, match="'telegram' is claimed by both"):
        create_app(app_config, connectors=[Impostor])


def test_something_else_passed_as_a_connector_is_an_error(app_config):
    with pytest.raises(connectors.RegistryError, match="not a Connector subclass"):
        create_app(app_config, connectors=[object])
