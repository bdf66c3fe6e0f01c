"""Store verbs for the answer library: answers and their versions, and which answer agents picked where.

Every change of an answer's text, title, language or tags is a new version; the version it
replaced stays in `answer_versions`, so the library can show what changed and when. A use
(`answer_uses`) names the conversation, not the question: ranking reads the question from the
conversation, so nothing of the customer's text is copied into the library's tables.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from inbox.store.base import NotFound, as_dict, as_dicts

_COLUMNS = ("a.id, a.title, a.body, a.language, a.tags, a.owner_id, a.version, a.active, a.created_at, "
            "a.updated_at, o.name AS owner_name, "
            "(SELECT count(*) FROM answer_uses u WHERE u.answer_id = a.id) AS uses")


class AnswerQueries:
    conn: Any
    write: Any

    def create_answer(self, *, title: str, body: str, language: str, tags: Iterable[str], owner_id: int | None,
                      now: str) -> int:
        tag_text = " ".join(tags)
        with self.write():
            answer_id = self.conn.execute(
                "INSERT INTO answers (title, body, language, tags, owner_id, version, active, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, 1, 1, ?, ?)", (title, body, language, tag_text, owner_id, now, now)).lastrowid
            self.conn.execute(
                "INSERT INTO answer_versions (answer_id, version, title, body, language, tags, edited_by, edited_at) "
                "VALUES (?, 1, ?, ?, ?, ?, ?, ?)", (answer_id, title, body, language, tag_text, owner_id, now))
            return answer_id

    def update_answer(self, answer_id: int, *, title: str, body: str, language: str, tags: Iterable[str],
                      editor_id: int | None, now: str) -> int:
        """Save an edit as a new version; returns the answer's version (unchanged when nothing changed)."""
        tag_text = " ".join(tags)
        with self.write():
            current = self.answer(answer_id)
            if (current["title"], current["body"], current["language"], current["tags"]) == (
                    title, body, language, tag_text):
                return current["version"]
            version = current["version"] + 1
            self.conn.execute(
                "UPDATE answers SET title = ?, body = ?, language = ?, tags = ?, version = ?, updated_at = ? "
                "WHERE id = ?", (title, body, language, tag_text, version, now, answer_id))
            self.conn.execute(
                "INSERT INTO answer_versions (answer_id, version, title, body, language, tags, edited_by, edited_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (answer_id, version, title, body, language, tag_text, editor_id, now))
            return version

    def set_answer_active(self, answer_id: int, active: bool, now: str) -> None:
        with self.write():
            self.conn.execute("UPDATE answers SET active = ?, updated_at = ? WHERE id = ?",
                              (int(active), now, answer_id))

    def import_answers(self, *, creates: Iterable[dict[str, Any]], updates: Iterable[tuple[int, dict[str, Any]]],
                       agent_id: int | None, now: str) -> dict[str, int]:
        """Apply an import (inbox/answer_transfer.py) in one transaction: new answers, and edits of existing
        ones as new versions. Each value set has title, body, language, tags and `active` (None = leave it).
        Returns how many answers were created and updated."""
        created = updated = 0
        with self.write():
            for values in creates:
                answer_id = self.create_answer(title=values["title"], body=values["body"], language=values["language"],
                                               tags=values["tags"], owner_id=agent_id, now=now)
                if values.get("active") is False:
                    self.set_answer_active(answer_id, False, now)
                created += 1
            for answer_id, values in updates:
                before = self.answer(answer_id)
                self.update_answer(answer_id, title=values["title"], body=values["body"], language=values["language"],
                                   tags=values["tags"], editor_id=agent_id, now=now)
                if values.get("active") is not None and bool(before["active"]) != values["active"]:
                    self.set_answer_active(answer_id, values["active"], now)
                updated += 1
        return {"created": created, "updated": updated}

    def answer(self, answer_id: int) -> dict[str, Any]:
        cur = self.conn.execute(
            f"SELECT {_COLUMNS} FROM answers a LEFT JOIN agents o ON o.id = a.owner_id WHERE a.id = ?",  # noqa: S608
            (answer_id,))
        row = as_dict(cur, cur.fetchone())
        if row is None:
            raise NotFound(f"no answer {answer_id}")
        return row

    def answers(self, *, active: bool | None = True, language: str | None = None) -> list[dict[str, Any]]:
        """Answers by title; `active` None includes archived ones."""
        where, params = ["1 = 1"], []
        if active is not None:
            where.append("a.active = ?")
            params.append(int(active))
        if language:
            where.append("a.language = ?")
            params.append(language)
        return as_dicts(self.conn.execute(
            f"SELECT {_COLUMNS} FROM answers a LEFT JOIN agents o ON o.id = a.owner_id "  # noqa: S608
            f"WHERE {' AND '.join(where)} ORDER BY lower(a.title), a.id", params))

    def answer_languages(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT DISTINCT language FROM answers ORDER BY language")]

    def answer_versions(self, answer_id: int) -> list[dict[str, Any]]:
        """Every version of an answer, newest first, with who made it."""
        return as_dicts(self.conn.execute(
            "SELECT v.version, v.title, v.body, v.language, v.tags, v.edited_by, v.edited_at, e.name AS editor_name "
            "FROM answer_versions v LEFT JOIN agents e ON e.id = v.edited_by WHERE v.answer_id = ? "
            "ORDER BY v.version DESC", (answer_id,)))

    def record_answer_use(self, answer_id: int, version: int, conversation_id: int, agent_id: int | None,
                          language: str | None, now: str) -> bool:
        """Remember that an agent picked this answer in this conversation (once per conversation)."""
        with self.write():
            cur = self.conn.execute(
                "INSERT INTO answer_uses (answer_id, version, conversation_id, agent_id, language, at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (answer_id, conversation_id) DO NOTHING",
                (answer_id, version, conversation_id, agent_id, language, now))
            return bool(cur.rowcount)

    def answer_use_questions(self, language: str | None, *, limit: int = 400,
                             exclude_conversation: int | None = None) -> list[dict[str, Any]]:
        """The latest picks (in `language`, or all when None) with the question each answered: the
        first customer message of that conversation."""
        where, params = ["u.conversation_id IS NOT ?"], [exclude_conversation]
        if language:
            where.append("u.language = ?")
            params.append(language)
        return as_dicts(self.conn.execute(
            "SELECT u.answer_id, u.conversation_id, "  # noqa: S608
            "(SELECT ifnull(m.subject, '') || ' ' || substr(m.text, 1, 2000) FROM messages m "
            " WHERE m.conversation_id = u.conversation_id AND m.direction = 'in' ORDER BY m.id LIMIT 1) AS question "
            f"FROM answer_uses u JOIN answers a ON a.id = u.answer_id AND a.active = 1 "
            f"WHERE {' AND '.join(where)} ORDER BY u.id DESC LIMIT ?", [*params, limit]))

    def answer_context(self, conversation_id: int) -> dict[str, Any] | None:
        """What suggesting and inserting an answer needs about a conversation: its channel, whether it
        is public, the customer (name, locale, attributes) and the customer's latest message."""
        cur = self.conn.execute(
            "SELECT c.id, c.channel, c.public, c.subject, c.team_id, c.customer_id, cu.display_name AS customer_name, "
            "cu.locale FROM conversations c JOIN customers cu ON cu.id = c.customer_id WHERE c.id = ?",
            (conversation_id,))
        row = as_dict(cur, cur.fetchone())
        if row is None:
            return None
        latest = self.conn.execute(
            "SELECT subject, substr(text, 1, 4000), author_name FROM messages WHERE conversation_id = ? "
            "AND direction = 'in' ORDER BY id DESC LIMIT 1", (conversation_id,)).fetchone()
        row["question"] = " ".join(p for p in (latest[0], latest[1]) if p) if latest else row["subject"]
        if not row["customer_name"] and latest:
            row["customer_name"] = latest[2] or ""
        row["attributes"] = self.customer_attribute_map(row["customer_id"])
        return row

    def customer_attribute_map(self, customer_id: int) -> dict[str, str]:
        """The customer's custom attributes (empty when the customer records have none)."""
        return {k: v for k, v in self.conn.execute(
            "SELECT key, value FROM customer_attributes WHERE customer_id = ?", (customer_id,))}

    def answer_tag_vocabulary(self) -> set[str]:
        """Every tag of an active answer (the topics routing can recognise)."""
        found: set[str] = set()
        for (tags,) in self.conn.execute("SELECT tags FROM answers WHERE active = 1 AND tags != ''"):
            found |= set(tags.split())
        return found
