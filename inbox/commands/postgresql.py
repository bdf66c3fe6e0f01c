"""`mainland migrate-to-postgresql URL`: copy this installation's SQLite database into PostgreSQL (#17).

The copy itself is inbox/migrate_to_postgresql.py; here: the checks before it, its progress bars and
its summary. docs/operations.md, "Moving to PostgreSQL", says when and how to use it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from tqdm import tqdm

from inbox.cli import Context, main, pass_context
from inbox.store.base import is_postgresql_url, now_iso, redacted_url


class _Bars:
    """The copy's progress as tqdm bars on standard error, one per stage (only on a terminal)."""

    def __init__(self, shown: bool) -> None:
        self.shown = shown
        self.bar: tqdm | None = None

    def note(self, text: str) -> None:
        self.close()
        click.echo(text, err=True)

    def stage(self, name: str, total: int, done: int = 0) -> None:
        self.close()
        if self.shown:
            unit = "file" if name == "attachments" else "row"
            self.bar = tqdm(total=total, initial=done, unit=unit, desc=name, dynamic_ncols=True, smoothing=0.1)

    def advance(self, count: int) -> None:
        if self.bar is not None:
            self.bar.update(count)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@main.command("migrate-to-postgresql")
@click.argument("url")
@click.option("--attachments-to", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also copy the attachment files into this folder (the one every node will mount), "
                   "each copy checked.")
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(1, 100_000),
              help="Rows per transaction; an interrupted copy resumes after the last whole batch.")
@click.option("--no-progress", is_flag=True, help="No progress bars, only the summary.")
@pass_context
def migrate_to_postgresql_command(ctx: Context, url: str, attachments_to: Path | None, batch_size: int,
                                  no_progress: bool) -> None:
    """Copy this installation's SQLite database into the PostgreSQL database at URL.

    URL is postgresql://user:password@host:port/database, an empty database (its owner runs the
    copy), or one holding an unfinished copy, which is then resumed. Every table is verified by its
    row count and a checksum of its rows on both sides, and every attachment file is checked.
    Stop Mainland (web app and worker) first, then set `database:` to URL.
    """
    if not is_postgresql_url(url):
        raise click.UsageError(f"{redacted_url(url)} is not a PostgreSQL URL: give "
                               "postgresql://user:password@host:port/database")
    import psycopg
    import sqlalchemy.exc

    from inbox.migrate_to_postgresql import CopyFailed, CopyRefused, migrate_to_postgresql
    from inbox.worker import LEASE_NAME

    config = ctx.config
    if isinstance(config.database, str):
        raise click.ClickException("this installation's database is PostgreSQL already; the command copies a "
                                   "SQLite database (run it with the configuration that names the SQLite file)")
    source = ctx.open_store()
    bars = _Bars(not no_progress and sys.stderr.isatty())
    try:
        holder = source.lease_holder(LEASE_NAME, now_iso())
        if holder:
            raise click.ClickException(
                f"a Mainland worker is running on {config.database} ({holder} holds the scheduler lease): stop "
                "Mainland (web app and worker) before copying its database; a lease left by a stopped worker "
                "runs out within a minute or two")
        report = migrate_to_postgresql(source, url, attachments_dir=config.attachments_dir,
                                       attachments_to=attachments_to, batch_rows=batch_size, progress=bars)
    except CopyRefused as exc:
        raise click.ClickException(str(exc)) from None
    except CopyFailed as exc:
        raise click.ClickException(f"{exc}\nwhat was copied stays; run the same command again to continue "
                                   "after the cause is fixed") from None
    except (psycopg.Error, sqlalchemy.exc.DBAPIError) as exc:
        raise click.ClickException(f"PostgreSQL at {redacted_url(url)}: {str(exc).strip()}\nwhat was copied "
                                   "stays; run the same command again to continue") from None
    except KeyboardInterrupt:
        bars.close()
        click.echo("\ninterrupted: every whole batch so far is in the PostgreSQL database; run the same command "
                   "again to continue", err=True)
        sys.exit(130)
    finally:
        bars.close()
        source.close()

    click.echo(f"{'table':<28} {'rows':>12}  checksum")
    for check in report.tables:
        state = "ok" if check.ok else (f"MISMATCH: {check.target_rows:,} rows in PostgreSQL, "
                                       f"checksum {check.target_checksum[:12]} (SQLite {check.source_checksum[:12]})")
        click.echo(f"{check.table:<28} {check.source_rows:>12,}  {state}")
    problems = []
    if report.mismatched:
        names = ", ".join(check.table for check in report.mismatched)
        problems.append(
            f"{len(report.mismatched)} table(s) differ between SQLite and PostgreSQL: {names}. Was Mainland "
            "running during the copy? Stop it, drop the PostgreSQL database, create it again (empty) and "
            "run the command again")
    else:
        click.echo(f"{len(report.tables)} tables, {report.rows:,} rows: every row count and checksum matches")
    attachments = report.attachments
    if attachments is not None:
        copied = ""
        if attachments.copied_to is not None:
            there = attachments.files - attachments.copied - len(attachments.missing) - len(attachments.damaged)
            copied = f"; {attachments.copied:,} copied to {attachments.copied_to}" + (
                f", {there:,} were there already" if there else "")
        click.echo(f"attachments: {attachments.files:,} file(s) in {attachments.folder} checked{copied}")
        for kind, found in (("missing", attachments.missing), ("damaged", attachments.damaged)):
            if found:
                first = "".join(f"\n  {item}" for item in found[:5])
                more = f"\n  ... and {len(found) - 5:,} more" if len(found) > 5 else ""
                problems.append(f"{len(found):,} attachment file(s) {kind}:{first}{more}")
        if not attachments.ok:
            problems.append("restore the files from the attachments' backup and run the command again: it "
                            "checks the files again (the database copy is done)")
    if problems:
        raise click.ClickException("\n".join(problems))
    click.echo(f"done: {report.target} holds a verified copy of {config.database}")
