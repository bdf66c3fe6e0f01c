"""Import and export of the answer library (#13) through the Flask test client, and the file formats.

Export -> import of the same file changes nothing (YAML and CSV); an edited file changes exactly
the answers it edits, each as a new version; invalid entries are refused with their position and
the rest still imports; agents without the right to edit answers get 403 on every new route; a
HEAD never imports; the parsed upload waits on the server under a token only the session knows.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re

import pytest
import yaml

from inbox import answer_transfer as transfer
from inbox.demo import load_answers
from inbox.store.answers import Answer
from inbox.store.audit import AuditFilter
from inbox.store.base import iso
from inbox.web.answers import check_answer
from tests.test_web_answers import World, post

LIBRARY = [
    # title, body, language, tags, active
    ("Where is my order?", "Hi {{customer_first_name}},\n\nyour order is on its way.\n\n{{agent_name}}", "en",
     ["order", "shipping"], True),
    ("Waar is mijn bestelling?", "Hoi {{customer_first_name}}, je bestelling is onderweg.", "nl", ["bestelling"], True),
    ("Old summer hours", "We are open until 20:00 in July.", "en", ["hours"], False),
    ("- list: starts like a formula", "=SUM(A1) is not a formula here\n- and a list item", "en", [], True),
    ("yes", "A title YAML would read as true.", "en", [], True),
    ("Opening hours", "Open 9-17.", "en", ["hours"], True),
    ("Opening hours", "The second answer with this title: 10-16 on Saturday.", "en", ["hours"], True),
]


@pytest.fixture
def world(app, frozen_clock):
    world = World(app)
    world.ids = {}
    for title, body, language, tags, active in LIBRARY:
        answer_id = world.store.answers.create(title=title, body=body, language=language, tags=tags,
                                               owner_id=world.lea["id"], now=iso(frozen_clock.now()))
        if not active:
            world.store.answers.set_active(answer_id, False, iso(frozen_clock.now()))
        world.ids.setdefault(title, answer_id)
    yield world
    world.store.close()


def library_state(store):
    return sorted((a.id, a.title, a.body, a.language, a.tags, a.active, a.version)
                  for a in store.answers.all(active=None))


def export(client, fmt="yaml", active_only=False):
    form = {"format": fmt}
    if active_only:
        form["active"] = "1"
    response = post(client, "/answers/export", form)
    assert response.status_code == 200
    return response


def upload(client, content, filename="answers.yaml"):
    data = content.encode("utf-8") if isinstance(content, str) else content
    return post(client, "/answers/import", {"file": (io.BytesIO(data), filename)},
                content_type="multipart/form-data")


def confirm(client, preview):
    token = re.search(r'name="token" value="([^"]+)"', preview.get_data(as_text=True))
    assert token, "the preview has an import button"
    return post(client, "/answers/import/confirm", {"token": token.group(1)})


def counts(page) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r'data-count="(\w+)">(\d+)<', page.get_data(as_text=True))}


def audit(store, action):
    return [json.loads(r.details) for r in store.audit_log.rows(AuditFilter(action=action))]


# Export ----------------------------------------------------------------------------------------

def test_the_yaml_export_is_the_demo_format_named_by_the_date(world, tmp_path):
    lea = world.client("lea")
    response = export(lea)
    assert 'filename="answers-2026-11-23.yaml"' in response.headers["Content-Disposition"]
    path = tmp_path / "answers.yaml"
    path.write_bytes(response.get_data())
    loaded = load_answers(path)
    assert sorted((e["title"], e["language"], e["body"], e["tags"]) for e in loaded) == \
        sorted((t, lang, b, tags) for t, b, lang, tags, _active in LIBRARY)
    assert [e for e in loaded if e.get("active") is False] == [
        {"title": "Old summer hours", "language": "en", "tags": ["hours"], "body": "We are open until 20:00 in July.",
         "active": False}]
    assert "body: |-\n" in response.get_data(as_text=True), "texts with lines stay readable blocks"
    assert audit(world.store, "answers_exported") == [{"ip": "127.0.0.1", "format": "yaml", "answers": len(LIBRARY),
                                                      "active_only": False}]


def test_the_export_can_leave_out_archived_answers_and_be_csv(world):
    lea = world.client("lea")
    response = export(lea, "csv", active_only=True)
    assert 'filename="answers-in-use-2026-11-23.csv"' in response.headers["Content-Disposition"]
    text = response.get_data(as_text=True)
    assert text.startswith("\ufefftitle,language,tags,active,body\r\n")
    assert "Old summer hours" not in text
    assert "'- list: starts like a formula" in text and "'=SUM(A1)" in text, "no formula runs in a spreadsheet"
    assert len(transfer.read_csv(text.lstrip("\ufeff"))) == len(LIBRARY) - 1


# Round trip ------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["yaml", "csv"])
def test_importing_an_export_changes_nothing(world, fmt):
    lea = world.client("lea")
    before = library_state(world.store)
    exported = export(lea, fmt).get_data()
    preview = upload(lea, exported, f"library.{fmt}")
    assert preview.status_code == 200
    assert counts(preview) == {"new": 0, "changed": 0, "unchanged": len(LIBRARY), "invalid": 0}
    page = preview.get_data(as_text=True)
    assert "Nothing to import" in page and 'name="token"' not in page
    assert library_state(world.store) == before


# An edited file --------------------------------------------------------------------------------

def test_an_edited_file_updates_exactly_the_changed_answers(world, frozen_clock):
    lea = world.client("lea")
    data = yaml.safe_load(export(lea).get_data(as_text=True))
    for entry in data["answers"]:
        if entry["title"] == "Where is my order?":
            entry["body"] = entry["body"].replace("your order is on its way.", "your order left us today.")
        if entry["title"] == "Old summer hours":
            entry["active"] = True
        if entry["title"] == "Waar is mijn bestelling?":
            entry["tags"] = ["bestelling", "status"]
    data["answers"].append({"title": "Gift cards", "language": "en", "tags": ["gift"],
                            "body": "Gift cards are valid for two years."})
    before = {a.id: a for a in world.store.answers.all(active=None)}

    preview = upload(lea, yaml.safe_dump(data, allow_unicode=True))
    assert counts(preview) == {"new": 1, "changed": 3, "unchanged": len(LIBRARY) - 3, "invalid": 0}
    page = preview.get_data(as_text=True)
    assert re.search(r'class="diff-removed">− your order is on its way\.', page)
    assert re.search(r'class="diff-added">\+ your order left us today\.', page)
    assert "bestelling → bestelling status" in page and "back in use" in page
    assert "Import 4 answers" in page
    assert library_state(world.store) == sorted(
        (a.id, a.title, a.body, a.language, a.tags, a.active, a.version) for a in before.values()), \
        "the preview changes nothing"

    frozen_clock.advance(dt.timedelta(minutes=5))
    response = confirm(lea, preview)
    assert response.status_code == 302 and response.headers["Location"].endswith("/answers")
    after = {a.id: a for a in world.store.answers.all(active=None)}
    changed = {i for i in before if (after[i].version, after[i].active) != (before[i].version, before[i].active)}
    assert changed == {world.ids["Where is my order?"], world.ids["Old summer hours"],
                       world.ids["Waar is mijn bestelling?"]}
    assert after[world.ids["Where is my order?"]].version == 2
    assert after[world.ids["Old summer hours"]].version == 1 and after[world.ids["Old summer hours"]].active
    assert after[world.ids["Waar is mijn bestelling?"]].tags == "bestelling status"
    [gift] = [a for a in after.values() if a.id not in before]
    assert (gift.title, gift.owner_id, gift.active) == ("Gift cards", world.lea["id"], True)
    versions = world.store.answers.versions(world.ids["Where is my order?"])
    assert versions[0].edited_by == world.lea["id"] and "on its way" in versions[1].body
    [entry] = audit(world.store, "answers_imported")
    assert (entry["created"], entry["updated"], entry["unchanged"], entry["invalid"]) == (1, 3, len(LIBRARY) - 3, 0)
    assert "Imported: 1 new and 3 changed answers." in lea.get("/answers").get_data(as_text=True)
    assert confirm(lea, preview).status_code == 400, "a preview imports once"
    assert len(world.store.answers.all(active=None)) == len(LIBRARY) + 1


# Invalid entries ---------------------------------------------------------------------------------

INVALID_FILE = """\
answers:
  - title: Gift cards
    language: en
    body: Gift cards are valid for two years.
  - language: en
    body: An entry without a title.
  - title: Nickname
    language: en
    body: |-
      Hi {{nickname}},
      thanks.
  - title: A title far too long %s
    language: en
    body: Long.
  - title: gift CARDS
    language: en
    body: The same title again, in other capitals.
  - just a line of text
  - title: Hostile <script>window.__pwned=1</script>
    language: en
    body: <img src=x onerror=alert(1)>
