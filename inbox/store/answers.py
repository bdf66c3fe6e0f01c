"""The answer library: answers and their versions, and which answer agents picked where:
`store.answers`, rows as `Answer`, `AnswerVersion`, `AnswerPick` and `AnswerContext`.

Every change of an answer's text, title, language or tags is a new version; the version it
replaced stays in `answer_versions`, so the library can show what changed and when. A use
(`answer_uses`) names the conversation, not the question: ranking reads the question from the
conversation, so nothing of the customer's text is copied into the library's tables.

A concern in the shape #17 asks for: an object the store holds (`store.answers`) with typed rows at
its boundary, instead of a mixin of `Store` returning dicts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from inbox.store.base import NotFound

if TYPE_CHECKING:
    from inbox.store import Store

_COLUMNS = ("a.id, a.title, a.body, a.language, a.tags, a.owner_id, a.version, a.active, a.created_at, "
            "a.updated_at, o.name AS owner_name, "
            "(SELECT count(*) FROM answer_uses u WHERE u.answer_id = a.id) AS uses")


@dataclass(frozen=True, slots=True)
class Answer:
    """An answer as it is now, with its owner's name and how many conversations it was picked in.

    `tags` is the stored text: lower-case words separated by spaces ('' for none).
    """

    id: int
    title: str
    body: str
    language: str
    tags: str
    owner_id: int | None
    version: int
    active: bool
    created_at: str
    updated_at: str
    owner_name: str | None
    uses: int

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Answer:
        values = list(row)
        values[7] = bool(values[7])
        return cls(*values)


@dataclass(frozen=True, slots=True)
class AnswerVersion:
    """One version of an answer, with who made it."""

    version: int
    title: str
    body: str
    language: str
    tags: str
    edited_by: int | None
    edited_at: str
    editor_name: str | None

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> AnswerVersion:
        return cls(*row)


@dataclass(frozen=True, slots=True)
class AnswerPick:
    """An answer an agent picked in a conversation, with the question it answered there: the subject
    and start of the conversation's first customer message (None when it has none)."""

    answer_id: int
    conversation_id: int
    question: str | None

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> AnswerPick:
        return cls(*row)


@dataclass(frozen=True, slots=True)
class AnswerContext:
    """What suggesting and inserting an answer needs about a conversation: its channel, whether it is
    public, the customer (name, locale, custom attributes) and the question (the customer's latest
    message, else the subject)."""

    id: int
    channel: str
    public: bool
    subject: str | None
    team_id: int | None
    customer_id: int
    customer_name: str | None
    locale: str | None
    question: str | None
    attributes: dict[str, str]


@dataclass(frozen=True, slots=True)
class ImportedAnswers:
    """How many answers an import created and how many it changed."""

    created: int
    updated: int


