"""`mainland new-connector NAME`: the start of a connector for a new channel, green from the first run.

It writes three things, for a JSON API of a common shape (messages listed after a cursor, a reply
posted, a "who am I" call) that the integrator then changes into their channel's:

- the connector (`connectors/<name>.py`, or with `--package DIR` a package of its own with its
  `mainland.connectors` entry point, like examples/mainland-echo), using only the connector API;
- its test, which runs the contract kit in fixture mode;
- the fixture folder: one folder of recorded exchanges per promise of the kit (and `shared/`),
  with which the test passes before anything is changed.

Nothing is overwritten: a bad name or an existing file stops the command with what to do instead.
"""

from __future__ import annotations

import json
import keyword
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from inbox.cli import main

NAME = re.compile(r"^[a-z][a-z0-9_]*$")
#: Module names in `connectors/` that are not connectors (the registry skips them, or they are the API).
RESERVED = frozenset({"base", "testing", "fixtures", "http"})
CHECKOUT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Names:
    """What one name becomes: the kind and module, the class, what admins see, the token's variable."""

    kind: str

    @property
    def cls(self) -> str:
        return "".join(part.capitalize() for part in self.kind.split("_")) + "Connector"

    @property
    def display(self) -> str:
        return " ".join(part.capitalize() for part in self.kind.split("_"))

    @property
    def env(self) -> str:
        return f"{self.kind.upper()}_TOKEN"

    @property
    def package(self) -> str:
        return f"mainland_{self.kind}"

    @property
    def camel(self) -> str:
        return self.cls.removesuffix("Connector")

    def fill(self, template: str, **extra: str) -> str:
        # The extra parts first: they may hold the names' own markers.
        for key, value in extra.items():
            template = template.replace(f"__{key}__", value)
        return (template.replace("__KIND__", self.kind).replace("__CLASS__", self.cls)
                .replace("__CAMEL__", self.camel).replace("__DISPLAY__", self.display).replace("__ENV__", self.env)
                .replace("__PACKAGE__", self.package))


@main.command("new-connector")
@click.argument("name")
@click.option("--package", "package_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write a package of its own into this new folder (entry point, tests, fixtures) instead "
                   "of connectors/NAME.py in this checkout.")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=CHECKOUT, show_default=False,
              help="The Mainland checkout to write into (default: the one this command runs from).")
def new_connector(name: str, package_dir: Path | None, root: Path) -> None:
    """Write connector NAME, its contract test and recorded exchanges that make the test pass."""
    names = Names(_checked_name(name))
    if package_dir is None and not (root / "connectors").is_dir():
        raise click.ClickException(f"{root} holds no connectors/ folder: pass --root with a Mainland checkout, or "
                                   "write a package of its own with --package DIR")
    files = package_files(names, package_dir) if package_dir else checkout_files(names, root)
    existing = [path for path in files if path.exists()]
    if existing:
        raise click.ClickException(
            f"{existing[0]} already exists: choose another name, or move the existing files away to start again "
            "(nothing was written)")
    for path, content in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    where = package_dir or root
    click.echo(f"wrote {len(files)} files for the {names.display} connector (kind {names.kind!r}) under {where}:")
    for path in files:
        if path.suffix == ".py" or path.name in ("pyproject.toml", "README.md"):
            click.echo(f"  {path}")
    click.echo(f"  {_fixture_root(names, package_dir, root)}/ (recorded exchanges, one folder per promise)")
    test = next(path for path in files if path.name == f"test_{names.kind}.py")
    click.echo(f"next: run `python -m pytest {test}` (it passes), then change the module to your channel's API "
               "and record its real exchanges (docs/connectors.md, \"Start a new connector\").")


def _checked_name(name: str) -> str:
    if not NAME.match(name):
        raise click.BadParameter(
            f"{name!r} is not a connector name: use lower-case letters, digits and _, starting with a letter "
            "(e.g. acme_chat)", param_hint="NAME")
    if keyword.iskeyword(name) or name in RESERVED:
        raise click.BadParameter(f"{name!r} is reserved: choose another name (e.g. {name}_chat)", param_hint="NAME")
    import connectors

    installed = connectors.discover()
    if name in installed:
        cls = installed[name]
        raise click.BadParameter(
            f"a connector of kind {name!r} is already installed ({cls.__module__}.{cls.__name__}): "
            "choose another name", param_hint="NAME")
    return name


def _fixture_root(names: Names, package_dir: Path | None, root: Path) -> Path:
    if package_dir:
        return package_dir / "tests" / "fixtures" / names.kind
    return root / "tests" / "fixtures" / "connectors" / names.kind


