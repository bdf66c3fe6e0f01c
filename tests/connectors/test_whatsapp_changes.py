"""WhatsApp edits and revokes: a customer's change to a message we hold, never a new message.

Meta's `edit` webhook names the original by `edit.original_message_id` and carries the whole new
message (a text's body or a media caption); `revoke` (deleted for everyone) names it by
`revoke.original_message_id`. The connector reports both as `FetchResult.changes`, keyed by the
original's wamid, which is the `external_id` it stored the original under. The fixtures in
tests/fixtures/whatsapp/ are written from Meta's references; the rest runs against the imitation.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from connectors.base import WebhookRequest
from connectors.whatsapp import WhatsAppConnector
from inbox.models import CHANGE_DELETED, CHANGE_EDITED, MessageChange
from sandbox.whatsapp import WhatsAppImitation

pytestmark = pytest.mark.server  # starts a loopback imitation of the Cloud API

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "whatsapp"
PHOTO = b"\xff\xd8\xff\xe0" + b"JFIF-edited-caption" * 32


@pytest.fixture
def whatsapp():
    with WhatsAppImitation() as imitation:
        yield imitation


@pytest.fixture
def connector(whatsapp):
    made = WhatsAppConnector("wa", {
        "phone_number_id": whatsapp.phone_number_id, "access_token": whatsapp.access_token,
        "app_secret": whatsapp.app_secret, "verify_token": whatsapp.verify_token, "api_url": whatsapp.url})
    yield made
    made.close()


def fixture_request(name: str) -> WebhookRequest:
    return WebhookRequest(body=(FIXTURES / name).read_bytes(), headers={})


def parse(connector: WhatsAppConnector, requests: list[WebhookRequest]):
    results = []
    for request in requests:
        connector.verify_webhook(request)
        results.append(connector.parse_webhook(request))
    return ([i for r in results for i in r.items], [c for r in results for c in r.changes],
            [j for r in results for j in r.rejects])


def test_documented_text_edit_is_a_change_of_the_original(connector):
    result = connector.parse_webhook(fixture_request("edit-text.json"))
    assert result.items == [] and result.rejects == [] and result.updates == []
    original = json.loads((FIXTURES / "edit-text.json").read_bytes())["entry"][0]["changes"][0]["value"][
        "messages"][0]["edit"]["original_message_id"]
    assert result.changes == [MessageChange(external_id=original, kind=CHANGE_EDITED,
                                            text="Does it come in another colour, in size M?",
                                            at=dt.datetime(2025, 2, 12, 0, 43, 44, tzinfo=dt.UTC))]


def test_documented_caption_edit_changes_the_text_and_fetches_no_media(whatsapp, connector):
    result = connector.parse_webhook(fixture_request("edit-image-caption.json"))
    [change] = result.changes
    assert result.items == [] and change.kind == CHANGE_EDITED
    assert change.text == "The lid is cracked, see the left corner"
    assert change.external_id.endswith("MDAwMDAwMDIA")
    assert whatsapp.requests == []  # the file did not change: nothing is downloaded again


def test_documented_revoke_marks_the_original_deleted(connector):
    result = connector.parse_webhook(fixture_request("revoke.json"))
    assert result.items == [] and result.rejects == []
    [change] = result.changes
    assert change.kind == CHANGE_DELETED and change.text is None
    assert change.external_id == "wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQU9SSUdJTkFMMDAwMDAwMDEA"
    assert change.at == dt.datetime.fromtimestamp(1739321224, dt.UTC)


def test_edit_and_revoke_name_the_message_as_it_was_stored(whatsapp, connector):
    question = whatsapp.customer_text("16505551234", "Does it come in blue?", name="Sheena Nelson")
    photo = whatsapp.customer_image("16505551234", PHOTO, caption="cracked lid")
    [stored_question, stored_photo], changes, _ = parse(connector, whatsapp.take_requests())
    assert changes == []

    whatsapp.customer_edit(question, "Does it come in green?")
    whatsapp.customer_edit(photo, "cracked lid, left corner")
    whatsapp.customer_revoke(question)
    items, changes, rejects = parse(connector, whatsapp.take_requests())
    assert items == [] and rejects == []  # never a new message, so nothing can reopen a conversation
    assert [(c.external_id, c.kind, c.text) for c in changes] == [
        (stored_question.external_id, CHANGE_EDITED, "Does it come in green?"),
        (stored_photo.external_id, CHANGE_EDITED, "cracked lid, left corner"),
        (stored_question.external_id, CHANGE_DELETED, None)]
    assert all(c.at is not None and c.at.tzinfo is not None for c in changes)


def test_an_unreadable_change_is_quarantined_and_the_rest_of_the_delivery_arrives(whatsapp, connector):
    good = whatsapp.customer_text("16505551234", "hello", queue=False)
    no_original = {"from": "16505551234", "id": "wamid.no-original", "timestamp": good["timestamp"],
                   "type": "revoke", "revoke": {}}
    unknown_edit = {"from": "16505551234", "id": "wamid.odd-edit", "timestamp": good["timestamp"], "type": "edit",
                    "edit": {"original_message_id": good["id"], "message": {"type": "location", "location": {}}}}
    whatsapp.queue(whatsapp.envelope({"contacts": [{"profile": {"name": "S"}, "wa_id": "16505551234"}],
                                      "messages": [good, no_original, unknown_edit]}))
    items, changes, rejects = parse(connector, whatsapp.take_requests())
    assert [i.external_id for i in items] == [good["id"]] and changes == []
    reasons = sorted(r.reason for r in rejects)
    assert "missing field revoke.original_message_id" in reasons[1]
    assert "carries no text or caption" in reasons[0]
    assert [r.source_ref for r in rejects] == ["wamid.no-original", "wamid.odd-edit"]
