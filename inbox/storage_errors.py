"""Plain words for the storage failures an operator meets: the database stays locked, the disk is
full, the database file cannot be opened or written, the PostgreSQL server cannot be reached.

Each comes from SQLite or the operating system as a terse error; `explain` turns one into a
sentence that says what happened and what to do next, for the command line and the worker's log
(the web app shows its own translated page, inbox/web/security.py, using `kind`). Anything else is
not recognised (None) and keeps its traceback, since that is a bug to report.
"""

from __future__ import annotations

import errno
import sqlite3

import psycopg

LOCKED, FULL, UNWRITABLE, UNREACHABLE = "locked", "full", "unwritable", "unreachable"


class ConnectionsBusy(RuntimeError):
    """Every database connection a web process may open (`web.database_connections`) stayed busy
    past its wait: the same to the agent as a database that stays locked (busy, try again shortly)."""


_EXPLANATIONS = {
    LOCKED: ("the database stayed locked by another process for longer than the busy timeout "
             "(10 s): a long import, a backup or a second worker may be holding it. Wait for it to "
             "finish and run the command again; `mainland stats` shows the worker and its lease."),
    FULL: ("the disk holding the database or the attachments is full, so nothing was saved. Free "
           "space there (old backups, logs, `mainland backup` copies), then run the command again; "
           "no data already saved is lost."),
    UNWRITABLE: ("the database file cannot be opened or written: check that the `database` path in "
                 "the config file exists and that the user running Mainland owns it (and its folder)."),
    UNREACHABLE: ("the PostgreSQL server could not be reached, or refused the connection: check that it "
                  "runs, that `database:` in the config file names it (host, port, database, user, "
                  "password) and that it accepts connections from this machine; nothing was saved."),
}


def kind(exc: BaseException) -> str | None:
    """LOCKED, FULL, UNWRITABLE or UNREACHABLE for a storage failure this module knows, else None."""
    if isinstance(exc, ConnectionsBusy):
        return LOCKED
    if isinstance(exc, sqlite3.OperationalError | sqlite3.DatabaseError):
        text = str(exc).lower()
        if "locked" in text or "busy" in text:
            return LOCKED
        if "disk is full" in text or "disk full" in text:
            return FULL
        if "readonly" in text or "unable to open database" in text:
            return UNWRITABLE
        return None
    if isinstance(exc, psycopg.Error):
        # PostgreSQL (#17): a full disk is its own error class; the server gone, shutting down or
        # refusing the connection is an OperationalError.
        if isinstance(exc, psycopg.errors.DiskFull):
            return FULL
        if isinstance(exc, psycopg.OperationalError):
            return UNREACHABLE
        return None
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return FULL
    return None


def explain(exc: BaseException) -> str | None:
    """One sentence with what happened and what to do next, or None for anything else."""
    found = kind(exc)
    return None if found is None else f"{_EXPLANATIONS[found][:1].upper()}{_EXPLANATIONS[found][1:]}"
