"""Connectors' words in the admin's language: marked with `N_` in the connector, translated by the page.

The Dutch pages themselves are checked in tests/test_channels_admin.py (a Telegram channel's form and
connection test); here: every built-in marks its words, and a summary's values survive translation.
"""

from __future__ import annotations

import ast
import pathlib

from connectors import discover
from connectors._labels import SETTING_LABELS
from connectors.base import N_, Phrase, Setting
from inbox.i18n import gettext
from inbox.web.channels_admin import _translated
from tests import python_source

ROOT = pathlib.Path(__file__).resolve().parents[1]
#: The built-in connectors and their shared parts (the contract kit has no words for admins).
CONNECTOR_FILES = sorted(p for p in (ROOT / "connectors").glob("*.py") if p.name != "testing.py")

DUTCH = {
    "Signed in as @{username} (id {id})": "Ingelogd als @{username} (id {id})",
    "{imap}; {smtp}": "{imap}; {smtp}",
    "SMTP: accepted the sign-in": "SMTP: inloggen geaccepteerd",
}


def _is_marked(node: ast.expr) -> bool:
    if isinstance(node, ast.IfExp):  # N_("... 1 message") if count == 1 else N_("... {count} messages")
        return _is_marked(node.body) and _is_marked(node.orelse)
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "N_" \
        and len(node.args) == 1 and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)


