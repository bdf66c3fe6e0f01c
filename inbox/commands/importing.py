"""`mainland import PATH`: bring an existing mailbox (mbox, Maildir, folder of .eml) into the inbox."""

from __future__ import annotations

import sys

import click
from tqdm import tqdm

from inbox.cli import Context, main, pass_context
from inbox.importer import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CHANNEL,
    ImportReport,
    ImportSourceError,
    import_mailbox,
)


@main.command("import")
@click.argument("path", type=click.Path(path_type=str))
@click.option("--channel", default=DEFAULT_CHANNEL, show_default=True,
              help="The channel the imported messages belong to.")
@click.option("--batch-size", default=DEFAULT_BATCH_SIZE, show_default=True, type=click.IntRange(1, 10_000),
              help="Messages per transaction; an interrupted import resumes after the last whole batch.")
@click.option("--no-progress", is_flag=True, help="No progress bar, only the summary line.")
@click.option("--from-start", is_flag=True,
              help="Read the source from its first message even if an earlier run got further.")
@click.option("--workers", type=click.IntRange(0, 256), default=None,
              help="Processes that parse the messages (0: parse in this process). Default: one per CPU "
                   "for an import of 2,000 messages or more.")
@pass_context
def import_command(ctx: Context, path: str, channel: str, batch_size: int, no_progress: bool,
                   from_start: bool, workers: int | None) -> None:
    """Import an mbox file, a Maildir or a folder of message files (recursively).

    Running it again continues after the last committed batch; messages already stored are
    skipped. Messages that cannot be taken in are quarantined: see `mainland quarantine list`.
    """
    config = ctx.config
    if channel in config.channels:
        raise click.UsageError(
            f"{channel!r} is a configured {config.channels[channel].kind} channel: its cursor belongs to its "
            "connector. Import into a channel name of its own, e.g. --channel archive")
    mainland = ctx.mainland
    store = ctx.open_store()
    show_bar = not no_progress and sys.stderr.isatty()
    bar: tqdm | None = None

    def opened(report: ImportReport) -> None:
        nonlocal bar
        if report.restarted:
            click.echo(f"note: {report.restarted}", err=True)
        elif report.skipped and report.skipped < report.total:
            click.echo(f"resuming {report.source} after message {report.skipped} of {report.total}", err=True)
        if show_bar:
            bar = tqdm(total=report.total, initial=report.skipped, unit="msg", desc="importing",
                       dynamic_ncols=True, smoothing=0.1)

    totals = {"stored": 0, "quarantined": 0}

    def advanced(count: int, batch) -> None:
        if bar is not None:
            totals["stored"] += batch.stored
            totals["quarantined"] += batch.quarantined
            bar.set_postfix(totals, refresh=False)
            bar.update(count)

    try:
        report = import_mailbox(
            store, mainland.ingestor(store, rules_run=False), path, channel=channel, batch_size=batch_size,
            max_bytes=config.max_message_bytes, max_attachment_bytes=config.max_attachment_bytes,
            from_start=from_start, progress=advanced, on_open=opened, workers=workers,
        )
    except ImportSourceError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        click.echo("\ninterrupted: every whole batch so far is stored; run the same command again to continue",
                   err=True)
        sys.exit(130)
    finally:
        if bar is not None:
            bar.close()
        store.close()
    if report.skipped and report.skipped == report.total and not report.messages:
        click.echo(f"nothing new: all {report.total} messages of {report.source} were imported before "
                   "(--from-start reads them again; stored ones are skipped)")
        return
    click.echo(report.summary())
    if report.quarantined:
        click.echo("see them with `mainland quarantine list`; after a fix, `mainland quarantine reprocess --all`")
