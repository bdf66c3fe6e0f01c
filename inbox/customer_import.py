"""Customer records from elsewhere: a CRM's CSV export, or its JSON API calls.

Each row (or API body) becomes a `Record` and is applied by `apply_record`:

- it is matched by its CRM reference, else by any of its identities (email addresses and network
  accounts; phone numbers are *claims*, never keys: a family shares a landline);
- no match: a customer is created; one match: it is updated where the row differs;
- the row points at two different customers (its reference at one, an address at another, or two
  addresses at two customers), or at a customer with another CRM reference: a **conflict**. It is
  reported, nothing is merged; the two records get a merge suggestion for an agent to decide.

Re-importing the same file changes nothing: every write happens only when a value differs, so the
second run reports every row "unchanged". A dry run does the same work in a transaction that is
rolled back, so its counts are exactly what a real run would do.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inbox import clock, customers, identity
from inbox.identity import Reason
from inbox.store import Store
from inbox.store.base import iso

#: The record's own fields a column can be mapped to; each network's handle kind (declared by its
#: connector, `connectors.base.IdentityRule`) is one more: `fields()`.
RECORD_FIELDS = ("crm_ref", "name", "first_name", "last_name", "language", "owner", "email", "phone")
ACTIONS = ("create", "update", "unchanged", "conflict", "invalid")

#: Header names recognised without a mapping (compared lower-case, with spaces, '-' and '_' removed).
_HEADER_ALIASES = {
    "crm_ref": ("crmref", "crmid", "id", "externalid", "externalref", "customerid", "reference", "ref", "klantnummer"),
    "name": ("name", "fullname", "displayname", "naam", "contact", "contactname"),
    "first_name": ("firstname", "givenname", "voornaam"),
    "last_name": ("lastname", "surname", "familyname", "achternaam"),
    "language": ("language", "locale", "lang", "taal"),
    "owner": ("owner", "owneremail", "accountmanager", "eigenaar"),
    "email": ("email", "emails", "mail", "emailaddress", "emailadres"),
    "phone": ("phone", "phones", "telephone", "mobile", "phonenumber", "tel", "telefoon", "mobiel", "gsm"),
}
MAX_ATTRIBUTE_KEY = 64
MAX_VALUE = 2000
_SPLIT = re.compile(r"[;,\n]")
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})?")


def handle_kinds() -> tuple[str, ...]:
    """The networks whose account handles a record may carry: every declared handle identity kind."""
    return identity.handle_kinds()


def fields() -> tuple[str, ...]:
    """The fields a column can be mapped to (besides `attr:<name>` and `ignore`)."""
    return RECORD_FIELDS + handle_kinds()


def _header_aliases() -> dict[str, tuple[str, ...]]:
    """Header names per field: the record's own, and each network's kind with its declared aliases."""
    networks = {kind: (kind, *identity.identity_rules()[kind].aliases) for kind in handle_kinds()}
    return {**_HEADER_ALIASES, **networks}


class CustomerImportError(ValueError):
    """The file or mapping cannot be used at all (the message says why)."""


@dataclass
class Record:
    """One customer as a CRM describes them."""

    crm_ref: str | None = None
    name: str | None = None
    language: str | None = None
    owner: str | None = None
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    handles: list[tuple[str, str]] = field(default_factory=list)
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass
class Outcome:
    action: str
    customer_id: int | None = None
    detail: str = ""
    changes: list[str] = field(default_factory=list)


@dataclass
class RowResult:
    line: int
    action: str
    customer_id: int | None
    detail: str


@dataclass
class ImportReport:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ACTIONS, 0))
    rows: list[RowResult] = field(default_factory=list)
    columns: dict[str, str] = field(default_factory=dict)
    ignored_columns: list[str] = field(default_factory=list)
    dry_run: bool = False

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class _DryRun(Exception):
    """Raised inside the transaction of a dry run so that it is rolled back."""


# Reading ------------------------------------------------------------------------------------------

def decode(data: bytes) -> str:
    """CSV bytes as text: UTF-8 (with or without BOM), else Windows-1252 (Excel's default)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def read_csv(text: str) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """The header and an iterator of (line number, row) for CSV text; the delimiter is detected."""
    sample = text[:64 * 1024]
    try:
        dialect = csv.Sniffer().sniff(sample.split("\n", 1)[0] if "\n" in sample else sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise CustomerImportError("the file is empty") from None
    if not any(header):
        raise CustomerImportError("the first line holds no column names")

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        for values in reader:
            if not any(v.strip() for v in values):
                continue
            yield reader.line_num, {h: (values[i].strip() if i < len(values) else "") for i, h in enumerate(header)}

    return header, rows()


def parse_mapping(pairs: Iterable[str]) -> dict[str, str]:
    """`col=field` strings (CLI `--map`, one per line in the admin form) as a dict."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        pair = pair.strip()
        if not pair:
            continue
        column, sep, target = pair.rpartition("=")
        if not sep or not column.strip():
            raise CustomerImportError(f"{pair!r}: write a mapping as column=field")
        target = target.strip().lower()
        if target not in fields() and target != "ignore" and not (
                target.startswith("attr:") and 0 < len(target) - 5 <= MAX_ATTRIBUTE_KEY):
            raise CustomerImportError(f"{pair!r}: unknown field {target!r} (fields: {', '.join(fields())}, attr:<name>, ignore)")
        mapping[column.strip()] = target
    return mapping


def resolve_columns(header: list[str], mapping: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """Column -> field for every column used, and the columns ignored."""
    lowered = {k.lower(): v for k, v in mapping.items()}
    unknown = [k for k in mapping if k not in header and k.lower() not in {h.lower() for h in header}]
    if unknown:
        raise CustomerImportError(f"no column {unknown[0]!r} in the file (columns: {', '.join(header)})")
    aliases = {alias: target for target, names in _header_aliases().items() for alias in names}
    columns, ignored = {}, []
    for column in header:
        target = lowered.get(column.lower())
        if target is None:
            target = aliases.get(re.sub(r"[\s_\-.]", "", column.lower()))
        if target is None or target == "ignore":
            ignored.append(column)
        else:
            columns[column] = target
    return columns, ignored


def record_from_row(row: Mapping[str, str], columns: Mapping[str, str]) -> Record:
    record = Record()
    first = last = ""
    for column, target in columns.items():
        value = (row.get(column) or "").strip()[:MAX_VALUE]
        if not value:
            continue
        if target == "crm_ref":
            record.crm_ref = value
        elif target == "name":
            record.name = value
        elif target == "first_name":
            first = value
        elif target == "last_name":
            last = value
        elif target == "language":
            record.language = value
        elif target == "owner":
            record.owner = value
        elif target == "email":
            record.emails += [v.strip() for v in _SPLIT.split(value) if v.strip()]
        elif target == "phone":
            # Commas can be part of nothing in a phone number, but "/" often separates two.
            record.phones += [v.strip() for v in re.split(r"[;,/\n]", value) if v.strip()]
        elif target in handle_kinds():
            record.handles += [(target, v.strip()) for v in _SPLIT.split(value) if v.strip()]
        elif target.startswith("attr:"):
            record.attributes[target[5:]] = value
    if not record.name and (first or last):
        record.name = f"{first} {last}".strip()
    return record


def record_from_json(data: Any) -> Record:
    """An API body as a Record; ValueError with a message for the caller on a malformed one."""
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    known = {"crm_ref", "name", "language", "owner", "emails", "phones", "handles", "attributes"}
    extra = sorted(set(data) - known)
    if extra:
        raise ValueError(f"unknown field {extra[0]!r} (fields: {', '.join(sorted(known))})")

    def text(key: str) -> str | None:
        value = data.get(key)
        if value is None:
            return None
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise ValueError(f"{key} must be a string")
        return str(value).strip()[:MAX_VALUE] or None

    def strings(key: str) -> list[str]:
        value = data.get(key) or []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or len(value) > 50:
            raise ValueError(f"{key} must be a list of at most 50 strings")
        return [v.strip()[:MAX_VALUE] for v in value if v.strip()]

    handles = data.get("handles") or {}
    if not isinstance(handles, dict):
        raise ValueError("handles must be an object like {\"telegram\": \"12345\"}")
    pairs = []
    for kind, values in handles.items():
        if kind not in handle_kinds():
            raise ValueError(f"handles: unknown network {kind!r} (networks: {', '.join(handle_kinds())})")
        values = [values] if isinstance(values, str | int) and not isinstance(values, bool) else values
        if not isinstance(values, list) or not all(isinstance(v, str | int) for v in values):
            raise ValueError(f"handles.{kind} must be a string or a list of strings")
        pairs += [(kind, str(v).strip()) for v in values if str(v).strip()]
    attributes = data.get("attributes") or {}
    if not isinstance(attributes, dict) or not all(
            isinstance(k, str) and (v is None or isinstance(v, str | int | float)) for k, v in attributes.items()):
        raise ValueError("attributes must be an object of names to strings")
    return Record(crm_ref=text("crm_ref"), name=text("name"), language=text("language"), owner=text("owner"),
                  emails=strings("emails"), phones=strings("phones"), handles=pairs,
                  attributes={k.strip()[:MAX_ATTRIBUTE_KEY]: "" if v is None else str(v)[:MAX_VALUE]
                              for k, v in attributes.items() if k.strip()})


# Applying -----------------------------------------------------------------------------------------

def apply_record(store: Store, record: Record, *, now: str, region: str | None = None,
                 source: str = "import") -> Outcome:
    """Create or update the customer a record describes. Call inside a write."""
    problems = []
    emails = []
    for raw in record.emails:
        value = identity.normalize_email(raw)
        if value is None:
            problems.append(f"not an email address: {raw!r}")
        elif value not in emails:
            emails.append(value)
    phones = []
    for raw in record.phones:
        value = identity.normalize_phone(raw, region)
        if value is None:
            problems.append(f"not a phone number: {raw!r}")
        elif value not in phones:
            phones.append(value)
    handles = []
    for kind, raw in record.handles:
        value = identity.normalize_handle(kind, raw)
        if value and (kind, value) not in handles:
            handles.append((kind, value))
    if record.language and not _LANGUAGE.fullmatch(record.language):
        problems.append(f"not a language code: {record.language!r}")
    owner_id = None
    if record.owner:
        agent = store.agent_by_email(record.owner.strip().lower())
        if agent is None:
            problems.append(f"no agent {record.owner!r}")
        else:
            owner_id = agent["id"]
    keys = [("email", e) for e in emails] + handles
    if not record.crm_ref and not keys and not problems:
        problems.append("nothing identifies the customer: give a CRM reference, an email address or an account")
    if problems:
        return Outcome("invalid", detail="; ".join(problems))

    by_ref = store.customer_by_crm_ref(record.crm_ref) if record.crm_ref else None
    owners: dict[int, list[str]] = {}
    for kind, value in keys:
        owner = store.identity_owner(kind, value)
        if owner is not None:
            owners.setdefault(owner, []).append(value)
    others = [c for c in owners if c != by_ref]
    if by_ref is not None and others:
        return _conflict(store, [by_ref, *others], now, f"CRM reference {record.crm_ref} is customer #{by_ref}, "
                         f"but {owners[others[0]][0]} belongs to customer #{others[0]}")
    if by_ref is None and len(owners) > 1:
        ids = sorted(owners)
        return _conflict(store, ids, now, f"{owners[ids[0]][0]} belongs to customer #{ids[0]}, "
                         f"{owners[ids[1]][0]} to customer #{ids[1]}")
    target = by_ref if by_ref is not None else (next(iter(owners)) if owners else None)
    if target is not None and record.crm_ref:
        current_ref = store.customer_record(target)["crm_ref"]
        if current_ref and current_ref != record.crm_ref:
            return Outcome("conflict", target, f"customer #{target} has CRM reference {current_ref}, "
                                               f"the row says {record.crm_ref}")

    language = record.language.lower().replace("_", "-") if record.language else None
    if target is None:
        customer_id = store.create_customer_record(record.name or (emails[0] if emails else ""), now, locale=language,
                                                   crm_ref=record.crm_ref, owner_agent_id=owner_id)
        for kind, value in keys:
            store.attach_identity(customer_id, kind, value, "", True, now)
        for number in phones:
            store.add_claim(customer_id, "phone", number, source, now)
        for key, value in record.attributes.items():
            store.set_customer_attribute(customer_id, key, value, now)
        customers.note_record_evidence(store, customer_id, identities=keys, claims=[("phone", p) for p in phones],
                                       now=now)
        return Outcome("create", customer_id)

    fields: dict[str, Any] = {}
    if record.name:
        fields["display_name"] = record.name
    if language:
        fields["locale"] = language
    if owner_id is not None:
        fields["owner_agent_id"] = owner_id
    if record.crm_ref:
        fields["crm_ref"] = record.crm_ref
    changes = store.update_customer(target, fields, now)
    new_keys = [(k, v) for k, v in keys if store.attach_identity(target, k, v, "", True, now)]
    changes += [f"{k} {v}" for k, v in new_keys]
    new_claims = [p for p in phones if store.add_claim(target, "phone", p, source, now)]
    changes += [f"phone {p}" for p in new_claims]
    for key, value in record.attributes.items():
        if store.set_customer_attribute(target, key, value, now):
            changes.append(f"attribute {key}")
    if not changes:
        return Outcome("unchanged", target)
    if new_keys or new_claims:
        customers.note_record_evidence(store, target, identities=new_keys, claims=[("phone", p) for p in new_claims],
                                       now=now)
    return Outcome("update", target, ", ".join(changes), changes)


def _conflict(store: Store, ids: list[int], now: str, detail: str) -> Outcome:
    # Never merged automatically; an agent sees the pair in the review queue.
    a, b = ids[0], ids[1]
    existing = store.suggestion_for_pair(a, b)
    if existing is None or existing["status"] == "open":
        reasons = json.loads(existing["reasons"]) if existing else []
        if not any(r["code"] == "same_record" for r in reasons):
            reasons.append(Reason("same_record", detail, 0.8).as_dict())
            reasons = [r for r in reasons if r["code"] != "conflict"] + [
                r.as_dict() for r in identity.conflict_reasons(store.identity_kinds(a), store.identity_kinds(b))]
            store.save_suggestion(a, b, identity.combine(reasons), reasons, now)
    return Outcome("conflict", a, detail)


def import_records(store: Store, records: Iterable[tuple[int, Record]], *, dry_run: bool = False,
                   region: str | None = None, now: dt.datetime | None = None, batch_size: int = 500,
                   progress: Callable[[int, ImportReport], None] | None = None, keep_rows: int = 1000,
                   report: ImportReport | None = None) -> ImportReport:
    """Apply records in batches (one transaction each); a dry run rolls everything back at the end."""
    report = report or ImportReport()
    report.dry_run = dry_run
    stamp = iso(now or clock.now())

    def run(batch: list[tuple[int, Record]]) -> None:
        for line, record in batch:
            outcome = apply_record(store, record, now=stamp, region=region)
            report.counts[outcome.action] += 1
            if outcome.action != "unchanged" and len(report.rows) < keep_rows:
                report.rows.append(RowResult(line, outcome.action, outcome.customer_id, outcome.detail))
        if progress is not None:
            progress(len(batch), report)

    if dry_run:
        try:
            with store.write():
                for batch in _batches(records, batch_size):
                    run(batch)
                raise _DryRun
        except _DryRun:
            pass
        return report
    for batch in _batches(records, batch_size):
        with store.write():
            run(batch)
    return report


def import_csv(store: Store, text: str, mapping: Mapping[str, str] | None = None, **kwargs: Any) -> ImportReport:
    """Import CSV text with an optional column mapping (see `import_records` for the options)."""
    header, rows = read_csv(text)
    columns, ignored = resolve_columns(header, mapping or {})
    if not columns:
        raise CustomerImportError(f"no column is mapped to a field (columns: {', '.join(header)}); use col=field")
    report = ImportReport(columns=columns, ignored_columns=ignored)
    records = ((line, record_from_row(row, columns)) for line, row in rows)
    return import_records(store, records, report=report, **kwargs)


def count_rows(path: str | Path) -> int:
    """Data rows in a CSV file (for a progress bar's total)."""
    _header, rows = read_csv(decode(Path(path).read_bytes()))
    return sum(1 for _ in rows)


def _batches(records: Iterable[tuple[int, Record]], size: int) -> Iterator[list[tuple[int, Record]]]:
    batch: list[tuple[int, Record]] = []
    for entry in records:
        batch.append(entry)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