def checkout_files(names: Names, root: Path) -> dict[Path, str]:
    """The files of a built-in connector in the checkout at `root`."""
    files = {
        root / "connectors" / f"{names.kind}.py": names.fill(CONNECTOR),
        root / "tests" / "connectors" / f"test_{names.kind}.py": names.fill(
            TEST, IMPORT=f"connectors.{names.kind}",
            FIXTURES='Path(__file__).resolve().parent.parent / "fixtures" / "connectors" / "__KIND__"'),
    }
    return files | fixture_files(names, _fixture_root(names, None, root))


def package_files(names: Names, package_dir: Path) -> dict[Path, str]:
    """The files of a connector package of its own in `package_dir`."""
    files = {
        package_dir / "pyproject.toml": names.fill(PYPROJECT),
        package_dir / "README.md": names.fill(README),
        package_dir / names.package / "__init__.py": names.fill(CONNECTOR),
        package_dir / "tests" / f"test_{names.kind}.py": names.fill(
            TEST, IMPORT=names.package, FIXTURES='Path(__file__).resolve().parent / "fixtures" / "__KIND__"'),
    }
    return files | fixture_files(names, _fixture_root(names, package_dir, package_dir))


# The recorded exchanges --------------------------------------------------------------------------

MESSAGES = "/v1/messages"
TEXTS = ("Where is my order #1001?", "Can I still change the address?", "Kan ik mijn bestelling ruilen?",
         "Do you ship to Belgium?", "Thanks for the quick help!")


def message(n: int) -> dict[str, Any]:
    """The n-th customer message as the API lists it; every third sender gives no name (null)."""
    return {"id": f"m{n}", "conversation": f"c{n}", "from": {"id": f"u{n}", "name": None if n % 3 == 0 else f"Customer {n}"},
            "text": TEXTS[(n - 1) % len(TEXTS)], "sent_at": f"2026-11-23T09:{n:02d}:00Z"}


def listed(after: str | None, messages: list[dict[str, Any]], note: str, *, more: bool = False) -> dict[str, Any]:
    return {"note": note,
            "request": {"method": "GET", "path": MESSAGES, "query": {"after": after},
                        "headers": {"Authorization": "Bearer {{token}}"}},
            "response": {"status": 200, "json": {"messages": messages, "more": more}}}


def failed(after: str, status: int, error: str, note: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"status": status, "json": {"error": error}}
    if headers:
        response["headers"] = headers
    return {"note": note, "request": {"method": "GET", "path": MESSAGES, "query": {"after": after}},
            "response": response}


def scenarios(names: Names) -> dict[str, list[dict[str, Any]]]:
    """Per folder, the exchanges in the order the kit's promise asks for them."""
    first = [message(n) for n in range(1, 6)]
    return {
        "shared": [{
            "note": "the connection test asks who the token belongs to",
            "request": {"method": "GET", "path": "/v1/me", "headers": {"Authorization": "Bearer {{token}}"}},
            "response": {"status": 200, "json": {"id": "acct-1", "name": f"{names.display} support"}},
        }],
        "items_arrive_once_with_unique_ids": [
            listed(None, first[:3], "the first poll has no cursor; three of five messages, and more", more=True),
            listed("m3", first[3:], "the next page, after the newest id seen"),
        ],
        "oldest_first": [listed(None, first[:4], "four messages, oldest first")],
        "resumes_from_cursor_and_stores_nothing_twice": [
            listed(None, first[:3], "three messages"),
            listed("m3", [], "asked again from the saved cursor: nothing new yet"),
            listed("m3", first[3:], "the same request later: two customers wrote since"),
        ],
        "refetch_from_scratch_is_deduplicated": [
            listed(None, first[:3], "three messages"),
            listed(None, first[:3], "the cursor was lost: from the start again, the same three"),
        ],
        "malformed_item_is_quarantined_and_the_rest_arrive": [
            listed(None, [first[0], {"id": "m2", "conversation": "c2"}, first[2]], "the middle message has no sender or text"),
        ],
        "retryable_fault_keeps_the_cursor": [
            listed(None, first[:1], "one message"),
            failed("m1", 429, "rate limited", "too many requests: wait 30 seconds", {"Retry-After": "30"}),
            listed("m1", first[1:2], "after the wait, the message written meanwhile"),
            failed("m2", 503, "maintenance", "the API is down for a moment"),
            listed("m2", first[2:3], "back up: the message written before the error"),
        ],
        "reply_is_threaded_to_the_message_it_answers": [
            listed(None, first[:1], "one message"),
            {"note": "the reply goes to the customer's conversation and names the message it answers",
             "request": {"method": "POST", "path": MESSAGES, "headers": {"Authorization": "Bearer {{token}}"},
                         "json": {"conversation": "c1", "text": "Thanks, we are on it.", "reply_to": "m1"}},
             "response": {"status": 201, "json": {"id": "s1"}}},
        ],
        "no_secret_in_logs": [
            listed(None, first[:1], "one message"),
            failed("m1", 500, "internal error", "a server error: its message must not show the token"),
        ],
        "raw_parses_again_into_the_same_item": [listed(None, first[:3], "three messages, one sender without a name")],
    }


