"""Store verbs for the live demo (`mainland demo`, inbox/demo.py).

The demo's channel imitations keep nothing between runs and number their items from the same start
every time, so a new run's first message would carry the id of an earlier run's first message and
be taken for a copy of it (the `(channel, external_id)` key). Keeping the earlier run's
conversations therefore means moving their ids out of the way first.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: Ids moved out of the way start with this (then the moment of the run that moved them, then a colon).
RETIRED_PREFIX = "earlier-"


class DemoQueries:
    conn: Any
    write: Any

    def retire_external_ids(self, channels: Iterable[str], tag: str) -> int:
        """Prefix the external ids of `channels` not yet retired with `RETIRED_PREFIX + tag + ":"`.

        The messages stay (their conversations, customers and replies with them); only their ids no
        longer match what the restarted imitations hand out. Returns how many were moved.
        """
        names = sorted(set(channels))
        if not names:
            return 0
        marks = ", ".join("?" * len(names))
        with self.write():
            cur = self.conn.execute(
                f"UPDATE messages SET external_id = ? || external_id WHERE channel IN ({marks}) "  # noqa: S608
                "AND external_id NOT LIKE ?", [f"{RETIRED_PREFIX}{tag}:", *names, f"{RETIRED_PREFIX}%"])
            return cur.rowcount
