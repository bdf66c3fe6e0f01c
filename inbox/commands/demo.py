"""`mainland demo`: seed the demo data (once), start the live channels, then run Mainland like `serve`.

The README's run command (`scripts/demo.sh`) ends in `mainland --config demo/config.yaml demo`.
What is seeded lives in `inbox/demo.py`; running the command again seeds nothing twice.

With `demo: {live_channels: true}` (the shipped demo config) it also starts a loopback imitation of
every social channel (`sandbox/demo_stack.py`), adds a channel for each to the configuration, and,
once the web app listens, plays customers writing in (`sandbox/scenario.py`). What the previous run
stored (conversations, replies, answers, people) is kept; the imitations themselves start empty on
every run. `--fresh` starts afresh instead. docs/demo.md.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
from pathlib import Path
from types import ModuleType

import click

from inbox import create_app
from inbox import demo as demo_data
from inbox.cli import Context, main, pass_context
from inbox.commands.running import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_THREADS,
    serve_forever,
    url_for_host,
    web_setting,
)
from inbox.config import Config
from inbox.runtime import Mainland

log = logging.getLogger("mainland.demo")


def _sandbox(module: str) -> ModuleType:
    """`sandbox.<module>` from the checkout: the imitations are demo and test tools, not part of the
    installed product (`pip install .` leaves them out), so they are found beside the source tree."""
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "sandbox" / "__init__.py").is_file() and str(checkout) not in sys.path:
        sys.path.append(str(checkout))
    try:
        return importlib.import_module(f"sandbox.{module}")
    except ModuleNotFoundError as exc:
        if exc.name not in {"sandbox", f"sandbox.{module}"}:
            raise click.ClickException(
                f"the live demo needs {exc.name!r}: install the demo extra (pip install -e '.[demo]', "
                "which scripts/demo.sh does)") from exc
        raise click.ClickException(
            "the live demo runs from a checkout of Mainland (its channel imitations live in sandbox/, "
            "which is not installed with the product): clone the repository and run scripts/demo.sh, "
            "or set demo.live_channels: false") from exc


def login_lines(config: Config, mainland: Mainland, url: str) -> list[str]:
    """What to open and how to sign in, for the console."""
    settings = demo_data.DemoSettings.from_config(config)
    password = demo_data.demo_password(settings)
    lines = [f"  open      {url}",
             f"  sign in   {settings.admin_email} / "
             + (password or f"(unknown: set one with `mainland set-password {settings.admin_email}`)")]
    team = team_line(settings, mainland)
    if team:
        lines.append(f"  team      {team}")
    for name in mainland.channel_names(kind="webform"):
        lines.append(f"  web form  {url}forms/{name}")
    return lines


def team_line(settings: demo_data.DemoSettings, mainland: Mainland) -> str | None:
    """The demo's colleagues and how they sign in (with the admin's password), or None before seeding."""
    store = mainland.open_store(migrate=True)
    try:
        present = [c for c in demo_data.COLLEAGUES if store.agent_by_email(c.email)]
    finally:
        store.close()
    if not present:
        return None
    return f"{settings.team}, same password: " + ", ".join(f"{c.email} ({c.label})" for c in present)


class ColleaguesAtWork:
    """While the demo serves: every minute, the demo's colleagues count as active (inbox/demo.py)."""

    EVERY = 60.0

    def __init__(self, mainland: Mainland) -> None:
        self.mainland = mainland
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="demo-colleagues", daemon=True)

    def start(self) -> ColleaguesAtWork:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)

    def _run(self) -> None:
        while not self.stopping.wait(self.EVERY):
            try:
                store = self.mainland.open_store()
                try:
                    demo_data.keep_colleagues_at_work(store)
                finally:
                    store.close()
            except Exception:  # a busy database now and then must not end the demo
                log.warning("demo: could not keep the colleagues at work", exc_info=True)


def _seed(config: Config, mainland: Mainland) -> None:
    store = mainland.open_store(migrate=True)
    try:
        results = demo_data.seed(mainland, store)
    finally:
        store.close()
    for result in results:
        click.echo(f"demo {result.name}: {result.detail}")


def _keep_earlier_run(mainland: Mainland, channels: list[str]) -> None:
    """The imitations start empty and number everything afresh: make room for this run's items."""
    store = mainland.open_store(migrate=True)
    try:
        moved = demo_data.keep_earlier_run(store, channels)
    finally:
        store.close()
    if moved:
        click.echo(f"demo: kept the previous run's data ({moved} message(s) on the imitated channels; "
                   "--fresh starts afresh)")


