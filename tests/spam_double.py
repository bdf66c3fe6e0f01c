"""A test double of `inbox.spam_model` (#14), written by another engineer in parallel: the same
interface, with a probability a test can read off the text and that `learn()` visibly changes.

Tests install it as `inbox.spam_model` (fixture `spam_model` in tests/test_triage_flow.py); it is
never part of the product. Rules (against the flow's default thresholds, spam >= 0.999, clean < 0.10): a text with "casino"
is 0.9995, with "offer" 0.7, anything else 0.05; after `learn(facts, is_spam)` the same sender scores
0.9999 (spam) or 0.01 (not spam).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ItemFacts:
    channel: str
    text: str
    subject: str | None = None
    sender: str = ""
    html: bool = False
    links: int = 0
    language: str | None = None
    known_customer: bool = False
    prior_conversations: int = 0
    upstream_spam: bool | None = None


@dataclass(frozen=True)
class ModelVersion:
    version: int
    created_at: dt.datetime


class SpamModel:
    def __init__(self, now) -> None:
        self.now = now
        self.version = 1
        self.taught: dict[str, bool] = {}
        self.lessons: list[tuple[ItemFacts, bool]] = []
        self._versions = [ModelVersion(1, now())]

    def spam_probability(self, facts: ItemFacts) -> float:
        if facts.sender in self.taught:
            return 0.9999 if self.taught[facts.sender] else 0.01
        text = facts.text.lower()
        if "casino" in text:
            return 0.9995
        if "offer" in text:
            return 0.7
        return 0.05

    def learn(self, facts: ItemFacts, is_spam: bool) -> None:
        self.taught[facts.sender] = is_spam
        self.lessons.append((facts, is_spam))
        self.version += 1
        self._versions.append(ModelVersion(self.version, self.now()))

    def rollback(self, version: int) -> None:
        self.version = version

    def versions(self) -> list[ModelVersion]:
        return list(self._versions)


#: What each data folder "holds": opening the model again finds what it learnt (as the real one keeps
#: its versions on disk). Tests start with a fresh folder each.
_SAVED: dict[str, SpamModel] = {}


def open_model(data_dir: Path, *, now=None) -> SpamModel:
    from inbox import clock

    return _SAVED.setdefault(str(data_dir), SpamModel(now or clock.now))
