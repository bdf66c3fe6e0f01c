"""Commands that run Mainland: `serve` (web + worker), `worker`, `poll` one channel, and `backup`.

`mainland serve` is the one-machine way: the web app under waitress (a production WSGI server,
pure Python, threads) and the worker in the same process. In production the web app can run
under gunicorn (`wsgi:app`) with one `mainland worker` beside it; the database lease makes sure
that only one scheduler polls, however many are started (see docs/operations.md).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import click

from inbox import clock
from inbox.cli import Context, main, pass_context
from inbox.poller import PollOutcome, poll_channel
from inbox.runtime import Mainland
from inbox.store.base import StoreError, parse_iso
from inbox.worker import Worker

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000
DEFAULT_THREADS = 8
#: Open connections waitress serves at once besides the live streams' (polling tabs keep theirs open).
#: poll() instead of select() lifts select's limit of 1024 file descriptors.
CONNECTION_LIMIT = 500


def pause(seconds: float) -> None:
    """Wait between polls (a function of its own so a test can replace it without touching time.sleep)."""
    time.sleep(seconds)


def _show_progress() -> None:
    """A long-running process reports what it does, even without --verbose."""
    logger = logging.getLogger("mainland")
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)


# poll ---------------------------------------------------------------------------------------------

def describe(outcome: PollOutcome) -> str:
    """One line saying what a poll did, for people."""
    if outcome.skipped:
        return f"{outcome.channel}: skipped, {outcome.skipped} (--ignore-pause polls anyway)"
    r = outcome.report
    done = (f"{r.stored} stored, {r.duplicates} duplicate(s), {r.quarantined} quarantined "
            f"in {outcome.pages} page(s)")
    if outcome.error:
        delay = outcome.retry_after or 0
        at = (clock.now() + dt.timedelta(seconds=delay)).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"{outcome.channel}: error: {outcome.error} ({done}); next try in {delay:.0f} s, at {at}"
    return f"{outcome.channel}: {done}"


def _known_channel(mainland: Mainland, channel: str) -> None:
    if channel not in mainland.config.channels:
        known = ", ".join(sorted(mainland.config.channels)) or "none (add some under `channels:`)"
        raise click.ClickException(f"no channel named {channel!r}; configured channels: {known}")
    cls = mainland.connector_class(channel)
    if cls.push_only:
        raise click.ClickException(
            f"channel {channel!r} ({cls.kind}) is push-only: its items arrive by web request, there is "
            "nothing to poll")


@main.command()
@click.argument("channel")
@click.option("--once", is_flag=True, help="Poll once and exit (exit status 1 if the poll failed).")
@click.option("--ignore-pause", is_flag=True,
              help="Poll even if the channel is paused after an error or a rate limit (first poll only).")
@pass_context
def poll(ctx: Context, channel: str, once: bool, ignore_pause: bool) -> None:
    """Poll CHANNEL now and print what came in; without --once, keep polling until Ctrl-C."""
    mainland = ctx.mainland
    _known_channel(mainland, channel)
    if not mainland.config.channels[channel].enabled:
        click.echo(f"note: channel {channel!r} is disabled in the configuration; polling it as asked", err=True)
    store = ctx.open_store()
    try:
        if once:
            outcome = poll_channel(mainland, store, channel, ignore_pause=ignore_pause)
            click.echo(describe(outcome))
            if outcome.error:
                raise SystemExit(1)
            return
        every = mainland.config.channels[channel].poll_every or mainland.connector_class(channel).default_poll_every
        click.echo(f"polling {channel} every {every:g} s; Ctrl-C stops")
        first = True
        try:
            while True:
                outcome = poll_channel(mainland, store, channel, ignore_pause=ignore_pause and first)
                first = False
                click.echo(f"{dt.datetime.now().strftime('%H:%M:%S')} {describe(outcome)}")
                wait = every
                paused_until = parse_iso(store.channel_health().get(channel, {}).get("paused_until"))
                if paused_until:
                    # Sleep through the pause instead of printing one "skipped" line per interval.
                    wait = max(every, (paused_until - clock.now()).total_seconds())
                pause(wait)
        except KeyboardInterrupt:
            click.echo("stopped")
    finally:
        store.close()


# worker -----------------------------------------------------------------------------------------

def _announce_worker(worker: Worker) -> None:
    if not worker.is_leader:
        click.echo("worker: on standby, another worker holds the scheduler lease; taking over if it stops")
    elif not worker.plans:
        click.echo("worker: running; no channel to poll (web forms and webhooks arrive through the web app)")
    else:
        channels = ", ".join(f"{p.channel} (every {p.every:g} s)" for p in worker.plans)
        click.echo(f"worker: polling {channels}")


@main.command()
@pass_context
def worker(ctx: Context) -> None:
    """Run the scheduler alone, in the foreground: polls every channel while it holds the lease.

    Start one beside the web app (gunicorn wsgi:app). Starting more is safe: only the one
    holding the database lease polls, the others stand by and take over if it stops.
    """
    _show_progress()
    Worker(ctx.mainland).run_forever(on_start=_announce_worker)


# serve ------------------------------------------------------------------------------------------

def url_for_host(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in {"0.0.0.0", "", "::"} else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


def create_server(app, *, host: str, port: int, threads: int = DEFAULT_THREADS):
    """The waitress server `serve` runs: `threads` for requests, plus one for each live stream and
    one for each waiting chat long poll.

    A live stream (inbox/web/live.py) holds its thread for minutes, a chat widget's long poll
    (inbox/web/chat.py) for up to 25 s and then asks again at once; with threads of their own they
    never take the ones pages need, however many tabs and widgets are open (past `web.live_streams`
    the live pages poll, past `web.chat_waits` the widgets). Each is an open connection too, and a
    widget's browser keeps a second one for its posts beside the waiting one, so waitress's limit of
    open connections (100 by default, past which it stops accepting and pages wait) is raised beside it.
    """
    from waitress import create_server as waitress_server

    from inbox.web.chat import reserve_wait_threads
    from inbox.web.live import reserve_stream_threads
    from inbox.web.server_loop import use_changed_only_loop

    streams = reserve_stream_threads(app)
    waits = reserve_wait_threads(app)
    server = waitress_server(app, host=host, port=port, threads=threads + streams + waits, ident="Mainland",
                             connection_limit=CONNECTION_LIMIT + streams + 2 * waits, asyncore_use_poll=True,
                             clear_untrusted_proxy_headers=not _behind_proxies(app))
    # Hundreds of open long polls and streams: waitress's own loop asks every one of them on every
    # turn (inbox/web/server_loop.py).
    use_changed_only_loop(server)
    return server


def _behind_proxies(app) -> bool:
    """Whether `web.trusted_proxies` is set: the app itself reads the X-Forwarded-* headers then
    (inbox/web/proxy.py), so waitress must pass them on. By default it drops them from every request
    (it trusts no proxy of its own), and every client looked like the proxy: one address for all the
    sign-in and chat limits."""
    web = app.extensions["mainland"].config.extra.get("web") or {}
    return bool(isinstance(web, dict) and web.get("trusted_proxies"))


def serve_forever(
    app,
    *,
    host: str,
    port: int,
    threads: int = DEFAULT_THREADS,
    with_worker: bool = True,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Serve `app` with waitress (and run the worker beside it) until SIGTERM or Ctrl-C.

    `announce(url)` is called once the socket listens, before requests are served.
    """
    _show_progress()
    mainland: Mainland = app.extensions["mainland"]
    try:
        server = create_server(app, host=host, port=port, threads=threads)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
                                   "pass --port (or --host) to use another") from exc
    worker = Worker(mainland) if with_worker else None

    def terminate(signum, frame):  # SIGTERM ends the serve loop like Ctrl-C does
        raise SystemExit(0)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        if worker:
            worker.start()
        url = url_for_host(host, server.effective_port)
        (announce or (lambda u: click.echo(f"Mainland is running at {u}")))(url)
        if worker:
            _announce_worker(worker)
        else:
            click.echo("worker: not started (--no-worker); run `mainland worker` to poll channels")
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        click.echo("stopping")
        server.close()
        if worker:
            worker.stop()
        signal.signal(signal.SIGTERM, previous)