@main.command()
@click.option("--host", default=None, help="Address to listen on (default: web.host, else 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to listen on (default: web.port, else 5000).")
@click.option("--seed-only", is_flag=True, help="Seed the demo data and exit without serving.")
@click.option("--fresh", is_flag=True,
              help="Start afresh, forgetting the previous run's conversations, replies and answers "
                   "(the login stays). By default they are kept.")
# Kept is the default now; the flag stays so that older scripts and habits still work.
@click.option("--keep-data", is_flag=True, hidden=True)
@pass_context
def demo(ctx: Context, host: str | None, port: int | None, seed_only: bool, fresh: bool, keep_data: bool) -> None:
    """Run the demo: sample data, a team and an answer library, live channels, the web app and the worker.

    What you do in the demo is kept between runs; --fresh starts afresh.
    """
    if fresh and keep_data:
        raise click.UsageError("--fresh and --keep-data contradict each other")
    config = ctx.config
    settings = demo_data.DemoSettings.from_config(config)
    if fresh and isinstance(config.database, str):
        raise click.ClickException("--fresh removes the demo's own SQLite file; with a PostgreSQL database, drop "
                                   "and create it yourself")
    if fresh and demo_data.start_afresh(config):
        click.echo("demo: starting afresh (--fresh): the previous run's data is gone, the login stays")
    if seed_only or not settings.live_channels:
        mainland = ctx.mainland
        _seed(config, mainland)
        if seed_only:
            click.echo(f"demo login: {settings.admin_email} / {demo_data.demo_password(settings)}")
            click.echo(f"demo team: {team_line(settings, mainland)}")
            return
        _serve(ctx, config, mainland, host, port)
        return

    demo_stack = _sandbox("demo_stack")
    CHANNEL_NAMES, DemoStack = demo_stack.CHANNEL_NAMES, demo_stack.DemoStack  # noqa: N806 - module constants

    host = host or web_setting(ctx, "host", DEFAULT_HOST)
    port = port if port is not None else int(web_setting(ctx, "port", DEFAULT_PORT))
    stack = DemoStack(poll_every=settings.poll_every, say=click.echo).start()
    scenario = None
    colleagues = None
    try:
        config = demo_data.live_config(
            config, stack.channels(), allow_hosts=stack.allow_hosts(), mail_settings=stack.mail_settings(),
            base_url=url_for_host(host, port).rstrip("/") if port else None)
        mainland = Mainland(config)
        _seed(config, mainland)
        _keep_earlier_run(mainland, list(stack.channels()))
        colleagues = ColleaguesAtWork(mainland).start()
        forms = mainland.channel_names(kind="webform")

        def announce(url: str) -> None:
            nonlocal scenario
            click.echo("\nMainland demo is running:")
            for line in login_lines(config, mainland, url):
                click.echo(line)
            live = ", ".join(CHANNEL_NAMES[name] for name in stack.channels())
            click.echo(f"  live      {live} (imitations on 127.0.0.1), "
                       f"email replies to an SMTP sink on {stack.smtp.host}:{stack.smtp.port}")
            click.echo("Customers start writing in now; replies you send show up below (→). "
                       "Ctrl-C stops the demo; docs/demo.md explains it.\n")
            stack.connect(url)
            if settings.scenario:
                Scenario = _sandbox("scenario").Scenario  # noqa: N806 - a class

                scenario = Scenario(stack, url, form_channel=forms[0] if forms else None, say=click.echo).start()

        serve_forever(
            create_app(config),
            host=host,
            port=port,
            threads=int(web_setting(ctx, "threads", DEFAULT_THREADS)),
            announce=announce,
        )
    finally:
        if scenario is not None:
            scenario.stop()
        if colleagues is not None:
            colleagues.stop()
        stack.stop()


def _serve(ctx: Context, config: Config, mainland: Mainland, host: str | None, port: int | None) -> None:
    def announce(url: str) -> None:
        click.echo("\nMainland demo is running:")
        for line in login_lines(config, mainland, url):
            click.echo(line)
        click.echo("Ctrl-C stops it; what you do is kept (--fresh starts afresh).\n")

    colleagues = ColleaguesAtWork(mainland).start()
    try:
        serve_forever(
            create_app(config),
            host=host or web_setting(ctx, "host", DEFAULT_HOST),
            port=port if port is not None else int(web_setting(ctx, "port", DEFAULT_PORT)),
            threads=int(web_setting(ctx, "threads", DEFAULT_THREADS)),
            announce=announce,
        )
    finally:
        colleagues.stop()
