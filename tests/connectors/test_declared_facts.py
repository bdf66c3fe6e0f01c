"""A connector declares its channel's facts, and the core reads them (#15).

`TallyConnector` stands for a connector shipped outside this repository: registered only through
`Mainland(..., extra_connectors=[...])`, with facts no built-in has (its length counts UTF-8 bytes,
its authors are "tally" identities written `~Name` in any case, its surveys are a link though it is
a chat, its pushes come through pages of its own). The composer's length check, identity matching,
surveys, the webhook endpoint and health each behave by those declarations, with no line of the
core naming it. The last test fails when `inbox/` (or a template) branches on a built-in kind again.
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
import re
import tokenize
from pathlib import Path

import pytest

import connectors
from connectors.base import Connector, IdentityRule, Limits, PermanentError
from inbox import csat, health, identity, sendability
from inbox.config import from_mapping
from inbox.models import Author, FetchResult, InboundItem
from inbox.outbox import queue_reply, send_due
from inbox.runtime import Mainland
from inbox.store.base import iso

T0 = dt.datetime(2026, 3, 4, 9, 0, tzinfo=dt.UTC)
M = dt.timedelta(minutes=1)
_IDS = itertools.count(1)
ROOT = Path(__file__).resolve().parents[2]


def utf8_bytes(text: str) -> int:
    return len(text.encode("utf-8"))


def tally_handle(value: str, region: str | None = None) -> str:
    """Tally writes handles as `~Name`; the network ignores case and the tilde."""
    return value.strip().lstrip("~").casefold()


class TallyConnector(Connector):
    """A chat network with unusual rules, as an outside package would ship it."""

    kind = "facts-tally"
    display_name = "Tally"
    limits = Limits(max_text_length=20, supports_attachments=False)
    push_only = True
    identities = (IdentityRule("tally", normalize=tally_handle, contacts_in_text=False),)
    measure_text = staticmethod(utf8_bytes)
    survey_style = "link"
    own_endpoint = True
    sent: list = []

    def fetch(self, cursor):
        return FetchResult(items=[], cursor=cursor)

    def send(self, reply):
        TallyConnector.sent.append(reply)
        return f"tally-{len(TallyConnector.sent)}"

    def verify_webhook(self, request):
        raise PermanentError("never through /webhooks/")

    def parse_webhook(self, request):
        return FetchResult(items=[], cursor=None)


class HookedTally(TallyConnector):
    """The same channel taking pushes at /webhooks/ instead: the contrast that shows the declaration counts."""

    kind = "facts-tally-hooked"
    own_endpoint = False


@pytest.fixture
def mainland(tmp_path):
    TallyConnector.sent = []
    config = from_mapping({
        "database": str(tmp_path / "m.db"), "mail_domain": "mainland.test", "base_url": "http://mainland.test",
        "channels": {"tally": {"kind": TallyConnector.kind}, "hooked": {"kind": HookedTally.kind}},
        "service_levels": {"policy": {"first_response": {"desired": "30m", "adequate": "2h"}},
                           "csat": {"delay": "10m"}},
    }, base=tmp_path)
    return Mainland(config, extra_connectors=[TallyConnector, HookedTally])


@pytest.fixture
def store(mainland):
    store = mainland.open_store(migrate=True)
    yield store
    store.close()


def ingest(mainland, store, *, handle="~Tina.Tally", thread="t-1", when=T0, channel="tally"):
    ingestor = mainland.ingestor(store)
    ingestor.now = lambda: when
    item = InboundItem(channel=channel, external_id=f"in-{next(_IDS)}",
                       author=Author(handle, "Tina Tally", identity_kind="tally"), text="Where is my parcel?",
                       thread_key=thread, sent_at=when)
    report = ingestor.ingest(channel, FetchResult(items=[item], cursor=None), save_cursor=False)
    return report.new_conversations[0] if report.new_conversations else None


def test_the_composer_counts_length_the_way_the_channel_declares(mainland, store):
    cid = ingest(mainland, store)
    conversation = store.conversation(cid)
    # 11 characters but 22 bytes: over Tally's 20, though `len` would let it through.
    refused = sendability.decide(mainland, store, conversation, kind=sendability.AGENT_REPLY, text="é" * 11, now=T0)
    assert (refused.allowed, refused.code, refused.params) == (False, "too_long", {"max": 20, "n": 22})
    fits = sendability.decide(mainland, store, conversation, kind=sendability.AGENT_REPLY, text="a" * 20, now=T0)
    assert fits.allowed


def test_identities_match_by_the_declared_rule(mainland, store):
    first = ingest(mainland, store, handle="~Tina.Tally", thread="t-1")
    second = ingest(mainland, store, handle="  TINA.tally", thread="t-2", when=T0 + M)
    other = ingest(mainland, store, handle="~someone.else", thread="t-3", when=T0 + 2 * M)
    customer = store.conversation(first)["customer_id"]
    assert store.conversation(second)["customer_id"] == customer, "the same handle in another case and without ~"
    assert store.conversation(other)["customer_id"] != customer
    assert store.identity_owner("tally", "tina.tally") == customer
    assert "tally" in identity.single_kinds() and "tally" not in identity.chat_kinds()


def test_surveys_go_out_in_the_declared_style(mainland, store):
    cid = ingest(mainland, store)
    agent = store.create_agent(email="ann@example.org", name="Ann Agent", role="agent", password_hash=None)
    queue_reply(mainland, store, cid, "On its way.", agent={"id": agent, "name": "Ann Agent"}, now=T0 + 5 * M)
    send_due(mainland, store, now=T0 + 5 * M)
    with store.write():
        store.execute("UPDATE conversations SET status = 'resolved', updated_at = ? WHERE id = ?",
                      (iso(T0 + 10 * M), cid))
    assert csat.send_due_surveys(mainland, store, now=T0 + 25 * M).asked == 1
    send_due(mainland, store, now=T0 + 26 * M)
    [survey] = [r for r in TallyConnector.sent if "How did we do?" in r.text]
    assert re.search(r"http://mainland\.test/survey/\S+", survey.text), "a link, not 'reply with a number'"


def test_health_reads_the_declared_endpoint_and_webhooks(mainland, store):
    ingest(mainland, store, when=T0)
    report = {c.name: c for c in health.channel_report(mainland, store, now=T0 + 5 * M)}
    assert not report["tally"].webhooks and report["hooked"].webhooks
    # A channel with its own pages records no polls or webhooks: its last message is its last sign of life.
    assert report["tally"].last_success_at == iso(T0)
    assert report["hooked"].last_success_at is None


def test_the_webhook_endpoint_refuses_a_channel_with_its_own_pages(app, app_config):
    config = {**app_config, "channels": {"tally": {"kind": TallyConnector.kind},
                                         "hooked": {"kind": HookedTally.kind}}}
    app.extensions["mainland"] = Mainland(from_mapping(config, base=app.extensions["mainland"].config.data_dir),
                                          extra_connectors=[TallyConnector, HookedTally])
    client = app.test_client()
    assert client.post("/webhooks/tally", data=b"{}", content_type="application/json").status_code == 404
    # The same connector without `own_endpoint` reaches verification (which refuses this unsigned body).
    assert client.post("/webhooks/hooked", data=b"{}", content_type="application/json").status_code != 404


# No kind tables come back ----------------------------------------------------------------------

#: String literals naming a built-in kind that are not a channel fact, per file, with why.
ALLOWED = {
    ("inbox/charts.py", "x"): "matplotlib's x axis, not the X network",
    ("inbox/web/forms.py", "webform"): "the web form's own pages keep their connector under flask.g['webform']",
    ("inbox/commands/demo.py", "webform"): "the demo prints the address of its web forms' own pages",
    ("inbox/customers.py", "api"): "a claim's source 'api' (a record written through the REST API), not the API "
                                   "channel",
    ("inbox/web/api.py", "api"): "the REST API's blueprint name and its claims' source, not the API channel",
    ("inbox/digest.py", "imap"): "the digest borrows an IMAP channel's SMTP settings by their names (digest.channel)",
    ("inbox/csat.py", "chat"): "the survey style 'chat' (a numbered question in the conversation), not the chat channel",
    ("inbox/web/service_admin.py", "chat"): "the survey style 'chat' offered per channel, not the chat channel",
    ("inbox/web/chat.py", "chat"): "the chat widget's own pages: their blueprint and flask.g['chat'], as forms.py",
    ("inbox/web/service_admin.py", "imap"): "the digest's page offers the channels whose SMTP settings the digest "
                                            "can borrow, the same rule as inbox/digest.py",
}


def _python_literals(path: Path) -> list[tuple[int, str]]:
    """Every plain string literal in a Python file, with its line (docstrings and comments are not code)."""
    found = []
    for token in tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline):
        if token.type == tokenize.STRING and re.fullmatch(r"[rbuRBU]?(['\"])[^'\"]*\1", token.string):
            found.append((token.start[0], token.string[1:-1] if token.string[0] in "'\"" else token.string[2:-1]))
    return found


def _template_literals(path: Path) -> list[tuple[int, str]]:
    """String literals inside Jinja expressions and statements of a template."""
    found = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        for block in re.findall(r"\{[{%](.*?)[}%]\}", line):
            found += [(number, m.group(2)) for m in re.finditer(r"(['\"])([^'\"]*)\1", block)]
    return found


def kind_branches(root: Path) -> list[str]:
    """`file:line: "kind"` for every literal naming a built-in connector kind, outside the allow-list."""
    kinds = set(connectors.discover(include_entry_points=False))
    hits = []
    files = [(p, _python_literals) for p in sorted((root / "inbox").rglob("*.py"))]
    files += [(p, _template_literals) for p in sorted((root / "templates").rglob("*.html"))]
    for path, literals in files:
        relative = path.relative_to(root).as_posix()
        if relative.startswith("inbox/translations/"):
            continue
        for line, text in literals(path):
            if text in kinds and (relative, text) not in ALLOWED:
                hits.append(f"{relative}:{line}: {text!r}")
    return hits


def test_the_core_names_no_built_in_channel_kind():
    hits = kind_branches(ROOT)
    assert hits == [], ("the core names a channel kind; declare the fact on the connector instead "
                        "(docs/connectors.md) or, if it is no channel fact, allow-list it with why:\n"
                        + "\n".join(hits))


def test_the_kind_scan_finds_a_kind_table(tmp_path):
    # The scan must be able to fail: the survey table this issue removed is found again.
    (tmp_path / "inbox").mkdir()
    (tmp_path / "templates").mkdir()
    (tmp_path / "inbox" / "csat.py").write_text('EMAIL_KINDS = frozenset({"imap", "webform"})\n')
    (tmp_path / "templates" / "t.html").write_text("{% if channel.kind == 'bluesky' %}B{% endif %}\n")
    assert kind_branches(tmp_path) == ["inbox/csat.py:1: 'imap'", "inbox/csat.py:1: 'webform'",
                                       "templates/t.html:1: 'bluesky'"]
