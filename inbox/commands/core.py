"""Operator commands: check the config, migrate the database, show the figures, work the quarantine."""

from __future__ import annotations

import json

import click

from inbox.cli import Context, main, pass_context
from inbox.reprocess import reprocess
from inbox.store.base import redacted_url


@main.command("check-config")
@pass_context
def check_config(ctx: Context) -> None:
    """Read and check the configuration; list every problem at once."""
    mainland = ctx.mainland
    database = mainland.config.database
    named = redacted_url(database) if isinstance(database, str) else database
    click.echo(f"configuration OK: database {named}, "
               f"{len(mainland.config.channels)} channel(s): {', '.join(mainland.config.channels) or 'none'}")


@main.command()
@pass_context
def migrate(ctx: Context) -> None:
    """Apply pending database migrations."""
    store = ctx.mainland.open_store()
    applied = store.migrate()
    click.echo(f"applied {len(applied)} migration(s){': ' + ', '.join(applied) if applied else ''}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@pass_context
def stats(ctx: Context, as_json: bool) -> None:
    """The figures an operator checks first: counts and each channel's last poll."""
    store = ctx.open_store()
    figures = store.counts()
    health = store.channel_health()
    figures["channels"] = {
        name: {
            "kind": ctx.config.channels[name].kind if name in ctx.config.channels else None,
            "last_poll_at": health.get(name, {}).get("last_poll_at"),
            "last_success_at": health.get(name, {}).get("last_success_at"),
            "last_error": health.get(name, {}).get("last_error"),
            "messages": figures["messages_per_channel"].get(name, 0),
        }
        for name in sorted(set(ctx.config.channels) | set(health) | set(figures["messages_per_channel"]))
    }
    if as_json:
        click.echo(json.dumps(figures, indent=2, sort_keys=True))
        return
    click.echo(f"messages       {figures['messages']:>8}")
    click.echo(f"conversations  {figures['conversations']:>8}")
    click.echo(f"customers      {figures['customers']:>8}")
    click.echo(f"quarantined    {figures['quarantined']:>8}")
    click.echo(f"attachments    {figures['attachments']:>8}")
    if figures["channels"]:
        click.echo("\nchannel              messages  last poll                    last error")
        for name, ch in figures["channels"].items():
            click.echo(f"{name:<20} {ch['messages']:>8}  {ch['last_poll_at'] or 'never':<28} {ch['last_error'] or ''}")


@main.group()
def quarantine() -> None:
    """Items that could not be taken in: list, show, reprocess."""


@quarantine.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include released items too.")
@pass_context
def quarantine_list(ctx: Context, show_all: bool) -> None:
    """List quarantined items with the reason each was held."""
    rows = ctx.open_store().quarantined(status=None if show_all else "held")
    if not rows:
        click.echo("the quarantine is empty")
        return
    for row in rows:
        click.echo(f"#{row['id']:<6} {row['status']:<8} {row['channel']:<16} {row['size']:>9} B  "
                   f"tries {row['attempts']}  {row['reason']}")


@quarantine.command("show")
@click.argument("quarantine_id", type=int)
@click.option("--raw", is_flag=True, help="Write the raw bytes to standard output.")
@pass_context
def quarantine_show(ctx: Context, quarantine_id: int, raw: bool) -> None:
    """Show one quarantined item (or its raw bytes)."""
    row = ctx.open_store().quarantine_item(quarantine_id)
    if raw:
        click.get_binary_stream("stdout").write(row["raw"])
        return
    for key in ("id", "channel", "source_ref", "status", "reason", "exception", "attempts", "first_seen", "last_seen"):
        click.echo(f"{key:<11} {row[key]}")
    click.echo(f"{'size':<11} {len(row['raw'])} bytes (use --raw to see them)")


@quarantine.command("reprocess")
@click.argument("quarantine_ids", type=int, nargs=-1)
@click.option("--all", "every", is_flag=True, help="Reprocess every held item.")
@pass_context
def quarantine_reprocess(ctx: Context, quarantine_ids: tuple[int, ...], every: bool) -> None:
    """Take quarantined items in again, after the cause was fixed."""
    store = ctx.open_store()
    ids = list(quarantine_ids) or ([r["id"] for r in store.quarantined()] if every else [])
    if not ids:
        raise click.UsageError("name quarantine ids, or pass --all")
    failed = 0
    for qid in ids:
        result = reprocess(ctx.mainland, store, qid)
        failed += result.outcome == "still failing"
        click.echo(f"#{qid}: {result.outcome}{' - ' + result.detail if result.detail else ''}")
    if failed:
        raise SystemExit(1)
