"""The store's verbs are each defined once (#17's code review).

`Store` is built from many query classes; a verb defined in two of them silently runs only the one
first in the method resolution order (the review found `CustomerQueries.savepoint` shadowed by
`Store.savepoint` and never run), so a fix made to the other copy would never take effect.
"""

from __future__ import annotations

import collections
import dataclasses

import pytest

from inbox.store import Store
from inbox.store.tokens import ApiToken


def test_no_store_verb_is_defined_in_two_of_its_classes():
    defined_in: dict[str, list[str]] = collections.defaultdict(list)
    for cls in Store.__mro__:
        if cls is object:
            continue
        for name, value in vars(cls).items():
            if name.startswith("__") or not (callable(value) or isinstance(value, property | classmethod |
                                                                              staticmethod)):
                continue
            defined_in[name].append(cls.__name__)
    twice = {name: classes for name, classes in defined_in.items() if len(classes) > 1}
    assert twice == {}, f"defined more than once, only the first runs: {twice}"


def test_the_api_tokens_concern_returns_typed_frozen_rows(tmp_path):
    # #17: concerns leave the mixins for objects the store holds, typed at the boundary.
    store = Store(tmp_path / "m.db")
    store.migrate()
    token_id = store.api_tokens.create(name="CRM", token_hash="a" * 64, prefix="ml_abc", scopes=["write", "read"],
                                       created_by=None, now="2026-01-02T03:04:05.000000Z")
    row = store.api_tokens.get(token_id)
    assert isinstance(row, ApiToken) and row.scopes == ("read", "write") and row.created_by_name is None
    assert store.api_tokens.by_hash("a" * 64) == row and store.api_tokens.all() == [row]
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.revoked_at = "now"  # a row is what was read; changes go through the concern's verbs
    assert store.api_tokens.revoke(token_id, by=None) and store.api_tokens.get(token_id).revoked_at is not None
    assert not hasattr(store, "api_token_by_hash"), "the mixin's verbs are gone, not kept beside the concern"
    store.close()
