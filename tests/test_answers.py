"""The answer library: versions, ranking for a customer's question, earlier picks, language, variables."""

from __future__ import annotations

import datetime as dt

import pytest

from inbox import answers as lib
from inbox.models import Author, FetchResult, InboundItem
from inbox.store.base import iso

NOW = dt.datetime(2025, 3, 4, 9, 0, tzinfo=dt.UTC)
T = iso(NOW)

LIBRARY = [
    ("Where is my order", "Your order is on its way; follow the parcel with the tracking link in your mail.",
     "en", "shipping tracking"),
    ("Refund for a returned item", "We refund returned items within 5 days after the parcel arrives back.",
     "en", "refund returns"),
    ("Change delivery address", "We can change the delivery address until the parcel leaves our warehouse.",
     "en", "shipping address"),
    ("Waar is mijn bestelling", "Je bestelling is onderweg; volg het pakket met de link in je mail.",
     "nl", "verzending"),
    ("Terugbetaling", "We betalen geretourneerde artikelen binnen 5 dagen terug.", "nl", "refund retour"),
]


@pytest.fixture
def library(store):
    owner = store.create_agent(email="lead@example.org", name="Lea Lead", role="lead", password_hash=None)
    ids = {}
    for title, body, language, tags in LIBRARY:
        ids[title] = store.answers.create(title=title, body=body, language=language, tags=tags.split(),
                                          owner_id=owner, now=T)
    return ids


def conversation(ingestor, text, *, who="jane@example.org", subject="Question"):
    item = InboundItem(channel="mail", external_id=f"{who}:{subject}:{len(text)}", author=Author(who, "Jane Doe"),
                       text=text, subject=subject, sent_at=NOW)
    return ingestor.ingest("mail", FetchResult(items=[item], cursor=None), save_cursor=False).new_conversations[0]


def titles(found):
    return [s.answer.title for s in found]


def test_an_edit_is_a_new_version_and_the_old_text_is_kept(store, library):
    answer_id = library["Where is my order"]
    assert store.answers.update(answer_id, title="Where is my order", body="New text.", language="en",
                                tags=["shipping"], editor_id=None, now=T) == 2
    unchanged = store.answers.update(answer_id, title="Where is my order", body="New text.", language="en",
                                     tags=["shipping"], editor_id=None, now=T)
    assert unchanged == 2, "saving without a change makes no version"
    versions = store.answers.versions(answer_id)
    assert [v.version for v in versions] == [2, 1]
    assert versions[1].body.startswith("Your order is on its way")
    assert store.answers.get(answer_id).body == "New text."


def test_the_best_matching_answer_comes_first(store, library):
    english = store.answers.all(language="en")
    assert titles(lib.rank("I returned the shoes two weeks ago, when do I get my refund?", english))[0] == \
        "Refund for a returned item"
    assert titles(lib.rank("Can I still change the address for delivery?", english))[0] == "Change delivery address"
    assert titles(lib.rank("Where is my parcel? The tracking link does not work", english))[0] == "Where is my order"


def test_words_are_folded_and_stemmed():
    assert lib.terms("Refunds, REFUNDED and réfund!") == ["refund", "refund", "refund"]
    assert lib.terms("de bestellingen van mij") == lib.terms("bestelling")


def test_an_unrelated_question_suggests_nothing_rather_than_noise(store, library):
    assert lib.rank("Do you sell gift cards for birthdays?", store.answers.all(language="en")) == []


def test_what_agents_picked_for_similar_questions_lifts_an_answer(store, library, ingestor):
    question = "Help, the tracking says my parcel went to my old flat, can you sort it out?"
    english = store.answers.all(language="en")
    before = titles(lib.rank(question, english))
    assert before[0] == "Where is my order", "by text alone, the tracking answer"

    for n in range(3):
        earlier = conversation(ingestor, f"The parcel went to my old flat {n}, please sort it out", who=f"c{n}@x.org")
        store.answers.record_use(library["Change delivery address"], 1, earlier, None, "en", T)
    picks = store.answers.picks("en")
    after = lib.rank(question, english, picks)
    assert after[0].answer.title == "Change delivery address"
    assert after[0].picks == 3 and after[0].pick_score > 0


def test_picks_for_unrelated_questions_do_not_count(store, library, ingestor):
    earlier = conversation(ingestor, "Do you have gift cards?", who="g@x.org")
    store.answers.record_use(library["Refund for a returned item"], 1, earlier, None, "en", T)
    found = lib.rank("Where is my parcel, tracking says nothing", store.answers.all(language="en"),
                     store.answers.picks("en"))
    refund = [s for s in found if s.answer.title == "Refund for a returned item"]
    assert not refund or refund[0].pick_score == 0


def test_a_pick_is_counted_once_per_conversation(store, library, ingestor):
    cid = conversation(ingestor, "Where is my order?")
    assert store.answers.record_use(library["Where is my order"], 1, cid, None, "en", T) is True
    assert store.answers.record_use(library["Where is my order"], 1, cid, None, "en", T) is False


def test_suggestions_come_in_the_customers_language(store, library, ingestor):
    dutch = conversation(ingestor, "Hallo, waar is mijn bestelling? Ik heb nog niets ontvangen.", who="d@x.nl")
    found = lib.suggest(store, dutch)
    assert found["language"] == "nl" and not found["all_languages"]
    assert {s.answer.language for s in found["suggestions"]} == {"nl"}
    assert titles(found["suggestions"])[0] == "Waar is mijn bestelling"

    english = conversation(ingestor, "Hello, where is my order? I have not received it yet.", who="e@x.org")
    assert {s.answer.language for s in lib.suggest(store, english)["suggestions"]} == {"en"}


def test_a_language_the_library_lacks_falls_back_to_every_answer(store, library, ingestor):
    cid = conversation(ingestor, "Where is my order?")
    store.update_customer(store.conversation(cid)["customer_id"], {"locale": "fr"}, T)
    found = lib.suggest(store, cid)
    assert found["language"] == "fr" and found["all_languages"] and found["suggestions"]


def test_archived_answers_are_not_suggested(store, library, ingestor):
    store.answers.set_active(library["Where is my order"], False, T)
    cid = conversation(ingestor, "Where is my order? tracking")
    assert "Where is my order" not in titles(lib.suggest(store, cid)["suggestions"])


def test_variables_come_from_the_customer_agent_and_custom_attributes(store, ingestor):
    cid = conversation(ingestor, "Where is my order?")
    store.set_customer_attribute(store.conversation(cid)["customer_id"], "Order number", "A-77", T)
    context = store.answers.context(cid)
    filled = lib.fill_variables("Hi {{customer_first_name}} ({{customer_name}}), order {{ order_number }} - "
                                "{{agent_name}}; VIP: {{attribute:vip}}",
                                customer_name=context.customer_name, agent_name="Ann",
                                attributes=context.attributes)
    assert filled.text == "Hi Jane (Jane Doe), order A-77 - Ann; VIP: {{attribute:vip}}"
    assert filled.missing == ["attribute:vip"]


def test_tags_are_normalised():
    assert lib.normalise_tags("Refund, Shipping  refund Émballage #x") == ["refund", "shipping", "emballage", "x"]


def test_library_search_finds_titles_tags_and_words(store, library):
    everything = store.answers.all()
    assert [a.title for a in lib.search("refund", everything)][:2] == ["Refund for a returned item",
                                                                         "Terugbetaling"]
    assert [a.title for a in lib.search("warehouse", everything)][0] == "Change delivery address"
    assert lib.search("zzzz", everything) == []
