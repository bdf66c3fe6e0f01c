"""The `mainland` command: every operator action, each taking `--config FILE` (or $MAINLAND_CONFIG).

Commands live one subject per module in `inbox/commands/`; each module adds its commands to the
`main` group below, and every module in that package is loaded, so a new command edits no list.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import sqlite3
import sys
from functools import cached_property

import click
import psycopg

from inbox import config as config_module
from inbox import storage_errors
from inbox.config import Config, ConfigError
from inbox.runtime import Mainland


class Context:
    """What every command gets: the config path, and the config and app built from it on demand."""

    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path

    @cached_property
    def config(self) -> Config:
        return config_module.load(self.config_path)

    @cached_property
    def mainland(self) -> Mainland:
        return Mainland(self.config)

    def open_store(self):
        return self.mainland.open_store(migrate=True)

    def create_app(self):
        from inbox import create_app

        return create_app(self.config)


pass_context = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", envvar="MAINLAND_CONFIG", type=click.Path(dir_okay=False),
              help="The YAML config file (default: $MAINLAND_CONFIG, else built-in defaults).")
@click.option("-v", "--verbose", is_flag=True, help="Log what is going on.")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, verbose: bool) -> None:
    """Mainland: one inbox for every customer-care channel."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.obj = Context(config_path)


def _load_commands() -> None:
    from inbox import commands

    for module_info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"{commands.__name__}.{module_info.name}")


def run() -> None:
    """Entry point: configuration and storage errors (locked database, full disk) reported as a message
    that says what to do, not a traceback."""
    try:
        main(standalone_mode=True)
    except ConfigError as exc:
        click.echo(f"mainland: {exc}", err=True)
        sys.exit(2)
    except (sqlite3.DatabaseError, psycopg.Error, OSError) as exc:
        explained = storage_errors.explain(exc)
        if explained is None:
            raise
        click.echo(f"mainland: {explained} ({exc})", err=True)
        sys.exit(1)


_load_commands()
