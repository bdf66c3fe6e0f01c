"""The spam model (inbox/spam_model.py, #14): judging, learning from people, persistence, rollback.

Small labelled sets built here; no corpus download.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random

import pytest

from inbox import spam_model
from inbox.spam_model import ItemFacts, open_model, train_base_model, train_base_model_from_facts
from tests.mailfactory import raw_mail

T0 = dt.datetime(2026, 3, 5, 9, 0, tzinfo=dt.UTC)

_SPAM_PHRASES = [
    "cheap meds online without prescription", "you have won a lottery prize claim now",
    "enlarge your profits with this crypto investment", "hot singles in your area click here",
    "limited offer buy viagra cialis discount", "wire transfer million dollars inheritance beneficiary",
    "earn money from home guaranteed income", "unsubscribe free casino bonus spins",
]
_HAM_PHRASES = [
    "my order arrived broken can you send a new one", "the invoice for march shows the wrong address",
    "how do I change my delivery date", "the app crashes when I open my account page",
    "I would like to return the jacket, it is too small", "when does your shop open on sunday",
    "the parcel tracking number does not work", "please cancel my subscription from next month",
]


def _labelled(count: int, seed: int) -> list[tuple[ItemFacts, bool]]:
    """Short items built from the phrases, each with some filler words: half spam, half ham."""
    chooser = random.Random(seed)
    filler = "hello thanks regards today please info the a to and".split()
    examples = []
    for index in range(count):
        is_spam = index % 2 == 0
        phrase = chooser.choice(_SPAM_PHRASES if is_spam else _HAM_PHRASES)
        text = " ".join([phrase, *chooser.sample(filler, 4)])
        examples.append((ItemFacts(channel="email", text=text, subject=phrase.split(" ", 3)[-1][:30],
                                   sender=f"someone{index}@example.net", links=2 if is_spam else 0), is_spam))
    return examples


@pytest.fixture
def base(tmp_path):
    """A data_dir with a base model trained on 80 small labelled items."""
    train_base_model_from_facts(_labelled(80, seed=1), tmp_path, now=lambda: T0)
    return tmp_path


GREY = ItemFacts(channel="webform", text="special offer on your account please reply today", subject="offer")


def test_no_model_at_all_calls_nothing_spam(tmp_path):
    model = open_model(tmp_path, now=lambda: T0)
    spammy = _labelled(2, seed=3)[0][0]
    assert not model.trained and model.version == 0
    assert model.spam_probability(spammy) == spam_model.NEUTRAL_PROBABILITY
    assert spam_model.verdict(model.spam_probability(spammy)) == spam_model.SUSPICIOUS
    assert model.versions() == []


def test_base_model_tells_spam_from_ham(base):
    model = open_model(base, now=lambda: T0)
    test = _labelled(40, seed=2)
    spam = [model.spam_probability(facts) for facts, is_spam in test if is_spam]
    ham = [model.spam_probability(facts) for facts, is_spam in test if not is_spam]
    assert min(spam) > max(ham)
    assert model.versions()[0].source == "base"


def test_base_model_from_raw_mail(tmp_path):
    phrases = itertools.cycle(zip(_SPAM_PHRASES, _HAM_PHRASES, strict=True))
    messages = []
    for index in range(30):
        spam_text, ham_text = next(phrases)
        messages.append((raw_mail(sender=f"promo{index}@deals.example", subject="Offer", body=spam_text), True))
        messages.append((raw_mail(sender=f"client{index}@example.net", subject="Question", body=ham_text), False))
    model = train_base_model(messages, tmp_path, now=lambda: T0)
    spam = ItemFacts(channel="email", text="claim your lottery prize now", subject="Offer")
    ham = ItemFacts(channel="email", text="my parcel arrived broken", subject="Question")
    assert model.spam_probability(spam) > 0.9 > 0.1 > model.spam_probability(ham)


def test_a_decision_changes_the_next_probability_for_a_similar_item(base):
    model = open_model(base, now=lambda: T0)
    similar = ItemFacts(channel="webform", text="special offer on your account, reply today please",
                        subject="offer")
    before = model.spam_probability(similar)
    model.learn(GREY, is_spam=True)
    after_spam = model.spam_probability(similar)
    assert after_spam > before
    model.learn(GREY, is_spam=False)
    model.learn(GREY, is_spam=False)
    assert model.spam_probability(similar) < after_spam


def test_human_decisions_weigh_more_than_base_examples(base, tmp_path_factory):
    by_person = open_model(base, now=lambda: T0)
    by_person.learn(GREY, is_spam=True)
    other = tmp_path_factory.mktemp("as-base")
    train_base_model_from_facts(_labelled(80, seed=1) + [(GREY, True)], other, now=lambda: T0)
    as_base = open_model(other, now=lambda: T0)
    assert by_person.spam_probability(GREY) > as_base.spam_probability(GREY)


def test_learning_survives_reopening(base):
    model = open_model(base, now=lambda: T0)
    model.learn(GREY, is_spam=True)
    learnt = model.spam_probability(GREY)
    reopened = open_model(base, now=lambda: T0)
    assert reopened.version == model.version
    assert reopened.spam_probability(GREY) == learnt


def test_another_process_sees_a_decision(base):
    """The web app learns, the worker judges: two model objects on one data_dir."""
    worker = open_model(base, now=lambda: T0)
    before = worker.spam_probability(GREY)
    web = open_model(base, now=lambda: T0)
    web.learn(GREY, is_spam=True)
    assert worker.version == web.version
    assert worker.spam_probability(GREY) > before


def test_rollback_restores_the_earlier_probabilities(base):
    model = open_model(base, now=lambda: T0)
    base_version = model.version
    probe = _labelled(10, seed=5)
    earlier = [model.spam_probability(facts) for facts, _ in probe] + [model.spam_probability(GREY)]
    for _ in range(3):
        model.learn(GREY, is_spam=True)
    assert model.spam_probability(GREY) != earlier[-1]
    model.rollback(base_version)
    assert model.version > base_version  # a rollback is a change too
    assert [model.spam_probability(facts) for facts, _ in probe] + [model.spam_probability(GREY)] == earlier
    assert open_model(base, now=lambda: T0).spam_probability(GREY) == earlier[-1]


def test_rollback_to_a_version_not_kept_is_refused(base):
    model = open_model(base, now=lambda: T0)
    with pytest.raises(KeyError):
        model.rollback(model.version + 5)


def test_versions_are_listed_with_their_source_and_decisions(base):
    times = iter([T0 + dt.timedelta(minutes=minutes) for minutes in range(1, 10)])
    model = open_model(base, now=lambda: next(times))
    model.learn(GREY, is_spam=True)
    model.learn(GREY, is_spam=False)
    model.rollback(2)
    listed = model.versions()
    assert [(v.number, v.source, v.decisions) for v in listed] == [
        (1, "base", 0), (2, "learning", 1), (3, "learning", 2), (4, "rollback", 1)]
    assert listed[0].created_at == T0
    assert listed[1].created_at == T0 + dt.timedelta(minutes=1)
    assert [v.number for v in listed] == sorted(v.number for v in listed)


def test_only_the_last_versions_are_kept(base, monkeypatch):
    monkeypatch.setattr(spam_model, "KEEP_VERSIONS", 3)
    model = open_model(base, now=lambda: T0)
    for _ in range(4):
        model.learn(GREY, is_spam=True)
    assert [v.number for v in model.versions()] == [3, 4, 5]
    assert sorted(p.name for p in (base / "triage").glob("model-*")) == [
        "model-000003.npz", "model-000004.npz", "model-000005.npz"]


def test_a_known_customer_lowers_the_probability(base):
    model = open_model(base, now=lambda: T0)
    stranger = model.spam_probability(GREY)
    known = model.spam_probability(ItemFacts(**{**GREY.__dict__, "known_customer": True, "prior_conversations": 3}))
    assert known < stranger


def test_a_trusted_servers_verdict_moves_the_probability(base):
    model = open_model(base, now=lambda: T0)
    unknown = model.spam_probability(GREY)
    flagged = model.spam_probability(ItemFacts(**{**GREY.__dict__, "upstream_spam": True}))
    passed = model.spam_probability(ItemFacts(**{**GREY.__dict__, "upstream_spam": False}))
    assert passed < unknown < flagged


def test_results_are_deterministic(tmp_path_factory):
    folders = [tmp_path_factory.mktemp(f"run{run}") for run in range(2)]
    results = []
    for folder in folders:
        train_base_model_from_facts(_labelled(80, seed=1), folder, now=lambda: T0)
        model = open_model(folder, now=lambda: T0)
        model.learn(GREY, is_spam=True)
        results.append([model.spam_probability(facts) for facts, _ in _labelled(20, seed=9)])
    assert results[0] == results[1]
    assert len(set(results[0])) > 1


def test_verdict_thresholds():
    assert spam_model.verdict(spam_model.SPAM_THRESHOLD) == spam_model.SPAM
    assert spam_model.verdict(spam_model.CLEAN_THRESHOLD) == spam_model.CLEAN
    assert spam_model.verdict((spam_model.SPAM_THRESHOLD + spam_model.CLEAN_THRESHOLD) / 2) == spam_model.SUSPICIOUS


def test_facts_from_email_counts_links_and_html():
    raw = raw_mail(body='<p>Look <a href="https://a.example/x">here</a> and <a href="http://b.example">there</a></p>',
                   content_type="text/html; charset=utf-8", sender="Promo <promo@deals.example>")
    facts = spam_model.facts_from_email(raw)
    assert facts is not None and facts.html and facts.links == 2
    assert facts.sender == "promo@deals.example" and facts.upstream_spam is None


def _cli(config_file, *args: str):
    from click.testing import CliRunner

    from inbox.cli import main

    return CliRunner().invoke(main, ["--config", str(config_file), *args], catch_exceptions=False)


def test_train_base_command_versions_and_rollback(tmp_path, frozen_clock):
    corpus = tmp_path / "corpus"
    for folder, phrases in (("spam-1", _SPAM_PHRASES), ("easy-ham-1", _HAM_PHRASES)):
        (corpus / folder).mkdir(parents=True)
        for index, phrase in enumerate(phrases * 3):
            (corpus / folder / f"{index:05d}.eml").write_bytes(
                raw_mail(sender=f"x{index}@{folder}.example", subject=phrase[:20], body=phrase))
    config_file = tmp_path / "config.yaml"
    config_file.write_text("database: mainland.db\ndata_dir: data\nsecret_key: test-secret\n")

    assert "no spam model yet" in _cli(config_file, "triage", "versions").output
    trained = _cli(config_file, "triage", "train-base", "--corpus", str(corpus))
    assert trained.exit_code == 0 and "training on 48 messages (24 spam, 24 ham)" in trained.output
    model = open_model(tmp_path / "data", now=lambda: T0)
    assert model.spam_probability(ItemFacts(channel="email", text="claim your lottery prize")) > 0.9
    model.learn(GREY, is_spam=True)
    listed = _cli(config_file, "triage", "versions").output.splitlines()
    assert "base" in listed[0] and listed[1].startswith("*") and "learning" in listed[1]
    rolled = _cli(config_file, "triage", "rollback", "1")
    assert rolled.exit_code == 0 and "as version 3" in rolled.output
    assert "rollback" in _cli(config_file, "triage", "versions").output.splitlines()[-1]
    assert _cli(config_file, "triage", "rollback", "99").exit_code != 0


def test_judge_names_the_version_that_judged(base):
    model = open_model(base, now=lambda: T0)
    first = model.judge(GREY)
    assert (first.probability, first.version) == (model.spam_probability(GREY), 1)
    assert first.verdict == spam_model.verdict(first.probability)
    open_model(base, now=lambda: T0).learn(GREY, is_spam=True)  # another process learns
    second = model.judge(GREY)
    assert second.version == 2 and second.probability > first.probability
    untrained = open_model(base / "elsewhere", now=lambda: T0)
    assert untrained.judge(GREY) == spam_model.Judgement(spam_model.NEUTRAL_PROBABILITY, spam_model.SUSPICIOUS, 0)


def test_the_model_is_ready_only_once_it_has_seen_both_spam_and_ham(tmp_path, base):
    fresh = open_model(tmp_path / "fresh", now=lambda: T0)
    assert not fresh.ready
    fresh.learn(_labelled(2, seed=5)[0][0], True)  # one person's "spam" on an untrained installation
    assert fresh.trained and not fresh.ready, "one kind of example alone must not start judging"
    assert open_model(base, now=lambda: T0).ready
