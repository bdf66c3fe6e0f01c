"""Agent accounts from the command line: create the first admin, reset a password.

`mainland create-user --email ann@example.org --name Ann --role admin` asks for the password
twice (or takes `--password` / $MAINLAND_PASSWORD for scripts). `mainland set-password EMAIL`
sets a new one and ends every session of that agent.
"""

from __future__ import annotations

import click

from inbox.cli import Context, main, pass_context
from inbox.store.agents import ROLES, AgentExists
from inbox.web.auth import hash_password, password_problem


def _check_password(password: str) -> str:
    problem = password_problem(password)
    if problem:
        raise click.BadParameter(problem, param_hint="password")
    return password


def _check_email(email: str) -> str:
    email = email.strip().lower()
    local, at, domain = email.rpartition("@")
    if not at or not local or "." not in domain or any(ch.isspace() for ch in email):
        raise click.BadParameter(f"{email!r} is not an email address", param_hint="--email")
    return email


@main.command("create-user")
@click.option("--email", required=True, help="The agent's email address (their sign-in name).")
@click.option("--name", required=True, help="The name shown to colleagues.")
@click.option("--role", type=click.Choice(ROLES), default="agent", show_default=True,
              help="What the agent may do; 'admin' manages everything.")
@click.option("--locale", type=click.Choice(["en", "nl"]), default=None,
              help="The agent's language (default: their browser's).")
@click.option("--password", envvar="MAINLAND_PASSWORD", prompt=True, hide_input=True, confirmation_prompt=True,
              help="The password (default: asked twice; or set $MAINLAND_PASSWORD).")
@pass_context
def create_user(ctx: Context, email: str, name: str, role: str, locale: str | None, password: str) -> None:
    """Add an agent who can sign in to the web inbox."""
    email = _check_email(email)
    _check_password(password)
    store = ctx.open_store()
    try:
        agent_id = store.create_agent(email=email, name=name.strip(), role=role,
                                      password_hash=hash_password(password), locale=locale)
    except AgentExists as exc:
        raise click.ClickException(f"{exc}; use `mainland set-password {email}` to change the password") from None
    finally:
        store.close()
    click.echo(f"created {role} #{agent_id} {email}")


@main.command("set-password")
@click.argument("email")
@click.option("--password", envvar="MAINLAND_PASSWORD", prompt="New password", hide_input=True,
              confirmation_prompt=True, help="The new password (default: asked twice; or set $MAINLAND_PASSWORD).")
@pass_context
def set_password(ctx: Context, email: str, password: str) -> None:
    """Set an agent's password; this also signs them out everywhere."""
    _check_password(password)
    store = ctx.open_store()
    try:
        agent = store.agent_by_email(email)
        if agent is None:
            raise click.ClickException(f"no agent with email {email.strip().lower()}")
        store.set_agent_password(agent["id"], hash_password(password), end_sessions=True)
    finally:
        store.close()
    click.echo(f"password set for {agent['email']}; their sessions have ended")
