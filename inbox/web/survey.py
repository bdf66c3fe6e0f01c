"""The satisfaction survey page customers reach from the link in our email (inbox/csat.py).

Opening the link (GET) records nothing: mail scanners and link previews open every link in a mail,
and must not vote. The page shows five score buttons and a comment box; only pressing a button
(a POST with the page's CSRF token) records the answer, once: the token is single-use and stored
hashed. An unknown, used or expired link shows a friendly page without saying which it was.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, make_response, render_template, request

from inbox import csat
from inbox.web import get_store
from inbox.web.security import limiter

bp = Blueprint("survey", __name__)

#: Guessing tokens is pointless (192 bits), but a page that writes is limited all the same.
SURVEY_LIMIT = "30 per minute"


def _no_referrer(body: str, status: int = 200) -> Response:
    # The token is in the path: keep it out of Referer headers and caches.
    response = make_response(body, status)
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


@bp.route("/survey/<token>", methods=["GET", "POST"])
@limiter.limit(SURVEY_LIMIT)
def survey(token: str):
    store = get_store()
    if len(token) > 100:
        abort(404)
    survey_row = csat.open_survey(store, token)
    if survey_row is None:
        return _no_referrer(render_template("survey/closed.html"), 410 if request.method == "POST" else 200)
    if request.method != "POST":
        return _no_referrer(render_template("survey/survey.html", token=token, scores=range(1, 6)))
    try:
        score = int(request.form.get("score", ""))
    except ValueError:
        abort(400)
    if not 1 <= score <= 5:
        abort(400)
    recorded = csat.answer_by_token(store, token, score, request.form.get("comment"))
    if not recorded:
        return _no_referrer(render_template("survey/closed.html"), 410)
    return _no_referrer(render_template("survey/thanks.html", score=score))
