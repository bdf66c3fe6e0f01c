"""The queue: one list of every channel's conversations, with filters, saved views, counts,
bulk changes and full-text search.

Every value a request can choose is checked against an allow-list here (statuses, sorts,
channels, team, agent and label ids, priorities, the keyset position) before it reaches the
store, which puts it into SQL only as a parameter (SEC-12). Anything else is a 400 page, never a
500. Lists, counts and search results are limited to the agent's teams in SQL (inbox.access), so
another team's conversations leave no title, snippet or count behind.

Pages are keyset-paged: `?after=<sort value>,<id>` names the last row of the previous page, so a
page costs the same at the end of a large queue as at its start and new conversations arriving
meanwhile neither repeat nor skip a row.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

from babel import dates
from flask import Blueprint, Flask, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import get_locale, get_timezone
from markupsafe import Markup, escape
from werkzeug.datastructures import MultiDict

from inbox import access, clock, service_levels
from inbox.i18n import gettext as _
from inbox.i18n import lazy_gettext as _l
from inbox.i18n import ngettext
from inbox.sanitize import first_line
from inbox.store import StoreError
from inbox.store.base import parse_iso
from inbox.store.queue import (
    ASSIGNEE_ANY,
    ASSIGNEE_MINE,
    ASSIGNEE_NONE,
    BULK_STATUSES,
    COUNT_CAP,
    MAX_LABEL_NAME,
    MAX_VIEW_NAME,
    MIN_PREFIX_CHARS,
    NO_TEAM,
    PAGE_SIZE,
    PRIORITIES,
    SORTS,
    STATUS_GROUPS,
    STATUSES,
    PrefixTooShortError,
    QueueQuery,
    SearchQueryError,
    fts_query,
)
from inbox.web import get_store, mainland
from inbox.web.auth import current_agent, login_required
from inbox.web.conversations import direction_label, flag_help, flag_label, status_label
from inbox.web.security import error_page

bp = Blueprint("queue", __name__)

#: The most conversations one bulk request may name.
MAX_BULK = 500

STATUS_FILTER_LABELS = {
    "active": _l("Needs attention"),
    "new": _l("New"),
    "open": _l("Open"),
    "pending": _l("Pending"),
    "snoozed": _l("Snoozed"),
    "resolved": _l("Resolved"),
    "spam": _l("Spam"),
    "all": _l("All"),
}
#: The status filters shown in the side bar with a count.
COUNTED_STATUSES = ("active", "new", "open", "pending", "snoozed")
PRIORITY_LABELS = {0: _l("None"), 1: _l("Low"), 2: _l("Medium"), 3: _l("High"), 4: _l("Urgent")}
SORT_LABELS = {"activity": _l("Latest activity"), "waiting": _l("Waiting longest"),
               "urgency": _l("Most urgent (service level)")}

_ID = re.compile(r"^[0-9]{1,15}$")
#: A keyset position: the sort value (a stored timestamp, or "~" for "not waiting") and an id.
_AFTER = re.compile(r"^([0-9][0-9T:.Z+\-]{0,39}|~),([0-9]{1,15})$")


class InvalidFilter(ValueError):
    """A query-string value outside its allow-list."""


# Reading the query string ------------------------------------------------------------------

def _int_id(value: str, what: str) -> int:
    if not _ID.match(value):
        raise InvalidFilter(what)
    return int(value)


def _allowed_channels() -> set[str]:
    return set(mainland().config.channels) | set(get_store().conversation_channels())


def parse_query(args: MultiDict | dict[str, str]) -> QueueQuery:
    """A QueueQuery from query-string values; InvalidFilter for anything outside an allow-list.

    Empty values mean "no filter" (that is what an untouched <select> sends).
    """
    store = get_store()

    def get(name: str) -> str | None:
        value = args.get(name)
        return value.strip() if isinstance(value, str) and value.strip() else None

    status = get("status") or "active"
    if status not in STATUS_GROUPS:
        raise InvalidFilter("status")
    sort = get("sort") or "activity"
    if sort not in SORTS:
        raise InvalidFilter("sort")
    channel = get("channel")
    if channel is not None and channel not in _allowed_channels():
        raise InvalidFilter("channel")
    team: int | str | None = get("team")
    if team is not None and team != NO_TEAM:
        team = _int_id(team, "team")
        if team not in store.queue_team_names():
            raise InvalidFilter("team")
    assignee: int | str | None = get("assignee")
    if assignee == ASSIGNEE_ANY:
        assignee = None
    elif assignee is not None and assignee not in (ASSIGNEE_MINE, ASSIGNEE_NONE):
        assignee = _int_id(assignee, "assignee")
        if store.agent(assignee) is None:
            raise InvalidFilter("assignee")
    label = get("label")
    label_id = None
    if label is not None:
        label_id = _int_id(label, "label")
        if label_id not in {lab["id"] for lab in store.labels()}:
            raise InvalidFilter("label")
    priority = get("priority")
    priority_value = None
    if priority is not None:
        if not _ID.match(priority) or int(priority) not in PRIORITIES:
            raise InvalidFilter("priority")
        priority_value = int(priority)
    return QueueQuery(status=status, channel=channel, team=team, assignee=assignee, label=label_id,
                      priority=priority_value, sort=sort)


def parse_after(value: str | None) -> tuple[str, int] | None:
    if not value:
        return None
    match = _AFTER.match(value.strip())
    if not match:
        raise InvalidFilter("after")
    return match.group(1), int(match.group(2))


def _bad_filter():
    return error_page(400, _("This filter cannot be used"),
                      _("A filter or page position in the address is not valid. Start again from the queue."))


def _team_ids() -> set[int] | None:
    return access.visible_team_ids(get_store(), current_agent())


def queue_url(query: QueueQuery, **extra: str) -> str:
    return url_for("queue.index", **query.as_params(), **extra)


# Counts for the side bar ---------------------------------------------------------------------

def _nav(query: QueueQuery) -> dict[str, Any]:
    store = get_store()
    agent = current_agent()
    team_ids = _team_ids()

    def count(q: QueueQuery) -> int:
        return store.count_conversations(q, team_ids=team_ids, agent_id=agent["id"])

    statuses = [{"key": s, "label": STATUS_FILTER_LABELS[s], "url": queue_url(QueueQuery(status=s)),
                 "count": count(QueueQuery(status=s)) if s in COUNTED_STATUSES else None,
                 "current": query == QueueQuery(status=s, sort=query.sort)}
                for s in STATUS_GROUPS]
    shortcuts = []
    for key, label in ((ASSIGNEE_MINE, _l("Mine")), (ASSIGNEE_NONE, _l("Unassigned"))):
        q = QueueQuery(assignee=key)
        shortcuts.append({"key": key, "label": label, "url": queue_url(q), "count": count(q),
                          "current": query == QueueQuery(assignee=key, sort=query.sort)})
    views = []
    for view in store.saved_views(agent["id"]):
        try:
            q = parse_query(view["filters"])
        except InvalidFilter:
            q = None  # a label or team deleted since: the view stays listed so it can be deleted
        views.append({"id": view["id"], "name": view["name"], "url": queue_url(q) if q else None,
                      "count": count(q) if q else None, "current": q == query})
    return {"statuses": statuses, "shortcuts": shortcuts, "views": views}


# Template helpers ----------------------------------------------------------------------------

def count_label(n: int | None) -> str:
    if n is None:
        return ""
    return f"{COUNT_CAP}+" if n > COUNT_CAP else str(n)


def waiting_for(iso: str | None, now: dt.datetime | None = None) -> str:
    """How long the customer has waited, in words ("3 hours"), or "" when nobody waits."""
    try:
        since = parse_iso(iso) if iso else None
    except ValueError:
        return ""
    if since is None:
        return ""
    delta = (now or clock.now()) - since
    return dates.format_timedelta(max(delta, dt.timedelta(0)), granularity="minute", threshold=1.1, format="short",
                                  locale=get_locale())


def highlight(text: str | None, mark_open: str, mark_close: str) -> Markup:
    """A search snippet as HTML: the text escaped, the matched terms in <mark>.

    The markers are random per search (see QueueQueries.search), so message text cannot produce
    a tag; any unbalanced marker is closed, and the text between markers is always escaped.
    """
    parts: list[Markup] = []
    inside = False
    pos = 0
    text = text or ""
    pattern = re.compile(re.escape(mark_open) + "|" + re.escape(mark_close))
    for match in pattern.finditer(text):
        parts.append(escape(text[pos:match.start()]))
        if match.group() == mark_open and not inside:
            parts.append(Markup("<mark>"))
            inside = True
        elif match.group() == mark_close and inside:
            parts.append(Markup("</mark>"))
            inside = False
        pos = match.end()
    parts.append(escape(text[pos:]))
    if inside:
        parts.append(Markup("</mark>"))
    return Markup("").join(parts)


_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
#: Handles that are a network's internal id rather than anything a person would recognise: a DID
#: ("did:plc:…") or a long number (a page-scoped or account id). A phone number starts with "+".
_OPAQUE_HANDLE = re.compile(r"^(did:[a-z0-9]+:|\d{6,}$)", re.IGNORECASE)
_AVATAR_COLORS = ("#1d5f8a", "#7c3aed", "#0f766e", "#b45309", "#be185d", "#4d7c0f", "#9f1239", "#3730a3")


def is_opaque_handle(handle: str | None) -> bool:
    return bool(handle) and bool(_OPAQUE_HANDLE.match(handle.strip()))


def customer_label(name: str | None, handle: str | None) -> tuple[str, str]:
    """(headline, secondary) for a customer: the display name, else a readable handle; never a bare
    network id or DID when anything better is known. The secondary line is the handle when it adds
    something readable."""
    name = (name or "").strip()
    handle = (handle or "").strip()
    readable = "" if is_opaque_handle(handle) else handle
    if name and not is_opaque_handle(name):
        return name, readable if readable and readable != name else ""
    if readable:
        return readable, ""
    return str(_("Unknown customer")), ""


def initials(name: str | None) -> str:
    """Up to two letters for an avatar: "Ann de Vries" -> "AV", "bob@example.org" -> "B"."""
    words = [w for w in re.split(r"[\s@._-]+", name or "") if w and w[0].isalnum()]
    if not words:
        return "?"
    capitals = [w for w in words if w[0].isupper()] or words
    letters = capitals[0][0] + (capitals[-1][0] if len(capitals) > 1 else "")
    return letters.upper()


def avatar_color(agent_id: int | None) -> str:
    return _AVATAR_COLORS[(agent_id or 0) % len(_AVATAR_COLORS)]


def channel_marks() -> dict[str, dict[str, str]]:
    """Per configured channel: its icon letters and colour (declared by its connector) and its label."""
    marks = {}
    for name, channel in mainland().config.channels.items():
        cls = mainland().registry.get(channel.kind)
        label = getattr(cls, "display_name", channel.kind) if cls else channel.kind
        color = getattr(cls, "icon_color", None)
        marks[name] = {
            "text": (getattr(cls, "icon_text", None) or label[:1]).strip()[:2],
            "color": color if color and _COLOR.match(color) else "#52606d",
            "label": f"{label} · {name}" if name.lower() != label.lower() else label,
        }
    return marks


def _date_formatter() -> Callable[[str | None], str]:
    """A `when` for many rows: the same text as Babel's "short" date-time in the agent's language
    and zone, with the patterns looked up once (Babel looks them up on every call; at 150 dates a
    page that was a fifth of the search page's time)."""
    if "queue_when" in g:
        return g.queue_when
    locale, zone = get_locale(), get_timezone()
    joined = dates.get_datetime_format("short", locale=locale).replace("'", "")
    date_pattern = dates.parse_pattern(dates.get_date_format("short", locale=locale))
    time_pattern = dates.parse_pattern(dates.get_time_format("short", locale=locale))

    def fast_when(iso: str | None) -> str:
        try:
            moment = dt.datetime.fromisoformat(iso).astimezone(zone) if iso else None
        except ValueError:
            return iso or ""
        if moment is None:
            return ""
        return joined.replace("{1}", date_pattern.apply(moment, locale)).replace("{0}",
                                                                                 time_pattern.apply(moment, locale))

    g.queue_when = fast_when
    return fast_when


def _decorate(rows: list[dict[str, Any]]) -> None:
    """Everything a row shows, worked out once here instead of in template macros. (The links stay
    plain: the conversation page learns the view from the Referer, see conversations.current_view.)"""
    now = clock.now()
    when = _date_formatter()
    link = url_for("conversations.show", conversation_id=0)[:-1]
    statuses: dict[str, str] = {}
    for row in rows:
        row["url"] = f"{link}{row['id']}"
        row["preview"] = row["subject"] or first_line(row.get("first_text"), 160)
        latest = first_line(row.get("last_text"), 200)
        row["latest"] = "" if latest == row["preview"] else latest
        row["customer_label"], row["customer_secondary"] = customer_label(row.get("customer_name"),
                                                                          row.get("customer_handle"))
        row["assignee_initials"] = initials(row.get("assignee_name") or row.get("assignee_email"))
        row["assignee_color"] = avatar_color(row.get("assignee_id"))
        waiting = row["status"] in ("new", "open") and row.get("waiting_since")
        row["waiting"] = waiting_for(row["waiting_since"], now) if waiting else ""
        row["urgency"] = service_levels.urgency(row, now)
        row["when"] = when(row["last_message_at"])
        if row["status"] not in statuses:
            statuses[row["status"]] = status_label(row["status"])
        row["status_text"] = statuses[row["status"]]
        row["priority_text"] = str(PRIORITY_LABELS.get(row["priority"], row["priority"]))
        row["flag_list"] = [(f, flag_label(f), flag_help(f)) for f in (row.get("flags") or "").split()]
        for label in row.get("labels", ()):
            if not _COLOR.match(label.get("color") or ""):
                label["color"] = "#4a5568"


def _filter_options() -> dict[str, Any]:
    store = get_store()
    return {
        "statuses": [(key, STATUS_FILTER_LABELS[key]) for key in STATUS_GROUPS],
        "channels": sorted(_allowed_channels()),
        "teams": sorted(store.queue_team_names().items(), key=lambda kv: kv[1].lower()),
        "agents": [a for a in store.agents() if a["active"]],
        "labels": store.labels(),
        "priorities": [(p, PRIORITY_LABELS[p]) for p in PRIORITIES],
        "sorts": list(SORT_LABELS.items()),
        "bulk_statuses": [(s, STATUS_FILTER_LABELS[s]) for s in BULK_STATUSES],
    }


# Pages ---------------------------------------------------------------------------------------

@bp.get("/")
@login_required
def index():
    try:
        query = parse_query(request.args)
        after = parse_after(request.args.get("after"))
    except InvalidFilter:
        return _bad_filter()
    agent = current_agent()
    store = get_store()
    rows = store.queue_page(query, team_ids=_team_ids(), agent_id=agent["id"], after=after, limit=PAGE_SIZE + 1)
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    _decorate(rows)
    next_url = queue_url(query, after=f"{rows[-1]['sort_value']},{rows[-1]['id']}") if more and rows else None
    if request.args.get("part") == "rows":
        # Live updates (static/queue.js): the same page's rows alone, swapped in without a reload.
        return render_template("queue/_rows.html", conversations=rows, marks=channel_marks())
    if request.args.get("part") == "pane":
        # The list beside an open conversation (static/conversation.js loads it after the page).
        return render_template("queue/_pane.html", conversations=rows, marks=channel_marks(),
                               current_id=request.args.get("current", type=int))
    return render_template(
        "queue/index.html",
        query=query,
        conversations=rows,
        next_url=next_url,
        first_url=queue_url(query) if after else None,
        nav=_nav(query),
        options=_filter_options(),
        params=query.as_params(),
        back=urlencode(query.as_params()),
        marks=channel_marks(),
        # Only the first page follows changes live: a later page is a snapshot the agent paged to.
        live_rows_url=None if after else queue_url(query),
        filtered=query != QueueQuery(status=query.status, sort=query.sort),
    )


@bp.post("/views")
@login_required
def save_view():
    agent = current_agent()
    name = " ".join((request.form.get("name") or "").split())
    try:
        query = parse_query(request.form)
    except InvalidFilter:
        return _bad_filter()
    if not name or len(name) > MAX_VIEW_NAME:
        flash(_("Give the view a name of at most %(n)d characters.", n=MAX_VIEW_NAME), "error")
        return redirect(queue_url(query))
    try:
        get_store().save_view(agent["id"], name, query.as_params())
    except StoreError:
        flash(_("You have too many saved views; delete one first."), "error")
        return redirect(queue_url(query))
    flash(_("View “%(name)s” saved.", name=name), "success")
    return redirect(queue_url(query))


@bp.post("/views/<int:view_id>/delete")
@login_required
def delete_view(view_id: int):
    if not get_store().delete_view(current_agent()["id"], view_id):
        abort(404)
    flash(_("View deleted."), "success")
    return redirect(url_for("queue.index"))


def _back_query() -> QueueQuery:
    """The queue the bulk form came from (re-validated; the default queue when it does not parse)."""
    back = request.form.get("back") or ""
    try:
        return parse_query(dict(parse_qsl(back[:2000])))
    except (InvalidFilter, ValueError):
        return QueueQuery()


@bp.post("/bulk")
@login_required
def bulk():
    store = get_store()
    agent = current_agent()
    back = _back_query()
    raw_ids = request.form.getlist("ids")
    if len(raw_ids) > MAX_BULK:
        return error_page(400, _("Too many conversations"),
                          _("Select at most %(n)d conversations at once.", n=MAX_BULK))
    if not all(_ID.match(i) for i in raw_ids):
        return error_page(400)
    op = request.form.get("op") or ""
    action, _sep, value = op.partition(":")
    target: Any
    if action == "assign":
        if value == "me":
            target = agent["id"]
        elif value == "none":
            target = None
        elif _ID.match(value) and (found := store.agent(int(value))) is not None and found["active"]:
            target = int(value)
        else:
            return error_page(400)
    elif action == "team":
        if value == "none":
            target = None
        elif _ID.match(value) and int(value) in store.queue_team_names():
            target = int(value)
        else:
            return error_page(400)
    elif action in ("label_add", "label_remove"):
        if action == "label_add" and value == "new":
            name = " ".join((request.form.get("label_name") or "").split())
            if not name or len(name) > MAX_LABEL_NAME:
                flash(_("A label name has 1 to %(n)d characters.", n=MAX_LABEL_NAME), "error")
                return redirect(queue_url(back))
            target = store.ensure_label(name)
        elif _ID.match(value) and int(value) in {lab["id"] for lab in store.labels()}:
            target = int(value)
        else:
            return error_page(400)
    elif action == "status" and value in BULK_STATUSES:
        target = value
    else:
        return error_page(400)

    wanted = {int(i) for i in raw_ids}
    if not wanted:
        flash(_("Select one or more conversations first."), "error")
        return redirect(queue_url(back))
    visible = store.visible_conversation_ids(wanted, team_ids=_team_ids())
    ignored = len(wanted) - len(visible)
    before = {cid: store.conversation(cid) for cid in visible} if action == "status" else {}
    changed = store.bulk_update(visible, action=action, value=target, actor=f"agent:{agent['id']}")
    if before:
        from inbox.web.triage import taught_status_change  # it imports this module's neighbours

        # Into or out of spam, many at once: the spam model learns from each (#14).
        for conversation in before.values():
            taught_status_change(store, conversation, target, agent, clock.now())
    flash(ngettext("%(num)d conversation changed.", "%(num)d conversations changed.", changed), "success")
    if ignored:
        flash(ngettext("%(num)d conversation was skipped: it does not exist or is not yours to see.",
                       "%(num)d conversations were skipped: they do not exist or are not yours to see.",
                       ignored), "error")
    return redirect(queue_url(back))


@bp.get("/search")
@login_required
def search():
    text = request.args.get("q") or ""
    order = request.args.get("sort") or "recent"
    status = request.args.get("status") or None
    if order not in ("recent", "relevance") or (status is not None and status not in STATUSES):
        return _bad_filter()
    try:
        match = fts_query(text)
    except PrefixTooShortError:
        body = render_template(
            "queue/search.html", q=text[:200], order=order, result=None,
            problem=_("A search for words that start with some letters needs at least %(num)d letters before "
                      "the *. Type more.", num=MIN_PREFIX_CHARS))
        return body, 400
    except SearchQueryError:
        body = render_template("queue/search.html", q=text[:200], order=order, result=None,
                               problem=_("The search text is too long. Use a few words."))
        return body, 400
    result = None
    if match is not None:
        result = get_store().search(match, team_ids=_team_ids(), agent_id=current_agent()["id"], order=order,
                                    status=status)
        _decorate([group.conversation for group in result.groups])
        # Snippets become HTML here, once, with the random markers of this search.
        directions: dict[str, str] = {}
        when = _date_formatter()
        for group in result.groups:
            if group.conversation_snippet is not None:
                group.conversation_snippet = highlight(group.conversation_snippet, result.mark_open, result.mark_close)
            for snippet in group.snippets:
                if snippet["direction"] not in directions:
                    directions[snippet["direction"]] = direction_label(snippet["direction"])
                snippet["html"] = highlight(snippet["text"], result.mark_open, result.mark_close)
                snippet["direction_text"] = directions[snippet["direction"]]
                snippet["when"] = when(snippet["received_at"])
                snippet["url"] = f"{group.conversation['url']}#message-{snippet['message_id']}"
    kinds = {name: ch.kind for name, ch in mainland().config.channels.items()}
    return render_template("queue/search.html", q=text, order=order, result=result, problem=None,
                           kinds=kinds, searched=bool(text.strip()), status=status,
                           search_statuses=[(s, STATUS_FILTER_LABELS[s]) for s in STATUSES])


def init_app(app: Flask) -> None:
    app.jinja_env.globals.update(count_label=count_label, priority_label=lambda p: str(PRIORITY_LABELS.get(p, p)))
    app.jinja_env.filters.update(highlight=highlight)
    app.jinja_env.tests["opaque_handle"] = is_opaque_handle