class Answers:
    """`store.answers`: the answer library, read and written on the store's connection."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def create(self, *, title: str, body: str, language: str, tags: Iterable[str], owner_id: int | None,
               now: str) -> int:
        """A new answer (version 1); returns its id."""
        tag_text = " ".join(tags)
        with self._store.write():
            answer_id = self._store.conn.execute(
                "INSERT INTO answers (title, body, language, tags, owner_id, version, active, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, 1, 1, ?, ?)", (title, body, language, tag_text, owner_id, now, now)).lastrowid
            self._store.conn.execute(
                "INSERT INTO answer_versions (answer_id, version, title, body, language, tags, edited_by, edited_at) "
                "VALUES (?, 1, ?, ?, ?, ?, ?, ?)", (answer_id, title, body, language, tag_text, owner_id, now))
            return answer_id

    def update(self, answer_id: int, *, title: str, body: str, language: str, tags: Iterable[str],
               editor_id: int | None, now: str) -> int:
        """Save an edit as a new version; returns the answer's version (unchanged when nothing changed)."""
        tag_text = " ".join(tags)
        with self._store.write():
            current = self.get(answer_id)
            if (current.title, current.body, current.language, current.tags) == (title, body, language, tag_text):
                return current.version
            version = current.version + 1
            self._store.conn.execute(
                "UPDATE answers SET title = ?, body = ?, language = ?, tags = ?, version = ?, updated_at = ? "
                "WHERE id = ?", (title, body, language, tag_text, version, now, answer_id))
            self._store.conn.execute(
                "INSERT INTO answer_versions (answer_id, version, title, body, language, tags, edited_by, edited_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (answer_id, version, title, body, language, tag_text, editor_id, now))
            return version

    def set_active(self, answer_id: int, active: bool, now: str) -> None:
        """Archive an answer (no longer suggested) or take it back into use."""
        with self._store.write():
            self._store.conn.execute("UPDATE answers SET active = ?, updated_at = ? WHERE id = ?",
                                     (int(active), now, answer_id))

    def apply_import(self, *, creates: Iterable[dict[str, Any]], updates: Iterable[tuple[int, dict[str, Any]]],
                     agent_id: int | None, now: str) -> ImportedAnswers:
        """Apply an import (inbox/answer_transfer.py) in one transaction: new answers, and edits of existing
        ones as new versions. Each value set has title, body, language, tags and `active` (None = leave it).
        Returns how many answers were created and updated."""
        created = updated = 0
        with self._store.write():
            for values in creates:
                answer_id = self.create(title=values["title"], body=values["body"], language=values["language"],
                                        tags=values["tags"], owner_id=agent_id, now=now)
                if values.get("active") is False:
                    self.set_active(answer_id, False, now)
                created += 1
            for answer_id, values in updates:
                before = self.get(answer_id)
                self.update(answer_id, title=values["title"], body=values["body"], language=values["language"],
                            tags=values["tags"], editor_id=agent_id, now=now)
                if values.get("active") is not None and before.active != values["active"]:
                    self.set_active(answer_id, values["active"], now)
                updated += 1
        return ImportedAnswers(created=created, updated=updated)

    def get(self, answer_id: int) -> Answer:
        """The answer with this id (NotFound when there is none)."""
        row = self._store.conn.execute(
            f"SELECT {_COLUMNS} FROM answers a LEFT JOIN agents o ON o.id = a.owner_id WHERE a.id = ?",  # noqa: S608
            (answer_id,)).fetchone()
        if row is None:
            raise NotFound(f"no answer {answer_id}")
        return Answer.from_row(row)

    def all(self, *, active: bool | None = True, language: str | None = None) -> list[Answer]:
        """Answers by title: those in use by default, archived ones with `active` False, both with None."""
        where, params = ["1 = 1"], []
        if active is not None:
            where.append("a.active = ?")
            params.append(int(active))
        if language:
            where.append("a.language = ?")
            params.append(language)
        return [Answer.from_row(row) for row in self._store.conn.execute(
            f"SELECT {_COLUMNS} FROM answers a LEFT JOIN agents o ON o.id = a.owner_id "  # noqa: S608
            f"WHERE {' AND '.join(where)} ORDER BY lower(a.title), a.id", params).fetchall()]

    def languages(self) -> list[str]:
        """The languages the library has answers in."""
        return [r[0] for r in self._store.conn.execute("SELECT DISTINCT language FROM answers ORDER BY language")]

    def versions(self, answer_id: int) -> list[AnswerVersion]:
        """Every version of an answer, newest first, with who made it."""
        return [AnswerVersion.from_row(row) for row in self._store.conn.execute(
            "SELECT v.version, v.title, v.body, v.language, v.tags, v.edited_by, v.edited_at, e.name AS editor_name "
            "FROM answer_versions v LEFT JOIN agents e ON e.id = v.edited_by WHERE v.answer_id = ? "
            "ORDER BY v.version DESC", (answer_id,)).fetchall()]

    def record_use(self, answer_id: int, version: int, conversation_id: int, agent_id: int | None,
                   language: str | None, now: str) -> bool:
        """Remember that an agent picked this answer in this conversation (once per conversation)."""
        with self._store.write():
            cur = self._store.conn.execute(
                "INSERT INTO answer_uses (answer_id, version, conversation_id, agent_id, language, at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (answer_id, conversation_id) DO NOTHING",
                (answer_id, version, conversation_id, agent_id, language, now))
            return bool(cur.rowcount)

    def picks(self, language: str | None, *, limit: int = 400,
              exclude_conversation: int | None = None) -> list[AnswerPick]:
        """The latest picks (in `language`, or all when None) with the question each answered: the
        first customer message of that conversation."""
        where, params = ["u.conversation_id IS NOT ?"], [exclude_conversation]
        if language:
            where.append("u.language = ?")
            params.append(language)
        return [AnswerPick.from_row(row) for row in self._store.conn.execute(
            "SELECT u.answer_id, u.conversation_id, "  # noqa: S608
            "(SELECT ifnull(m.subject, '') || ' ' || substr(m.text, 1, 2000) FROM messages m "
            " WHERE m.conversation_id = u.conversation_id AND m.direction = 'in' ORDER BY m.id LIMIT 1) AS question "
            f"FROM answer_uses u JOIN answers a ON a.id = u.answer_id AND a.active = 1 "
            f"WHERE {' AND '.join(where)} ORDER BY u.id DESC LIMIT ?", [*params, limit]).fetchall()]

    def context(self, conversation_id: int) -> AnswerContext | None:
        """What suggesting and inserting an answer needs about a conversation: its channel, whether it
        is public, the customer (name, locale, attributes) and the customer's latest message."""
        conn = self._store.conn
        row = conn.execute(
            "SELECT c.id, c.channel, c.public, c.subject, c.team_id, c.customer_id, cu.display_name AS customer_name, "
            "cu.locale FROM conversations c JOIN customers cu ON cu.id = c.customer_id WHERE c.id = ?",
            (conversation_id,)).fetchone()
        if row is None:
            return None
        cid, channel, public, subject, team_id, customer_id, customer_name, locale = row
        latest = conn.execute(
            "SELECT subject, substr(text, 1, 4000), author_name FROM messages WHERE conversation_id = ? "
            "AND direction = 'in' ORDER BY id DESC LIMIT 1", (conversation_id,)).fetchone()
        question = " ".join(p for p in (latest[0], latest[1]) if p) if latest else subject
        if not customer_name and latest:
            customer_name = latest[2] or ""
        return AnswerContext(id=cid, channel=channel, public=bool(public), subject=subject, team_id=team_id,
                             customer_id=customer_id, customer_name=customer_name, locale=locale, question=question,
                             attributes=self._store.customer_attributes(customer_id))

    def tag_vocabulary(self) -> set[str]:
        """Every tag of an active answer (the topics routing can recognise)."""
        found: set[str] = set()
        for (tags,) in self._store.conn.execute("SELECT tags FROM answers WHERE active = 1 AND tags != ''"):
            found |= set(tags.split())
        return found