""" % ("x" * 250)


def test_invalid_entries_are_refused_with_their_position_and_the_rest_imports(world):
    lea = world.client("lea")
    preview = upload(lea, INVALID_FILE)
    assert preview.status_code == 200
    assert counts(preview) == {"new": 2, "changed": 0, "unchanged": 0, "invalid": 5}
    page = preview.get_data(as_text=True)
    rows = {int(p): row for p, row in re.findall(r'data-position="(\d+)">(.*?)</tr>', page, re.S)}
    assert "entry 2" in rows[2] and "line 5" in rows[2] and "&#39;title&#39; is missing" in rows[2]
    assert "line 7" in rows[3] and "&#39;body&#39; on line 9" in rows[3] and "{{nickname}}" in rows[3]
    assert "Use at most 200 characters." in rows[4]
    assert "the same title and language as the entry on line 2" in rows[5]
    assert "line 18" in rows[6] and "is not a set of" in rows[6]
    assert "<script>window.__pwned" not in page and "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in page
    assert "Import 2 answers" in page

    assert confirm(lea, preview).status_code == 302
    titles = {a.title: a for a in world.store.answers.all()}
    assert "Gift cards" in titles and "Nickname" not in titles and "gift CARDS" not in titles
    hostile = titles["Hostile <script>window.__pwned=1</script>"]
    assert hostile.body == "<img src=x onerror=alert(1)>", "stored as the editor stores it, escaped when shown"
    shown = lea.get(f"/answers/{hostile.id}").get_data(as_text=True)
    assert "<img src=x" not in shown and "&lt;img src=x onerror=alert(1)&gt;" in shown


@pytest.mark.parametrize(("content", "filename", "message"), [
    ("answers:\n  - title: A\n    language: en\n   body: misaligned\n", "a.yaml", "Line 4: this is not valid YAML"),
    ("title: not a list\n", "a.yml", "a list called &#39;answers:&#39;"),
    ("answers: []\n", "a.yaml", "The file holds no answers"),
    ("name,text\nA,B\n", "a.csv", "needs the columns title, language, tags, active, body"),
    ("answers:\n  - title: A\n", "a.txt", "Choose a .yaml or .csv file"),
    (b"answers:\n  - title: \xff\n", "a.yaml", "Save it as UTF-8"),
    ("answers:\n" + "  - {title: t, language: en, body: b}\n" * (transfer.MAX_ENTRIES + 1), "a.yaml",
     f"import at most {transfer.MAX_ENTRIES} at a time"),
    ("answers:\n  - title: big\n    language: en\n    body: " + "x" * transfer.MAX_FILE_BYTES + "\n", "a.yaml",
     "larger than 2 MB"),
])
def test_a_file_that_cannot_be_read_says_what_to_do(world, content, filename, message):
    lea = world.client("lea")
    before = library_state(world.store)
    response = upload(lea, content, filename)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert library_state(world.store) == before


def test_a_csv_row_reports_its_line_and_semicolons_from_excel_are_read(world):
    lea = world.client("lea")
    text = 'title;language;tags;active;body\r\nGift cards;en;gift;yes;"Two lines:\r\nvalid for two years."\r\n;en;;;No title\r\n'
    preview = upload(lea, text.encode("cp1252"), "answers.csv")
    assert counts(preview) == {"new": 1, "changed": 0, "unchanged": 0, "invalid": 1}
    row = re.search(r'data-position="2">(.*?)</tr>', preview.get_data(as_text=True), re.S).group(1)
    assert "line 4" in row and "&#39;title&#39; is missing" in row


# Who may, and how ------------------------------------------------------------------------------

def test_agents_without_answer_editing_rights_get_403_on_every_new_route(world):
    ann = world.client("ann")
    before = library_state(world.store)
    assert "/answers/export" not in ann.get("/answers").get_data(as_text=True)
    assert ann.get("/answers/import").status_code == 403
    assert upload(ann, INVALID_FILE).status_code == 403
    assert post(ann, "/answers/export", {"format": "yaml"}).status_code == 403
    assert post(ann, "/answers/import/confirm", {"token": "x" * 43}).status_code == 403
    # Nor with a preview a lead made: the token is in the lead's session, not the agent's.
    lea = world.client("lea")
    preview = upload(lea, INVALID_FILE)
    token = re.search(r'name="token" value="([^"]+)"', preview.get_data(as_text=True)).group(1)
    assert post(ann, "/answers/import/confirm", {"token": token}).status_code == 403
    assert library_state(world.store) == before
    assert audit(world.store, "answers_exported") == []


def test_every_form_needs_its_csrf_token(world):
    lea = world.client("lea")
    assert post(lea, "/answers/export", {"format": "yaml"}, token=False).status_code == 400
    preview = upload(lea, INVALID_FILE)
    token = re.search(r'name="token" value="([^"]+)"', preview.get_data(as_text=True)).group(1)
    before = library_state(world.store)
    assert post(lea, "/answers/import/confirm", {"token": token}, token=False).status_code == 400
    assert library_state(world.store) == before
    assert audit(world.store, "answers_exported") == []


def test_head_never_imports_or_exports(world):
    lea = world.client("lea")
    preview = upload(lea, INVALID_FILE)
    token = re.search(r'name="token" value="([^"]+)"', preview.get_data(as_text=True)).group(1)
    before = library_state(world.store)
    for method in ("HEAD", "OPTIONS"):
        form = {"token": token, "csrf_token": lea.token}
        assert lea.open("/answers/import/confirm", method=method, data=form).status_code in (200, 204, 405)
        assert lea.open("/answers/export", method=method, data={"format": "yaml", "csrf_token": lea.token}
                        ).status_code in (200, 204, 405)
        response = lea.open("/answers/import", method=method, content_type="multipart/form-data",
                            data={"file": (io.BytesIO(b"answers: []\n"), "a.yaml"), "csrf_token": lea.token})
        assert response.status_code in (200, 204)
    assert library_state(world.store) == before
    assert audit(world.store, "answers_exported") == [] and audit(world.store, "answers_imported") == []
    assert confirm(lea, preview).status_code == 302, "the HEADs left the preview as it was"


def test_a_stale_or_expired_preview_is_refused(world, frozen_clock):
    lea = world.client("lea")
    first = upload(lea, INVALID_FILE)
    second = upload(lea, "answers:\n  - {title: Other, language: en, body: Other text.}\n")
    response = confirm(lea, first)
    assert response.status_code == 400 and "replaced by a newer one" in response.get_data(as_text=True)
    frozen_clock.advance(transfer.PENDING_VALID + dt.timedelta(minutes=1))
    response = confirm(lea, second)
    assert response.status_code == 400 and "expired" in response.get_data(as_text=True)
    assert "Other" not in {a.title for a in world.store.answers.all()}


def test_a_library_changed_since_the_preview_is_shown_again_before_importing(world, frozen_clock):
    lea = world.client("lea")
    preview = upload(lea, "answers:\n  - {title: Opening hours, language: en, body: Open 8-18.}\n"
                          "  - {title: Gift cards, language: en, body: Valid for two years.}\n")
    assert counts(preview)["changed"] == 1
    world.store.answers.create(title="Gift cards", body="Valid for one year.", language="en", tags=[],
                               owner_id=world.ben["id"], now=iso(frozen_clock.now()))
    before = library_state(world.store)
    again = confirm(lea, preview)
    assert again.status_code == 409 and "The library changed since the preview" in again.get_data(as_text=True)
    assert counts(again) == {"new": 0, "changed": 2, "unchanged": 0, "invalid": 0}
    assert library_state(world.store) == before
    assert confirm(lea, again).status_code == 302
    assert {a.title: a.body for a in world.store.answers.all()}["Gift cards"] == "Valid for two years."


def test_an_entry_without_tags_or_active_leaves_them_as_they_are(world):
    lea = world.client("lea")
    preview = upload(lea, "answers:\n  - {title: Old summer hours, language: en, body: Open until 21:00 in July.}\n"
                          "  - {title: Where is my order?, language: en, tags: [], body: Short.}\n")
    assert counts(preview) == {"new": 0, "changed": 2, "unchanged": 0, "invalid": 0}
    assert confirm(lea, preview).status_code == 302
    summer = world.store.answers.get(world.ids["Old summer hours"])
    assert (summer.body, summer.tags, summer.active) == ("Open until 21:00 in July.", "hours", False)
    assert world.store.answers.get(world.ids["Where is my order?"]).tags == "", "an empty list clears the tags"


# The file formats and the waiting upload -------------------------------------------------------

def test_a_new_entry_marked_inactive_is_imported_archived(app):
    [entry] = transfer.read_yaml("answers:\n- {title: T, language: en, body: B, active: false}\n")
    with app.test_request_context():
        [planned] = transfer.plan_import([entry], [], check_answer)
    assert planned.status == "new" and planned.values["active"] is False


def test_csv_cells_that_look_like_formulas_come_back_as_written():
    at = "2026-01-02T03:04:05.000000Z"
    answers = [Answer(id=1, title="'quoted", body="+31 20 123", language="en", tags="", owner_id=None, version=1,
                      active=True, created_at=at, updated_at=at, owner_name=None, uses=0),
               Answer(id=2, title="@mention", body="plain", language="en", tags="a b", owner_id=None, version=1,
                      active=False, created_at=at, updated_at=at, owner_name=None, uses=0)]
    [first, second] = transfer.read_csv(transfer.export_csv(answers).lstrip("\ufeff"))
    assert first.fields == {"title": "'quoted", "language": "en", "body": "+31 20 123", "tags": "", "active": True}
    assert (second.fields["title"], second.fields["active"], second.fields["tags"]) == ("@mention", False, "a b")


def test_a_waiting_upload_is_only_for_its_agent_and_token(tmp_path):
    pending = transfer.PendingImports(tmp_path / "pending")
    now = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
    entries = transfer.read_yaml("answers:\n- {title: T, language: en, body: B}\n")
    token = pending.save(agent_id=7, filename="a.yaml", entries=entries, promised=[], now=now)
    assert pending.load(token, agent_id=7, now=now)["entries"] == entries
    assert pending.load(token, agent_id=8, now=now) is None
    assert pending.load("../../etc/passwd", agent_id=7, now=now) is None
    assert pending.load(token, agent_id=7, now=now + transfer.PENDING_VALID + dt.timedelta(seconds=1)) is None
    assert oct((tmp_path / "pending" / f"{token}.json").stat().st_mode & 0o777) == "0o600"