def fixture_files(names: Names, folder: Path) -> dict[Path, str]:
    files = {folder / "README.md": names.fill(FIXTURES_README)}
    for scenario, exchanges in scenarios(names).items():
        for index, exchange in enumerate(exchanges, 1):
            verb = f"{exchange['request']['method'].lower()}-{exchange['request']['path'].rsplit('/', 1)[-1]}"
            files[folder / scenario / f"{index:02d}-{verb}.json"] = json.dumps(exchange, indent=2) + "\n"
    return files


# The templates ------------------------------------------------------------------------------------

CONNECTOR = '''"""__DISPLAY__: customer messages read from the __DISPLAY__ REST API, and replies posted back.

Written by `mainland new-connector __KIND__` for an API of this shape; change the paths, parameters
and field names below to what __DISPLAY__ documents, then record its real exchanges for the test
(docs/connectors.md, "Start a new connector"):

- `GET /v1/messages?after=<id>` lists the messages after that id, oldest first, at most one page:
  `{"messages": [{"id", "conversation", "from": {"id", "name"}, "text", "sent_at"}], "more": true|false}`
  (`sent_at` in ISO 8601; `name` may be null). The first poll sends no `after`.
- `POST /v1/messages` with `{"conversation", "text", "reply_to"}` sends a reply and answers `{"id"}`.
- `GET /v1/me` answers `{"id", "name"}` for the token: the connection test.
- Every call carries `Authorization: Bearer <token>`; 401/403 mean a bad token, 429 comes with
  `Retry-After`, 5xx are passing faults.

Setup: create an API token in __DISPLAY__ and put it in `channels.<name>.token` as
{"$env": "__ENV__"}, with `api_url` the API's base URL.
Cursor: the id of the newest message returned; the API lists messages with an id after it.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from connectors.base import (
    Connector,
    IdentityRule,
    ItemError,
    Limits,
    ProbeResult,
    RetryableError,
    Setting,
    pick,
)
from connectors.http import http_for, http_probe
from inbox.models import Author, FetchResult, InboundItem, OutboundReply


class __CLASS__(Connector):
    kind = "__KIND__"
    display_name = "__DISPLAY__"
    settings = (
        Setting("token", required=True, secret=True,
                help="API token of the __DISPLAY__ account that answers customers"),
        Setting("api_url", required=True, help="Base URL of the __DISPLAY__ API, e.g. https://api.example.com"),
        Setting("timeout", default=30, help="Seconds to wait for an answer from __DISPLAY__"),
    )
    # The channel's rules for replies: set the length and formatting __DISPLAY__ documents.
    limits = Limits(max_text_length=2000, formatting="plain", supports_attachments=False)
    # How __DISPLAY__ names people: here an account id per person, matched exactly.
    identities = (IdentityRule("__KIND__"),)

    def __init__(self, name: str, config: Any, **kwargs: Any) -> None:
        super().__init__(name, config, **kwargs)
        self.api = http_for(self, self.config["api_url"], headers={"Authorization": f"Bearer {self.config['token']}"})

    def fetch(self, cursor: str | None) -> FetchResult:
        data = self.api.get_json("/v1/messages", params={"after": cursor} if cursor else {})
        listed = data.get("messages") if isinstance(data, dict) else None
        if not isinstance(listed, list):
            raise RetryableError("__DISPLAY__ answered without a list of messages")
        items, rejects = self.each(listed, self._to_item, raw_of=lambda m: json.dumps(m).encode())
        # The newest id listed, even when that message was malformed: it is in quarantine, not lost.
        ids = [m["id"] for m in listed if isinstance(m, dict) and isinstance(m.get("id"), str)]
        return FetchResult(items, ids[-1] if ids else cursor, rejects, more=bool(data.get("more")))

    def send(self, reply: OutboundReply) -> str:
        data = self.api.post_json("/v1/messages", {"conversation": reply.thread_key, "text": reply.text,
                                                   "reply_to": reply.reply_to_external_id})
        return str(pick(data, "id"))

    def parse_raw(self, raw: bytes, source_ref: str | None = None) -> InboundItem:
        try:
            return self._to_item(json.loads(raw))
        except ValueError:
            raise ItemError("not a stored __DISPLAY__ message (not JSON)") from None

    def probe(self) -> ProbeResult:
        return http_probe(self, self.api, "/v1/me", what="__DISPLAY__",
                          signed_in=lambda body: f"Signed in as {body['name']} (id {body['id']})",
                          refused="__DISPLAY__ refused the token ({status}): create a new one and paste it here")

    def close(self) -> None:
        self.api.close()

    def _to_item(self, raw: dict[str, Any]) -> InboundItem:
        sender = pick(raw, "from", type=dict)
        sent_at = pick(raw, "sent_at", type=str)
        try:
            when = dt.datetime.fromisoformat(sent_at)
        except ValueError:
            raise ItemError(f"sent_at is not an ISO 8601 time: {sent_at[:40]!r}") from None
        return InboundItem(
            channel=self.name,
            external_id=str(pick(raw, "id")),
            author=Author(handle=str(pick(sender, "id")), name=sender.get("name") or "", identity_kind="__KIND__"),
            text=pick(raw, "text", type=str),
            sent_at=when,
            thread_key=str(pick(raw, "conversation")),
            raw=json.dumps(raw).encode(),  # kept, so `parse_raw` can take it in again from quarantine
        )
'''

