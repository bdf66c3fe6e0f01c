"""Who may see which conversation: the one place the team access rule is decided.

The rule (issue 3): an agent or lead sees the conversations of the teams they belong to plus the
unrouted pool (conversations with no team); managers and admins see everything; and with
`web: {visibility: all}` in the configuration everyone signed in sees everything. Anonymous
visitors see nothing.

Callers never compare team ids themselves. Pages that show one object call `require_conversation`
(or `require_message` / `require_attachment`), which raise NotFound for both unknown and hidden ids,
so an id reveals nothing. Pages that list, count or search pass `visible_team_ids(...)` (or
`conversation_scope(...).team_ids`) to a store verb that takes `team_ids` and filters in SQL with
`inbox.store.teams.team_clause`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import current_app, g, has_app_context, has_request_context
from werkzeug.exceptions import NotFound

from inbox.config import VISIBILITIES
from inbox.store import NotFound as StoreNotFound
from inbox.store import Store

#: Roles that see every conversation whatever their teams.
SEE_ALL_ROLES = frozenset({"manager", "admin"})
#: Roles that may use the admin pages.
ADMIN_ROLES = frozenset({"admin"})


@dataclass(frozen=True)
class Scope:
    """What one agent may see. `team_ids` None means every conversation."""

    team_ids: frozenset[int] | None

    @property
    def everything(self) -> bool:
        return self.team_ids is None

    def allows(self, team_id: int | None) -> bool:
        """Whether a conversation of team `team_id` (None = unrouted) is in this scope."""
        return self.team_ids is None or team_id is None or team_id in self.team_ids


NOTHING = Scope(frozenset())


def configured_visibility(config: Any = None) -> str:
    """`web.visibility` of `config` (or of the running app): "team" (the default) or "all"."""
    if config is None and has_app_context():
        mainland = current_app.extensions.get("mainland")
        config = mainland.config if mainland is not None else None
    web = (getattr(config, "extra", None) or {}).get("web") if config is not None else None
    value = web.get("visibility", "team") if isinstance(web, Mapping) else "team"
    return value if value in VISIBILITIES else "team"


def conversation_scope(store: Store, agent: Mapping[str, Any] | None, *, config: Any = None) -> Scope:
    """The agent's scope. Anonymous (None) sees nothing; the answer is cached for the request."""
    if agent is None:
        return NOTHING
    cache = g.setdefault("_access_scopes", {}) if has_request_context() else {}
    key = (agent["id"], agent["role"])
    if key in cache:
        return cache[key]
    if agent["role"] in SEE_ALL_ROLES or configured_visibility(config) == "all":
        scope = Scope(None)
    else:
        scope = Scope(frozenset(store.agent_team_ids(agent["id"])))
    cache[key] = scope
    return scope


def visible_team_ids(store: Store, agent: Mapping[str, Any] | None, *, config: Any = None) -> set[int] | None:
    """Team ids whose conversations `agent` sees (plus the unrouted ones), or None for everything."""
    scope = conversation_scope(store, agent, config=config)
    return None if scope.team_ids is None else set(scope.team_ids)


def can_see_conversation(store: Store, agent: Mapping[str, Any] | None, conversation: Mapping[str, Any]) -> bool:
    """Whether `agent` may see `conversation` (a row with `team_id`) and everything in it."""
    if agent is None:
        return False
    return conversation_scope(store, agent).allows(conversation.get("team_id"))


def require_conversation(store: Store, agent: Mapping[str, Any] | None, conversation_id: int) -> dict[str, Any]:
    """The conversation if `agent` may see it; NotFound (404) when it is unknown or hidden."""
    try:
        conversation = store.conversation(conversation_id)
    except StoreNotFound:
        raise NotFound() from None
    if not can_see_conversation(store, agent, conversation):
        raise NotFound()
    return conversation


def require_message(store: Store, agent: Mapping[str, Any] | None, message_id: int) -> dict[str, Any]:
    """The message if `agent` may see its conversation; NotFound otherwise."""
    try:
        message = store.message(message_id)
    except StoreNotFound:
        raise NotFound() from None
    require_conversation(store, agent, message["conversation_id"])
    return message


def require_attachment(store: Store, agent: Mapping[str, Any] | None, attachment_id: int) -> dict[str, Any]:
    """The attachment row if `agent` may see its conversation; NotFound otherwise."""
    try:
        attachment = store.attachment(attachment_id)
    except StoreNotFound:
        raise NotFound() from None
    require_conversation(store, agent, attachment["conversation_id"])
    return attachment


def is_admin(agent: Mapping[str, Any] | None) -> bool:
    return agent is not None and agent["role"] in ADMIN_ROLES
