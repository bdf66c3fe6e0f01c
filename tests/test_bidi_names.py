"""Right-to-left overrides and other bidi controls in names and text cannot disguise them (issue 13).

"Bob\\u202egnp.exe" shows as "Bobexe.png" in a browser. Inbound names are stored without the bidi
embeddings, overrides and isolates; every page strips them from whatever it shows; the marks that
right-to-left languages need (RLM, LRM) stay.
"""

from __future__ import annotations

import datetime as dt

from inbox.models import Author, FetchResult, InboundItem
from inbox.sanitize import without_bidi_controls
from tests.test_reply_context import agent_client  # noqa: F401  (a fixture)
from tests.test_web_auth import web_store  # noqa: F401  (a fixture)

SPOOF = "Support Team\u202e\u2066moc.knab\u2069"


def test_controls_go_and_right_to_left_marks_stay():
    assert without_bidi_controls("a\u202ab\u202bc\u202cd\u202de\u202ef\u2066g\u2067h\u2068i\u2069") == "abcdefghi"
    assert without_bidi_controls("שלום\u200f world\u200e") == "שלום\u200f world\u200e"


def test_a_disguised_name_is_stored_and_shown_without_its_controls(app, agent_client, web_store,  # noqa: F811
                                                                   frozen_clock):
    ingestor = app.extensions["mainland"].ingestor(web_store)
    item = InboundItem(channel="fb-page", external_id="bidi-1", text=f"Hello from {SPOOF}",
                       author=Author(handle="u-bidi", name=SPOOF, identity_kind="facebook"),
                       sent_at=frozen_clock.now() - dt.timedelta(minutes=1), thread_key="chat:bidi")
    ingestor.ingest("fb-page", FetchResult(items=[item], cursor="1"))
    [conversation] = web_store.recent_conversations()
    [message] = web_store.thread_messages(conversation["id"])
    assert message["author_name"] == "Support Teammoc.knab"
    assert message["text"] == f"Hello from {SPOOF}", "the customer's words are kept as written"
    for path in ("/", f"/conversations/{conversation['id']}"):
        page = agent_client.get(path).get_data(as_text=True)
        assert "Support Teammoc.knab" in page, path
        for control in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069":
            assert control not in page, f"{path} shows U+{ord(control):04X}"
