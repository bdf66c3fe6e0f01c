"""Reply signatures: the agent's own, then their channel's (or else their team's), added on send.

A signature is a template with `{agent_name}`, `{agent_first_name}`, `{team_name}` and
`{channel_name}`; any other `{word}` is left as written, visibly, so a typo shows instead of
crashing or vanishing. The rendered signature is stored with the reply (`messages.signature`) and
added to its text (and HTML) when the outbox hands it to the channel, so it is never typed into the
composer, an undone reply comes back without it, and a changed template does not alter what was sent.
Automatic messages (surveys) are not signed.
"""

from __future__ import annotations

import re
from typing import Any

#: A `{variable}` of a signature template.
VARIABLE = re.compile(r"\{(\w+)\}")
VARIABLES = ("agent_name", "agent_first_name", "team_name", "channel_name")
#: Longest signature template accepted.
MAX_SIGNATURE_CHARS = 2000


def render(template: str, values: dict[str, str]) -> str:
    """`template` with its known variables filled in; unknown ones stay as written."""
    return VARIABLE.sub(lambda m: values.get(m.group(1), m.group(0)), template).strip()


def signature_for(store: Any, conversation: dict[str, Any], agent: dict[str, Any] | None) -> str | None:
    """The rendered signature an agent's reply in `conversation` gets, or None when there is none."""
    if not agent or agent.get("id") is None:
        return None
    team = store.team(conversation["team_id"]) if conversation.get("team_id") else None
    name = (agent.get("name") or "").strip()
    values = {
        "agent_name": name,
        "agent_first_name": name.split()[0] if name else "",
        "team_name": team["name"] if team else "",
        "channel_name": conversation.get("channel") or "",
    }
    shared = store.signatures.get("channel", conversation.get("channel") or "")
    if shared is None and team:
        shared = store.signatures.get("team", team["id"])
    parts = [render(t, values) for t in (store.signatures.get("agent", agent["id"]), shared) if t and t.strip()]
    return "\n\n".join(p for p in parts if p) or None


def signed_text(text: str, signature: str | None) -> str:
    """The reply's text as sent: the signature after a blank line."""
    if not signature:
        return text
    return f"{text.rstrip()}\n\n{signature}" if text.strip() else signature