def web_setting(ctx: Context, key: str, default):
    web = ctx.config.extra.get("web") or {}
    return web.get(key, default)


@main.command()
@click.option("--host", default=None, help="Address to listen on (default: web.host, else 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to listen on (default: web.port, else 5000).")
@click.option("--threads", type=int, default=None, help="Request threads (default: web.threads, else 8).")
@click.option("--no-worker", is_flag=True, help="Serve the web app only; run `mainland worker` separately.")
@pass_context
def serve(ctx: Context, host: str | None, port: int | None, threads: int | None, no_worker: bool) -> None:
    """Run the web app (waitress) and the worker in one process: Mainland on one machine."""
    app = ctx.create_app()
    serve_forever(
        app,
        host=host or web_setting(ctx, "host", DEFAULT_HOST),
        port=port if port is not None else int(web_setting(ctx, "port", DEFAULT_PORT)),
        threads=threads or int(web_setting(ctx, "threads", DEFAULT_THREADS)),
        with_worker=not no_worker,
    )


# backup -----------------------------------------------------------------------------------------

@main.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace PATH if it exists.")
@pass_context
def backup(ctx: Context, path: Path, force: bool) -> None:
    """Copy the live database to PATH (online backup API) and check the copy's integrity.

    Safe while Mainland runs. The copy is written beside PATH and renamed into place only after
    it passed `PRAGMA integrity_check`, so a failed backup never spoils an earlier one.
    Attachments are files in `attachments_dir` (data_dir/attachments): back that folder up as well.
    """
    database = ctx.config.database
    if isinstance(database, str):
        raise click.ClickException(
            "this installation's database is PostgreSQL: back it up with pg_dump, or the server's base backups "
            "and archived log for point-in-time recovery (docs/operations.md)")
    if path.exists() and path.resolve() == database.resolve():
        raise click.ClickException("the backup cannot replace the live database")
    if path.exists() and not force:
        raise click.ClickException(f"{path} exists; pass --force to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    store = ctx.mainland.open_store()
    try:
        store.backup(partial)
        os.replace(partial, path)
    except (StoreError, sqlite3.Error, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise click.ClickException(f"backup failed, nothing written to {path}: {exc}") from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        store.close()
    click.echo(f"backup of {database} written to {path} ({path.stat().st_size:,} bytes); integrity check ok")
    click.echo(f"back up the attachment files in {ctx.config.attachments_dir} too (after this copy)")