def _calls(source: str, name: str):
    for node in ast.walk(python_source.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name:
            yield node


def unmarked_settings(source: str, filename: str) -> list[str]:
    """`help=` and `label=` arguments of `Setting(...)` calls that are not one `N_("...")`."""
    return [f"{filename}:{kw.value.lineno}: {kw.arg}" for call in _calls(source, "Setting")
            for kw in call.keywords if kw.arg in ("help", "label") and not _is_marked(kw.value)]


def unmarked_summaries(source: str, filename: str) -> list[str]:
    """Connection-test summaries that cannot be translated: a `ProbeResult(...)` built from plain text (use
    `ProbeResult.said`), or a `Phrase`/`ProbeResult.said` whose template is not one `N_("...")`."""
    hits = [f"{filename}:{call.lineno}: ProbeResult(...)" for call in _calls(source, "ProbeResult")]
    for node in ast.walk(python_source.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        said = isinstance(node.func, ast.Attribute) and node.func.attr == "said"
        phrase = isinstance(node.func, ast.Name) and node.func.id == "Phrase"
        template = node.args[1] if said and len(node.args) > 1 else node.args[0] if phrase and node.args else None
        # The shared part passes on templates it was given (a connector's marked `refused`).
        passed_on = filename == "_probe.py" and isinstance(template, ast.Name)
        if template is not None and not _is_marked(template) and not passed_on:
            hits.append(f"{filename}:{node.lineno}: template")
    return hits


def test_every_built_in_setting_help_and_label_is_marked_for_translation():
    hits = [hit for path in CONNECTOR_FILES for hit in unmarked_settings(path.read_text(), path.name)]
    assert hits == [], "wrap these in N_(...) so that pybabel extracts them:\n" + "\n".join(hits)


def test_every_built_in_connection_test_summary_is_a_marked_template():
    files = [p for p in CONNECTOR_FILES if p.name != "base.py"]  # base.py defines ProbeResult itself
    hits = [hit for path in files for hit in unmarked_summaries(path.read_text(), path.name)]
    assert hits == [], "build these with ProbeResult.said(ok, N_(...), values) or Phrase(N_(...), values):\n" \
        + "\n".join(hits)


def test_the_checks_find_unmarked_words():
    source = ('Setting("token", help="The token.")\nSetting("mode", label=N_("Mode"), help=N_("How."))\n'
              'ProbeResult(True, "Signed in")\nPhrase(f"Signed in as {name}", {})\n'
              'ProbeResult.said(True, N_("Fine"))\nProbeResult.said(True, N_("1") if n == 1 else "{n}")\n')
    assert unmarked_settings(source, "acme.py") == ["acme.py:1: help"]
    assert unmarked_summaries(source, "acme.py") == ["acme.py:3: ProbeResult(...)", "acme.py:4: template",
                                                         "acme.py:6: template"]


def unmarked_kind_names(source: str, filename: str) -> list[str]:
    """A connector class's `display_name = ...` that is not one `N_("...")` (the admin pages show it)."""
    return [f"{filename}:{node.lineno}: display_name" for node in ast.walk(python_source.parse(source))
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "display_name"
                                                    for t in node.targets) and not _is_marked(node.value)]


def test_every_built_in_kind_name_is_marked_for_translation():
    hits = [hit for path in CONNECTOR_FILES for hit in unmarked_kind_names(path.read_text(), path.name)]
    assert hits == [], "write display_name = N_(\"...\") so that the channel pages show it translated:\n" \
        + "\n".join(hits)
    assert unmarked_kind_names('class A:\n    display_name = "Acme"\nclass B:\n    display_name = N_("B")\n',
                               "acme.py") == ["acme.py:2: display_name"]


def test_every_built_in_label_made_from_a_key_is_marked():
    derived = {s.shown_label for cls in discover(include_entry_points=False).values() for s in cls.settings
               if not s.label}
    assert derived - set(SETTING_LABELS) == set(), "add these to connectors/_labels.py (or give a label=N_(...))"


def test_a_label_is_the_declared_one_or_the_key_as_words():
    assert Setting("verify_token").shown_label == "Verify token"
    assert Setting("app_secret", label=N_("Meta app secret")).shown_label == "Meta app secret"
    assert N_("Signed in") == "Signed in"


def test_a_phrase_is_translated_before_its_values_go_in():
    phrase = Phrase(N_("Signed in as @{username} (id {id})"), {"username": "acme_support", "id": "1234"})
    assert str(phrase) == "Signed in as @acme_support (id 1234)"
    assert phrase.render(lambda text: DUTCH.get(text, text)) == "Ingelogd als @acme_support (id 1234)"


def test_a_value_that_looks_like_a_placeholder_stays_as_it_came():
    phrase = Phrase(N_("Signed in as @{username} (id {id})"), {"username": "{id}", "id": "7"})
    assert phrase.render(lambda text: DUTCH.get(text, text)) == "Ingelogd als @{id} (id 7)"


def test_a_translation_that_lost_a_placeholder_falls_back_to_english():
    phrase = Phrase(N_("Signed in as @{username} (id {id})"), {"username": "acme_support", "id": "1234"})
    assert phrase.render(lambda text: "Ingelogd als @{naam}") == "Signed in as @acme_support (id 1234)"


def test_a_phrase_inside_a_phrase_is_translated_too():
    imap = Phrase(N_("Signed in as @{username} (id {id})"), {"username": "support", "id": "9"})
    both = Phrase(N_("{imap}; {smtp}"), {"imap": imap, "smtp": Phrase(N_("SMTP: accepted the sign-in"))})
    assert both.render(lambda text: DUTCH.get(text, text)) == "Ingelogd als @support (id 9); SMTP: inloggen geaccepteerd"
    assert str(both) == "Signed in as @support (id 9); SMTP: accepted the sign-in"


def test_redaction_reaches_the_values():
    phrase = Phrase(N_("Could not reach {what}: {error}"), {"what": "Acme", "error": "token s3cret refused"})
    hidden = phrase.redacted(lambda text: text.replace("s3cret", "***"))
    assert str(hidden) == "Could not reach Acme: token *** refused"


def test_unmarked_text_and_empty_help_show_as_written_in_dutch(app):
    with app.test_request_context(headers={"Accept-Language": "nl"}):
        assert gettext("Settings") != "Settings", "the Dutch catalog is in force"
        phrase = Phrase("Acme answers ({status})", {"status": 200})  # a third-party connector's own words
        assert phrase.render(_translated) == "Acme answers (200)"
        assert _translated("") == "", "gettext('') is the catalog's header, not an empty help text"
