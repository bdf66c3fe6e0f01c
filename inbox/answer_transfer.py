"""Import and export of the answer library (#13): a YAML file in the format of `demo/answers.yaml`
(what `inbox.demo.load_answers` reads), and a CSV file with one row per answer for spreadsheets.

Export writes each answer as `title`, `language`, `tags` and `body`, plus `active: false` for an
archived one (a key `load_answers` ignores), so exporting and importing the file again changes
nothing. On import, an entry without `tags` or `active` leaves those of its answer as they are. Import runs in two steps: `read_upload` turns the file into `RawEntry`s (file-level
problems raise `TransferError`, worded for the person importing), `plan_import` checks each entry
with the editor's own checks and compares it with the library, and the caller applies the plan
after the person confirmed it. An entry is matched to an answer by its title (case folded) and
language, as the demo's seeder does: the answers table has no other identity that survives an
export to another installation. When the library already holds the same title twice in a
language, the n-th entry with that title meets the n-th answer (oldest first), so even such a
library round-trips; more entries than answers with one title are refused as repeats.

Between the two steps the parsed entries wait on the server (`PendingImports`), in a file named
by a random token that only the importer's session knows; confirming reads them back and checks
them again against the library as it is then.
"""

from __future__ import annotations

import csv
import datetime as dt
import difflib
import io
import json
import os
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from inbox.i18n import gettext as _
from inbox.store.answers import Answer

#: Largest file taken in, and the most entries in one file.
MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_ENTRIES = 2000
#: The columns of the CSV export, in order; an import needs the first, second and last.
CSV_COLUMNS = ("title", "language", "tags", "active", "body")
REQUIRED_CSV_COLUMNS = ("title", "language", "body")
#: How long a preview can be confirmed.
PENDING_VALID = dt.timedelta(hours=1)
#: A spreadsheet would run a cell starting with one of these as a formula; the export puts a quote in
#: front (as the reports do), the import takes it off again. The quote itself is in the list, so
#: a text that starts with a quote comes back unchanged too.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")
TRUE_WORDS = {"yes", "true", "1", "ja", "y", "j"}
FALSE_WORDS = {"no", "false", "0", "nee", "n"}

Check = Callable[[Mapping[str, Any]], tuple[dict[str, Any], dict[str, str]]]


class TransferError(Exception):
    """The file as a whole cannot be read; the message says what to do (in the user's language)."""


@dataclass
class RawEntry:
    """One entry of an uploaded file, before the editor's checks: where it is and what it says."""

    position: int
    line: int
    fields: dict[str, Any]
    problems: list[str] = field(default_factory=list)
    field_lines: dict[str, int] = field(default_factory=dict)


