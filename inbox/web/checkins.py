"""The check-ins page (#14): customers worth a call or a message because things go well.

- `GET /customers/check-ins`: the suggestions the agent is shown (inbox/checkins.py decides who
  sees which: an agent their own customers', a lead their teams', managers and admins all), each
  with why, the customer's agent and the channel to use; and the recent check-ins with how the
  customer answered. Keys (static/checkins.js), as in the other lists: j/k move, Enter or o starts,
  x skips, s snoozes (to the date in the row: a week ahead unless changed).
- **Start** is a link to the New conversation page with `?check_in=<basis>` (inbox/web/outreach.py).
- `POST /customers/check-ins/<customer id>/skip` and `/snooze` (`basis`, and `until` YYYY-MM-DD):
  remembered (m027). A suggestion the agent is not shown is 404, as is a hidden customer.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from inbox import checkins, clock
from inbox.i18n import gettext as _
from inbox.web import get_store, mainland
from inbox.web.auth import current_agent, login_required

bp = Blueprint("checkins", __name__)

#: How far the snooze button puts a suggestion off unless the agent picks a date.
DEFAULT_SNOOZE = dt.timedelta(days=7)


@bp.get("/customers/check-ins")
@login_required
def index():
    now = clock.now()
    agent = current_agent()
    store = get_store()
    suggestions = checkins.visible_suggestions(mainland(), store, agent, now=now)
    recent = checkins.recent(store, agent, config=mainland().config)
    return render_template("customers/check_ins.html", suggestions=suggestions, recent=recent,
                           outcome=checkins.outcome, snooze_default=(now + DEFAULT_SNOOZE).date().isoformat(),
                           snooze_min=(now + dt.timedelta(days=1)).date().isoformat(),
                           own_only=agent["role"] == "agent")


def _suggestion(customer_id: int) -> checkins.Suggestion:
    """The suggestion named by the form's `basis`, if this agent is shown it now; 404 otherwise
    (a hidden customer and an unknown one look the same)."""
    basis = (request.form.get("basis") or "").strip()
    found = checkins.suggestion_for(mainland(), get_store(), current_agent(), customer_id, basis, now=clock.now())
    if found is None:
        abort(404)
    return found


def _back() -> Any:
    return redirect(url_for("checkins.index"), code=303)


@bp.post("/customers/check-ins/<int:customer_id>/skip")
@login_required
def skip(customer_id: int):
    suggestion = _suggestion(customer_id)
    checkins.skip(get_store(), suggestion, current_agent(), now=clock.now())
    flash(_("Skipped %(name)s.", name=suggestion.customer_name or _("(no name)")), "success")
    return _back()


@bp.post("/customers/check-ins/<int:customer_id>/snooze")
@login_required
def snooze(customer_id: int):
    suggestion = _suggestion(customer_id)
    now = clock.now()
    until = checkins.snooze_date(request.form.get("until") or (now + DEFAULT_SNOOZE).date().isoformat(), now)
    if until is None:
        flash(_("Pick a day after today and within a year."), "error")
        return _back()
    checkins.snooze(get_store(), suggestion, until, current_agent(), now=now)
    flash(_("%(name)s comes back on %(day)s.", name=suggestion.customer_name or _("(no name)"),
            day=until.isoformat()), "success")
    return _back()
