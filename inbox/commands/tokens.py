"""API tokens from the command line: `mainland api-token create | list | revoke`.

The same tokens as the admin page (`/admin/tokens`, inbox/web/tokens.py): stored as a SHA-256 with a
short prefix, the token itself printed once. Making and revoking are written to the audit log with
the actor `cli`. Scopes: the names of `inbox.web.tokens.SCOPES` (`read`, `write`, `admin` for the REST
API v1; `customers:read`, `customers:write`, `health:read`).
"""

from __future__ import annotations

import datetime as dt

import click

from inbox import clock
from inbox.cli import Context, main, pass_context
from inbox.store.base import iso
from inbox.web.tokens import MAX_NAME_CHARS, SCOPES, SHOWN_CHARS, new_token, token_digest, token_state

MAX_EXPIRY_DAYS = 3650


def _scopes(value: str) -> list[str]:
    scopes = sorted({s.strip() for s in value.split(",") if s.strip()})
    unknown = [s for s in scopes if s not in SCOPES]
    if not scopes or unknown:
        raise click.BadParameter(f"choose from {', '.join(SCOPES)}" + (f" (not {', '.join(unknown)})" if unknown
                                                                         else ""), param_hint="--scope")
    return scopes


@main.group("api-token")
def api_token() -> None:
    """Bearer tokens for the HTTP API: create, list, revoke."""


@api_token.command("create")
@click.option("--name", required=True, help="What will use the token, e.g. 'CRM sync'.")
@click.option("--scope", "scope", required=True, help="Comma-separated scopes, e.g. read,write.")
@click.option("--expires-days", type=click.IntRange(1, MAX_EXPIRY_DAYS), default=None,
              help="Days until the token expires (default: never).")
@pass_context
def create(ctx: Context, name: str, scope: str, expires_days: int | None) -> None:
    """Make a token and print it once: it cannot be shown again."""
    name = " ".join(name.split())
    if not name or len(name) > MAX_NAME_CHARS:
        raise click.BadParameter(f"1 to {MAX_NAME_CHARS} characters", param_hint="--name")
    scopes = _scopes(scope)
    token = new_token()
    now = clock.now()
    expires_at = iso(now + dt.timedelta(days=expires_days)) if expires_days else None
    store = ctx.open_store()
    try:
        token_id = store.api_tokens.create(name=name, token_hash=token_digest(token), prefix=token[:SHOWN_CHARS],
                                           scopes=scopes, created_by=None, expires_at=expires_at, now=iso(now))
        with store.write():
            store.audit(iso(now), "cli", "api_token_created", "api_token", token_id, name=name, scopes=scopes,
                        expires_at=expires_at)
    finally:
        store.close()
    click.echo(f"token #{token_id} ({name}; {' '.join(scopes)}; expires {expires_at or 'never'}):", err=True)
    click.echo(token)


@api_token.command("list")
@pass_context
def list_tokens(ctx: Context) -> None:
    """Every token made in the browser or here: id, state, prefix, scopes, name, last use."""
    store = ctx.open_store()
    try:
        tokens = store.api_tokens.all()
    finally:
        store.close()
    if not tokens:
        click.echo("no tokens")
        return
    now = clock.now()
    for token in tokens:
        click.echo(f"#{token.id:<5} {token_state(token, now):<8} {token.prefix}…  {' '.join(token.scopes):<28} "
                   f"{token.name}  (last used {token.last_used_at or 'never'}, "
                   f"expires {token.expires_at or 'never'})")


@api_token.command("revoke")
@click.argument("token_id", type=int)
@pass_context
def revoke(ctx: Context, token_id: int) -> None:
    """Revoke a token: requests with it are refused from now on."""
    store = ctx.open_store()
    try:
        token = store.api_tokens.get(token_id)
        if token is None:
            raise click.ClickException(f"no token #{token_id}")
        if not store.api_tokens.revoke(token_id, by=None, now=iso(clock.now())):
            click.echo(f"token #{token_id} was revoked already")
            return
        with store.write():
            store.audit(iso(clock.now()), "cli", "api_token_revoked", "api_token", token_id, name=token.name)
    finally:
        store.close()
    click.echo(f"token #{token_id} ({token.name}) revoked")
