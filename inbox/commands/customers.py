"""Customer commands: import records from a CRM export, export or erase one customer's data.

    mainland import-customers FILE [--map col=field ...] [--dry-run]
    mainland export-customer ID --out DIR
    mainland erase-customer ID --yes
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from tqdm import tqdm

from inbox import privacy
from inbox.cli import Context, main, pass_context
from inbox.customer_import import (
    CustomerImportError,
    ImportReport,
    decode,
    fields,
    import_csv,
    parse_mapping,
    read_csv,
)
from inbox.store import NotFound


def _region(ctx: Context) -> str | None:
    return ctx.config.extra.get("default_phone_region")


@main.command("import-customers")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--map", "mappings", multiple=True, metavar="COLUMN=FIELD",
              help=f"Map a column to a field ({', '.join(fields())}, attr:<name>, ignore). Repeatable. "
                   "Columns with common names (Email, Phone, Name, ...) are mapped without it.")
@click.option("--dry-run", is_flag=True, help="Report what would be created, updated or in conflict; change nothing.")
@click.option("--progress/--no-progress", default=None,
              help="Show a progress bar (default: when writing to a terminal).")
@click.option("--show", default=20, show_default=True, type=click.IntRange(0, 100_000),
              help="How many created/updated/conflicting/invalid rows to list.")
@pass_context
def import_customers(ctx: Context, file: Path, mappings: tuple[str, ...], dry_run: bool, progress: bool | None,
                     show: int) -> None:
    """Create or update customers from a CSV file (a CRM export).

    Rows are matched by CRM reference, else by email address or account; phone numbers are kept as
    contact details that suggest merges, never as keys. Importing the same file again changes nothing.
    """
    try:
        mapping = parse_mapping(mappings)
        text = decode(file.read_bytes())
        _header, rows = read_csv(text)
        total = sum(1 for _ in rows)
    except CustomerImportError as exc:
        raise click.ClickException(str(exc)) from None
    store = ctx.open_store()
    bar = tqdm(total=total, unit="row", desc="dry run" if dry_run else "importing", dynamic_ncols=True,
               disable=not (sys.stderr.isatty() if progress is None else progress), file=sys.stderr)

    def advanced(count: int, report: ImportReport) -> None:
        bar.set_postfix({k: v for k, v in report.counts.items() if v}, refresh=False)
        bar.update(count)

    try:
        report = import_csv(store, text, mapping, dry_run=dry_run, region=_region(ctx), progress=advanced)
    except CustomerImportError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        bar.close()
        store.close()
    click.echo("columns: " + ", ".join(f"{c} -> {f}" for c, f in report.columns.items()))
    if report.ignored_columns:
        click.echo("ignored columns: " + ", ".join(report.ignored_columns))
    for row in report.rows[:show]:
        who = f" customer #{row.customer_id}" if row.customer_id else ""
        click.echo(f"line {row.line}: {row.action}{who}{': ' + row.detail if row.detail else ''}")
    if len(report.rows) > show:
        click.echo(f"... and {len(report.rows) - show} more rows (--show N)")
    verb = "would be" if dry_run else "were"
    c = report.counts
    click.echo(f"{'dry run: ' if dry_run else ''}{report.total} rows: {c['create']} {verb} created, "
               f"{c['update']} {verb} updated, {c['unchanged']} unchanged, {c['conflict']} in conflict, "
               f"{c['invalid']} invalid")


@main.command("export-customer")
@click.argument("customer_id", type=int)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write the ZIP file into (created if missing).")
@pass_context
def export_customer(ctx: Context, customer_id: int, out_dir: Path) -> None:
    """Export everything held about a customer (GDPR access/portability): one ZIP file."""
    store = ctx.open_store()
    try:
        path = privacy.export_to_dir(store, ctx.mainland.attachment_store(), customer_id, out_dir, actor="cli")
    except NotFound:
        raise click.ClickException(f"no customer #{customer_id}") from None
    finally:
        store.close()
    click.echo(str(path))


@main.command("erase-customer")
@click.argument("customer_id", type=int)
@click.option("--yes", is_flag=True, help="Really erase: there is no undo.")
@pass_context
def erase_customer(ctx: Context, customer_id: int, yes: bool) -> None:
    """Erase a customer for good: messages, attachments, identities, search entries (GDPR erasure).

    Only an audit line with ids remains, and hashes of their identities so that re-imported old
    items do not bring them back. Export first if the customer asked for a copy.
    """
    if not yes:
        raise click.UsageError("erasing cannot be undone; add --yes to erase customer "
                               f"#{customer_id} and everything held about them")
    store = ctx.open_store()
    try:
        live = store.live_customer_id(customer_id)
        if live is None:
            raise click.ClickException(f"no customer #{customer_id}")
        if live != customer_id:
            raise click.ClickException(f"customer #{customer_id} was merged into #{live}; erase #{live}")
        result = privacy.erase_customer(store, ctx.mainland.attachment_store(), customer_id, actor="cli")
    finally:
        store.close()
    click.echo(f"erased customer #{customer_id}: {len(result['customers'])} record(s), "
               f"{result['conversations']} conversation(s), {result['messages']} message(s), "
               f"{result['files_removed']} file(s)")
