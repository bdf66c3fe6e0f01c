"""`mainland digest`: build the managers' weekly digest for any week, archive it, mail or save it."""

from __future__ import annotations

from pathlib import Path

import click

from inbox import clock
from inbox import digest as digest_module
from inbox.cli import Context, main, pass_context
from inbox.reports import Period


@main.command()
@click.option("--week", help="ISO week, e.g. 2026-W47 (default: the week before this one).")
@click.option("--send", "send_mail", is_flag=True, help="Mail it to the managers (and digest.recipients).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also write index.html, digest.txt and the chart PNGs into this folder.")
@pass_context
def digest(ctx: Context, week: str | None, send_mail: bool, out_dir: Path | None) -> None:
    """Build the weekly digest of WEEK, archive it (shown at /reports/digests) and optionally mail it."""
    mainland = ctx.mainland
    timezone = digest_module.settings_for(mainland.config).timezone
    now = clock.now()
    try:
        period = Period.parse(week, timezone) if week else digest_module.last_full_week(now, timezone)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--week") from None
    store = ctx.open_store()
    try:
        try:
            result = digest_module.run(mainland, store, period, send_mail=send_mail, now=now)
        except digest_module.DigestError as exc:
            raise click.ClickException(f"the digest of {period.key} is archived but was not sent: {exc}") from None
        click.echo(f"digest {period.key}: {result.subject}")
        if send_mail:
            row = store.digest(period.key)
            click.echo(f"sent to {len(row['recipients'].split())} recipient(s): {row['recipients']}")
        if out_dir is not None:
            for path in digest_module.write_files(result, out_dir):
                click.echo(f"wrote {path}")
    finally:
        store.close()
