"""The satisfaction question inside the chat widget (#18): the team's survey question is marked for
the widget, which offers the scores as buttons; a press is the visitor's reply and records the rating.
"""

from __future__ import annotations

import datetime as dt

import pytest

from inbox import csat
from inbox.outbox import queue_reply, send_due
from inbox.store.base import iso
from tests import test_chat
from tests.test_chat import ALLOWED, history, post, visitor
from tests.test_web_auth import make_agent

db = test_chat.db
M = dt.timedelta(minutes=1)


@pytest.fixture
def app_config(app_config):
    app_config["channels"] = {"site": {"kind": "chat", "title": "Example Ltd", "allowed_origins": [ALLOWED]}}
    app_config["service_levels"] = {"csat": {"delay": "10m", "expires": "7d"}}
    return app_config


def test_the_survey_question_is_marked_for_the_widget_and_a_pressed_score_answers_it(app, client, db,
                                                                                       frozen_clock):
    mainland = app.extensions["mainland"]
    token = visitor()
    assert post(client, token, "Where is my parcel?").status_code == 200
    [conversation] = db.recent_conversations()
    cid = conversation["id"]
    queue_reply(mainland, db, cid, "It is on its way.", agent=make_agent(db))
    frozen_clock.advance(minutes=1)
    assert send_due(mainland, db).sent == 1
    with db.write():
        db.execute("UPDATE conversations SET status = 'resolved', updated_at = ? WHERE id = ?",
                   (iso(frozen_clock.now()), cid))
    frozen_clock.advance(minutes=15)
    assert csat.send_due_surveys(mainland, db).asked == 1
    frozen_clock.advance(minutes=1)
    assert send_due(mainland, db).sent == 1

    shown = history(client, token)
    assert [m["survey"] for m in shown] == [False, False, True], "only the question offers the scores"
    assert "1 (bad) to 5 (very good)" in shown[-1]["text"]

    assert post(client, token, "4").status_code == 200  # what a press on "4" sends
    survey = db.survey_for_conversation(cid)
    assert (survey["state"], survey["score"]) == ("answered", 4)
    assert history(client, token)[-1]["survey"] is False  # the visitor's answer is last: no buttons


def test_the_widget_says_what_each_score_button_means_in_both_languages(client):
    for language, words in (("en", ("Rate 4 of 5", "Your rating")), ("nl", ("4 van 5", "Uw beoordeling"))):
        config = client.get(f"/chat/site/config?lang={language}", headers={"Origin": ALLOWED}).get_json()
        assert words[0] in config["words"]["rate_score"].replace("{score}", "4")
        assert words[1] in config["words"]["rate"]
