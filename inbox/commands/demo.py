"""`mainland demo`: seed the demo data (once), then run Mainland like `serve` and say how to sign in.

The README's run command (`scripts/demo.sh`) ends in `mainland --config demo/config.yaml demo`.
What is seeded lives in `inbox/demo.py`; running the command again seeds nothing twice.
"""

from __future__ import annotations

import click

from inbox import demo as demo_data
from inbox.cli import Context, main, pass_context
from inbox.commands.running import DEFAULT_HOST, DEFAULT_PORT, DEFAULT_THREADS, serve_forever, web_setting


def login_lines(ctx: Context, url: str) -> list[str]:
    """What to open and how to sign in, for the console."""
    settings = demo_data.DemoSettings.from_config(ctx.config)
    password = demo_data.demo_password(settings)
    lines = [f"  open      {url}",
             f"  sign in   {settings.admin_email} / "
             + (password or f"(unknown: set one with `mainland set-password {settings.admin_email}`)")]
    for name in ctx.mainland.channel_names(kind="webform"):
        lines.append(f"  web form  {url}forms/{name}")
    return lines


@main.command()
@click.option("--host", default=None, help="Address to listen on (default: web.host, else 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to listen on (default: web.port, else 5000).")
@click.option("--seed-only", is_flag=True, help="Seed the demo data and exit without serving.")
@pass_context
def demo(ctx: Context, host: str | None, port: int | None, seed_only: bool) -> None:
    """Run the demo: sample data and a demo admin on first run, then the web app and the worker."""
    store = ctx.open_store()
    try:
        results = demo_data.seed(ctx.mainland, store)
    finally:
        store.close()
    for result in results:
        click.echo(f"demo {result.name}: {result.detail}")
    if seed_only:
        settings = demo_data.DemoSettings.from_config(ctx.config)
        click.echo(f"demo login: {settings.admin_email} / {demo_data.demo_password(settings)}")
        return

    def announce(url: str) -> None:
        click.echo("\nMainland demo is running:")
        for line in login_lines(ctx, url):
            click.echo(line)
        click.echo("Ctrl-C stops it; delete demo/data/ to start afresh.\n")

    serve_forever(
        ctx.create_app(),
        host=host or web_setting(ctx, "host", DEFAULT_HOST),
        port=port if port is not None else int(web_setting(ctx, "port", DEFAULT_PORT)),
        threads=int(web_setting(ctx, "threads", DEFAULT_THREADS)),
        announce=announce,
    )
