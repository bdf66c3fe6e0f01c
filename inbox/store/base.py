"""Shared pieces of the store modules: errors, timestamps, row helpers."""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from typing import Any

from inbox import clock


def _operational_errors() -> tuple[type[Exception], ...]:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency; kept optional for SQLite-only use
        return (sqlite3.OperationalError,)
    return (sqlite3.OperationalError, psycopg.OperationalError)


#: The database itself failing (locked, disk full, the server gone) on either engine, as opposed to
#: one statement refused: a batch that meets one must fail whole and be retried, not quarantine items.
OPERATIONAL_ERRORS = _operational_errors()


class StoreError(Exception):
    """The database cannot do what was asked (damaged file, impossible state)."""


class NotFound(StoreError):
    """No object with that id (or not one the caller may see)."""


def iso(moment: dt.datetime) -> str:
    """A UTC timestamp as stored: sortable text with microseconds."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    moment = moment.astimezone(dt.UTC)
    if moment.year < 1000:  # strftime writes such years without leading zeros; stored text stays as it was
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # isoformat is several times faster than strftime (the ingest writes four timestamps a message).
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def now_iso() -> str:
    return iso(clock.now())


def parse_iso(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    if len(text) == _ISO_LENGTH and text[-1] == "Z":
        # fromisoformat is about 100 times faster than strptime (reports parse every row's timestamps);
        # anything not of the stored shape still goes to strptime, which raises as before.
        return dt.datetime.fromisoformat(text)
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


#: len("2026-11-16T09:00:00.000000Z"), the shape `iso` writes.
_ISO_LENGTH = 27


def is_postgresql_url(database: object) -> bool:
    """Whether `database` names a PostgreSQL database (a `postgresql://` URL) rather than a SQLite file."""
    return isinstance(database, str) and database.split("://", 1)[0].split("+")[0] in {"postgresql", "postgres"}


def libpq_url(url: str) -> str:
    """A PostgreSQL URL as libpq (psycopg) reads it: SQLAlchemy's `postgresql+psycopg://` and the
    short `postgres://` both become `postgresql://`."""
    return re.sub(r"^postgres(?:ql)?(?:\+\w+)?://", "postgresql://", url)


def redacted_url(url: str) -> str:
    """The URL with its password left out, fit for a log line or a key."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1@", url)


def as_dict(cursor: sqlite3.Cursor, row: tuple | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {col[0]: value for col, value in zip(cursor.description, row, strict=True)}


def as_dicts(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    names = [col[0] for col in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