TEST = '''"""The __DISPLAY__ connector against recorded exchanges: the contract kit in fixture mode.

Each promise of the kit replays the exchanges in the fixture folder named after it (and those in
`shared/`); a request that no recording answers, or a recording never asked for, fails the test
and names both. Change the recordings with the connector, and record real ones from __DISPLAY__
(docs/connectors.md, "Start a new connector").
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from __IMPORT__ import __CLASS__
from connectors.testing import ConnectorContract, RecordedChannel

pytestmark = pytest.mark.server  # the recordings are served on a loopback port

FIXTURES = __FIXTURES__


class __CAMEL__Recorded(RecordedChannel):
    """The settings point at the fixture server; they also fill the recordings' {{placeholders}}."""

    def settings(self) -> dict[str, Any]:
        return {"token": "recorded-token-123", "api_url": self.server.url}

    def replies_received(self) -> list[dict[str, Any]]:
        sent = [r.json() for r in self.server.received("POST", "/v1/messages") if r.answered_by]
        return [{"text": s["text"], "in_reply_to": s["reply_to"]} for s in sent]


class Test__CAMEL__Recorded(ConnectorContract):
    connector_class = __CLASS__
    fixtures = FIXTURES
    recorded_channel = __CAMEL__Recorded

    def test_probe_names_the_account(self, channel, contract_context):
        # The connection test refuses loopback addresses unless told: allow the fixture server's.
        context = dataclasses.replace(contract_context, fetch_allow_hosts=(channel.server.host,))
        connector = __CLASS__("probe", channel.settings(), context=context)
        try:
            result = connector.probe()
        finally:
            connector.close()
        assert result.ok, result.summary
        assert result.summary == "Signed in as __DISPLAY__ support (id acct-1)"
'''

FIXTURES_README = '''# Recorded __DISPLAY__ exchanges

Replayed by the contract kit in fixture mode (`connectors/fixtures.py`; docs/connectors.md, "Start a
new connector"). `shared/` holds exchanges any test may use; every other folder is one promise of
the kit (its test name without `test_`), with the exchanges it makes, in order. Each file is one
exchange, `{"note", "request": {"method", "path", "query", "headers", "json"}, "response": {"status",
"headers", "json"}}`; a request part that is not named is not checked, `null` means "absent", and
`{{token}}` is the test's setting, so no real secret is ever written here.

They were written by `mainland new-connector __KIND__` for the example API in the connector's
docstring. Replace them with __DISPLAY__'s real answers, recorded with the token replaced by
`{{token}}` and personal data by made-up data.
'''

PYPROJECT = '''[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "mainland-__KIND__"
version = "0.1.0"
description = "A Mainland connector for __DISPLAY__."
requires-python = ">=3.11"
dependencies = []   # Mainland itself is the host; it is not a dependency to install from an index

[project.entry-points."mainland.connectors"]
__KIND__ = "__PACKAGE__:__CLASS__"

[tool.setuptools]
packages = ["__PACKAGE__"]

[tool.pytest.ini_options]
markers = ["server: starts a loopback server (the fixture server of recorded exchanges)"]
'''

README = '''# mainland-__KIND__: a Mainland connector for __DISPLAY__

`pip install .` into Mainland's environment and a channel of `kind: __KIND__` works like a built-in
(found through the `mainland.connectors` entry point). The connector is `__PACKAGE__/__init__.py`;
its test (`tests/test___KIND__.py`) runs Mainland's contract kit against the recorded exchanges in
`tests/fixtures/__KIND__/`: run it from here with Mainland importable, e.g.
`PYTHONPATH=/path/to/mainland python -m pytest tests`. See Mainland's docs/connectors.md.
'''