@dataclass
class PlannedEntry:
    """What importing one entry does: `new`, `changed`, `unchanged` or `invalid` (with the reasons)."""

    position: int
    line: int
    status: str
    values: dict[str, Any]
    answer_id: int | None = None
    version: int | None = None
    fields: list[str] = field(default_factory=list)
    before: dict[str, Any] = field(default_factory=dict)
    lines: list[dict[str, str]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


# Export ------------------------------------------------------------------------------------------

class _ExportDumper(yaml.SafeDumper):
    """Multi-line texts as literal blocks (`|-`), as in demo/answers.yaml, so the file stays readable."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_ExportDumper.add_representer(str, _text)


def export_entries(answers: Iterable[Answer]) -> list[dict[str, Any]]:
    """The library as file entries, ordered so that answers with the same title keep their order."""
    ordered = sorted(answers, key=lambda a: (a.title.casefold(), a.language, a.id))
    entries = []
    for answer in ordered:
        entry: dict[str, Any] = {"title": answer.title, "language": answer.language,
                                 "tags": (answer.tags or "").split(), "body": answer.body}
        if not answer.active:
            entry["active"] = False
        entries.append(entry)
    return entries


def export_yaml(answers: Iterable[Answer], now: dt.datetime) -> str:
    header = (f"# Mainland answer library, exported {now:%Y-%m-%d %H:%M} UTC.\n"
              "# One entry per answer and language; import it on /answers/import (docs/answers.md).\n\n")
    body = yaml.dump({"answers": export_entries(answers)}, Dumper=_ExportDumper, allow_unicode=True,
                     sort_keys=False, width=4096, default_flow_style=False)
    return header + body


def export_csv(answers: Iterable[Answer]) -> str:
    """UTF-8 with a byte-order mark, so Excel reads the accents right."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for entry in export_entries(answers):
        writer.writerow([_cell(entry["title"]), entry["language"], " ".join(entry["tags"]),
                         "no" if entry.get("active") is False else "yes", _cell(entry["body"])])
    return "\ufeff" + buffer.getvalue()


def _cell(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _uncell(value: str) -> str:
    return value[1:] if value.startswith("'") and value[1:].startswith(FORMULA_STARTS) else value


def export_filename(kind: str, now: dt.datetime, *, active_only: bool) -> str:
    scope = "answers-in-use" if active_only else "answers"
    return f"{scope}-{now:%Y-%m-%d}.{kind}"


# Reading a file ---------------------------------------------------------------------------------

def read_upload(filename: str, data: bytes) -> list[RawEntry]:
    """The entries of an uploaded YAML or CSV file (told apart by the file name's ending)."""
    if len(data) > MAX_FILE_BYTES:
        raise TransferError(_("The file is larger than %(n)d MB. Split it into smaller files and import them "
                              "one after the other.", n=MAX_FILE_BYTES // (1024 * 1024)))
    kind = Path(filename.lower()).suffix
    if kind in (".yaml", ".yml"):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise TransferError(_("The file is not UTF-8 text. Save it as UTF-8 and upload it again.")) from None
        entries = read_yaml(text)
    elif kind == ".csv":
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = data.decode("cp1252", errors="replace")  # what Excel writes unless told otherwise
        entries = read_csv(text)
    else:
        raise TransferError(_("Choose a .yaml or .csv file, such as one exported from this library."))
    if not entries:
        raise TransferError(_("The file holds no answers. An export from the answer library shows the format."))
    if len(entries) > MAX_ENTRIES:
        raise TransferError(_("The file holds %(n)d answers; import at most %(max)d at a time (split the file).",
                              n=len(entries), max=MAX_ENTRIES))
    return entries


def read_yaml(text: str) -> list[RawEntry]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise TransferError(_("Line %(line)d: this is not valid YAML (%(problem)s). Check the indentation and "
                              "the quotes on that line and the one before it.",
                              line=(mark.line + 1) if mark else 1, problem=exc.problem or exc.context)) from None
    except yaml.YAMLError as exc:
        raise TransferError(_("This is not valid YAML (%(problem)s).", problem=str(exc).splitlines()[0])) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict) or not isinstance(data.get("answers"), list):
        raise TransferError(_("The file needs a list called 'answers:' at the top, as in an export of the "
                              "library."))
    nodes = _entry_nodes(root)
    entries = []
    for index, item in enumerate(data["answers"]):
        node = nodes[index] if len(nodes) == len(data["answers"]) else None
        line = node.start_mark.line + 1 if node is not None else 0
        lines = {}
        if isinstance(node, yaml.MappingNode):
            lines = {str(k.value): v.start_mark.line + 1 for k, v in node.value if isinstance(k, yaml.ScalarNode)}
        entries.append(_raw_entry(index + 1, line, item, lines, from_csv=False))
    return entries


def _entry_nodes(root: yaml.Node) -> list[yaml.Node]:
    """The nodes of the `answers` list, for the line each entry starts on."""
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            if isinstance(key, yaml.ScalarNode) and key.value == "answers" and isinstance(value, yaml.SequenceNode):
                return list(value.value)
    return []


def read_csv(text: str) -> list[RawEntry]:
    first_line = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first_line.count)  # Excel uses ';' where ',' is the decimal mark
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [h.strip().lower() for h in next(reader, [])]
        missing = [c for c in REQUIRED_CSV_COLUMNS if c not in header]
        if missing:
            raise TransferError(_("The CSV file needs the columns %(needed)s in its first line; it has: %(found)s.",
                                  needed=", ".join(CSV_COLUMNS), found=", ".join(h for h in header if h) or "-"))
        entries: list[RawEntry] = []
        line = reader.line_num + 1
        for row in reader:
            if any(cell.strip() for cell in row):
                cells = {name: _uncell(row[i]) for i, name in enumerate(header) if name in CSV_COLUMNS and i < len(row)}
                entries.append(_raw_entry(len(entries) + 1, line, cells, {}, from_csv=True))
            line = reader.line_num + 1
    except csv.Error as exc:
        raise TransferError(_("Line %(line)d: the CSV file cannot be read (%(problem)s). Save it again from the "
                              "spreadsheet as CSV.", line=reader.line_num, problem=str(exc))) from None
    return entries


def _raw_entry(position: int, line: int, item: Any, lines: dict[str, int], *, from_csv: bool) -> RawEntry:
    """Check the types of one entry's fields; what they say is checked later, by the editor's checks."""
    entry = RawEntry(position=position, line=line, fields={}, field_lines=lines)
    if not isinstance(item, dict):
        entry.problems.append(_("this entry is not a set of 'title:', 'language:', 'tags:' and 'body:' lines"))
        return entry
    for name in ("title", "language", "body"):
        value = item.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            entry.problems.append(_("'%(field)s' is missing", field=name))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and name != "language":
            entry.fields[name] = str(value)
        elif not isinstance(value, str):
            entry.problems.append(_("'%(field)s' must be text", field=name))
        else:
            entry.fields[name] = value
    tags = item.get("tags")
    if "tags" not in item:
        entry.fields["tags"] = None  # an answer's tags stay as they are; a new answer has none
    elif tags is None or isinstance(tags, str):
        entry.fields["tags"] = tags or ""
    elif isinstance(tags, list) and all(isinstance(t, (str, int, float)) for t in tags):
        entry.fields["tags"] = [str(t) for t in tags]
    else:
        entry.problems.append(_("'tags' must be a list of words"))
    active = item.get("active")
    if from_csv and isinstance(active, str):
        word = active.strip().lower()
        active = True if word in TRUE_WORDS else False if word in FALSE_WORDS else None if not word else active
    if active is None or isinstance(active, bool):
        entry.fields["active"] = active
    else:
        entry.problems.append(_("'active' must be yes or no"))
    return entry


# Comparing with the library -----------------------------------------------------------------------

def key_of(title: str, language: str) -> tuple[str, str]:
    """How an entry finds its answer: the title, case folded, and the language."""
    return title.casefold(), language


def plan_import(entries: Iterable[RawEntry], library: Iterable[Answer], check: Check) -> list[PlannedEntry]:
    """What importing each entry would do, in file order. `check` is the editor's check of an answer."""
    answers_by_key: dict[tuple[str, str], list[Answer]] = {}
    for answer in sorted(library, key=lambda a: a.id):
        answers_by_key.setdefault(key_of(answer.title, answer.language), []).append(answer)
    seen: dict[tuple[str, str], list[int]] = {}
    planned = []
    for entry in entries:
        values, errors = check(entry.fields) if not entry.problems else ({}, {})
        values["active"] = entry.fields.get("active")
        reasons = list(entry.problems) + [_field_problem(entry, name, message) for name, message in errors.items()]
        if reasons:
            shown = {name: str(entry.fields.get(name) or "") for name in ("title", "language")}
            planned.append(PlannedEntry(entry.position, entry.line, "invalid", shown, reasons=reasons))
            continue
        key = key_of(values["title"], values["language"])
        earlier = seen.setdefault(key, [])
        candidates = answers_by_key.get(key, [])
        if len(earlier) >= max(len(candidates), 1):
            planned.append(PlannedEntry(entry.position, entry.line, "invalid", values, reasons=[
                _("the same title and language as the entry on line %(line)d: an answer's title must be unique in "
                  "its language", line=earlier[0])]))
            continue
        match = candidates[len(earlier)] if candidates else None
        earlier.append(entry.line)
        planned.append(_compare(entry, values, match))
    return planned


def _field_problem(entry: RawEntry, name: str, message: str) -> str:
    line = entry.field_lines.get(name)
    if line and line != entry.line:
        return _("'%(field)s' on line %(line)d: %(problem)s", field=name, line=line, problem=message)
    return _("'%(field)s': %(problem)s", field=name, problem=message)


def _compare(entry: RawEntry, values: dict[str, Any], answer: Answer | None) -> PlannedEntry:
    if answer is None:
        return PlannedEntry(entry.position, entry.line, "new", values)
    stored = {"title": answer.title, "tags": answer.tags or "", "active": answer.active}
    if entry.fields.get("tags") is None:
        values["tags"] = stored["tags"].split()
    incoming = {"title": values["title"], "tags": " ".join(values["tags"]), "active": values["active"]}
    fields = [name for name in ("title", "tags") if stored[name] != incoming[name]]
    if incoming["active"] is not None and incoming["active"] != stored["active"]:
        fields.append("active")
    lines = body_changes(answer.body, values["body"])
    if lines:
        fields.append("body")
    return PlannedEntry(entry.position, entry.line, "changed" if fields else "unchanged", values,
                        answer_id=answer.id, version=answer.version, fields=fields, before=stored, lines=lines)


def body_changes(older: str, newer: str) -> list[dict[str, str]]:
    """The lines removed and added (with one line around), as the answer's page shows an edit."""
    lines = []
    for line in difflib.unified_diff(older.splitlines(), newer.splitlines(), lineterm="", n=1):
        if line.startswith(("---", "+++", "@@")):
            continue
        lines.append({"kind": {"+": "added", "-": "removed"}.get(line[:1], "same"), "text": line[1:]})
    if not lines and older != newer:  # only line endings or a last newline differ
        lines.append({"kind": "added", "text": newer.splitlines()[-1] if newer else ""})
    return lines


def counts(plan: Iterable[PlannedEntry]) -> dict[str, int]:
    result = dict.fromkeys(("new", "changed", "unchanged", "invalid"), 0)
    for entry in plan:
        result[entry.status] += 1
    return result


def fingerprint(plan: Iterable[PlannedEntry]) -> list[list[Any]]:
    """What a preview promised: confirming refuses when the library has changed it since."""
    return [[p.position, p.status, p.answer_id, p.version] for p in plan]


# Waiting between preview and confirmation ------------------------------------------------------

TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{32,64}")


class PendingImports:
    """Parsed uploads waiting for confirmation, one JSON file each under `directory`, named by a
    random token. Only the importer's session holds the token; a file is good for `PENDING_VALID`
    and for the agent who uploaded it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def save(self, *, agent_id: int, filename: str, entries: list[RawEntry], promised: list[list[Any]],
             now: dt.datetime) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._forget_expired(now)
        token = secrets.token_urlsafe(32)
        payload = {"agent_id": agent_id, "saved_at": now.timestamp(), "filename": filename,
                   "entries": [asdict(e) for e in entries], "promised": promised}
        path = self._path(token)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(payload, handle)
        return token

    def load(self, token: str, *, agent_id: int, now: dt.datetime) -> dict[str, Any] | None:
        """The waiting upload, or None when the token is unknown, expired or someone else's."""
        if not TOKEN_PATTERN.fullmatch(token or ""):
            return None
        try:
            payload = json.loads(self._path(token).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if payload.get("agent_id") != agent_id or now.timestamp() - payload["saved_at"] > PENDING_VALID.total_seconds():
            return None
        payload["entries"] = [RawEntry(**e) for e in payload["entries"]]
        return payload

    def discard(self, token: str) -> None:
        if TOKEN_PATTERN.fullmatch(token or ""):
            self._path(token).unlink(missing_ok=True)

    def _path(self, token: str) -> Path:
        return self.directory / f"{token}.json"

    def _forget_expired(self, now: dt.datetime) -> None:
        # By the time saved in the file, not the file's own time: "now" is the injectable clock.
        for path in self.directory.glob("*.json"):
            try:
                saved_at = json.loads(path.read_text(encoding="utf-8"))["saved_at"]
            except (OSError, ValueError, KeyError, TypeError):
                continue  # being written by another request, or not ours
            if now.timestamp() - saved_at > PENDING_VALID.total_seconds():
                path.unlink(missing_ok=True)
