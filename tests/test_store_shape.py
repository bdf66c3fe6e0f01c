"""The store's verbs are each defined once (#17's code review).

`Store` is built from many query classes; a verb defined in two of them silently runs only the one
first in the method resolution order (the review found `CustomerQueries.savepoint` shadowed by
`Store.savepoint` and never run), so a fix made to the other copy would never take effect.
"""

from __future__ import annotations

import collections

from inbox.store import Store


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
