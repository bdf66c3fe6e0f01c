"""HEAD and OPTIONS never change anything, on any route, for anyone (issue 13: a HEAD /login with a
valid password used to sign in, with no rate limit and no CSRF check).

Flask answers HEAD with the GET view and OPTIONS automatically, so a view that branches on "not GET"
treats a HEAD carrying a form as the form's submission. Every state-changing row of the route x role
matrix (tests/test_access_matrix.py) is replayed here as HEAD and as OPTIONS, with the same path, query,
form and a valid CSRF token, by an anonymous visitor and by an administrator: the database must be
byte-for-byte the same in content afterwards and no session may be issued.
"""

from __future__ import annotations

import pytest
from werkzeug.routing import IntegerConverter

from tests.test_access_matrix import ADMIN, ANON, ROWS, Installation, _fill, _token, installation  # noqa: F401
from tests.test_web_auth import PASSWORD

#: Columns a mere page view may write (when an agent was last seen); the same for GET, HEAD and OPTIONS.
READ_SIDE = {("agents", "last_seen_at"), ("agents", "last_active_at"), ("agent_sessions", "last_seen_at")}

STATE_CHANGING = [row for row in ROWS if row.method in ("POST", "PUT", "PATCH", "DELETE")]


def _content(store) -> dict[str, list]:
    """Every table's rows (less the read-side columns), for comparing before and after."""
    tables = [r[0] for r in store.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "AND name NOT LIKE '%_fts%' AND name NOT LIKE 'conversation_search%'")]
    content = {}
    for table in tables:
        columns = [r[1] for r in store.execute(f"PRAGMA table_info({table})")]  # noqa: S608
        kept = [c for c in columns if (table, c) not in READ_SIDE]
        quoted = ", ".join(f'"{c}"' for c in kept)
        content[table] = sorted(map(repr, store.execute(f"SELECT {quoted} FROM {table}")))  # noqa: S608
    return content


def _difference(before: dict[str, list], after: dict[str, list]) -> list[str]:
    return [table for table in sorted(set(before) | set(after)) if before.get(table) != after.get(table)]


@pytest.mark.parametrize("row", STATE_CHANGING, ids=[f"{r.method}-{r.endpoint}-{i}" for i, r in enumerate(STATE_CHANGING)])
@pytest.mark.parametrize("method", ["HEAD", "OPTIONS"])
def test_head_and_options_change_nothing(installation, row, method):  # noqa: F811
    ids = installation.ids
    path = _fill(row.path, ids)
    query = {k: _fill(v, ids) for k, v in row.query.items()}
    world = installation.fresh()
    try:
        for role in (ANON, ADMIN):
            client = Installation.client(world, role)
            form = {k: _fill(v, ids) for k, v in row.form.items()}
            form["csrf_token"] = _token(client, role)
            had_session = any(c.key == "session" for c in client._cookies.values())
            before = _content(world.store)
            response = client.open(path, method=method, query_string=query, data=form,
                                   headers={"X-CSRFToken": form["csrf_token"]})
            changed = _difference(before, _content(world.store))
            assert not changed, f"{method} {path} as {role} changed {changed} (status {response.status_code})"
            if not had_session:
                cookies = response.headers.getlist("Set-Cookie")
                assert not any(c.startswith("session=") and "Expires=Thu, 01 Jan 1970" not in c for c in cookies), \
                    f"{method} {path} as {role} issued a session"
    finally:
        world.store.close()


def test_a_head_with_the_right_password_does_not_sign_in(installation):  # noqa: F811
    """The hole itself, spelt out: HEAD /login with a valid email and password."""
    world = installation.fresh()
    try:
        client = Installation.client(world, ANON)
        token = _token(client, ANON)
        email = world.agents["admin"]["email"]
        response = client.open("/login", method="HEAD", data={"email": email, "password": PASSWORD,
                                                              "csrf_token": token})
        assert response.status_code == 200, "HEAD is answered like GET: the sign-in page"
        assert client.get("/").status_code == 302, "and nobody is signed in"
        assert client.get("/").headers["Location"].startswith("/login")
    finally:
        world.store.close()


def test_a_huge_number_in_any_url_is_a_404_not_a_500(installation):  # noqa: F811
    """Every route with an integer in its path, asked for with a number SQLite cannot hold."""
    app = installation.shared.app
    client = installation.clients[ADMIN]
    tried = 0
    for rule in app.url_map.iter_rules():
        ints = [name for name, conv in rule._converters.items() if isinstance(conv, IntegerConverter)]
        if not ints:
            continue
        values = {name: 1 for name in rule.arguments}
        for name in ints:
            values[name] = 99999999999999999999999
        path = rule.rule
        for name, value in values.items():
            path = path.replace(f"<int:{name}>", str(value)).replace(f"<{name}>", str(value))
        for method in sorted(rule.methods - {"OPTIONS", "HEAD"}):
            response = client.open(path, method=method, data={"csrf_token": _token(client, ADMIN)})
            assert response.status_code == 404, f"{method} {path}: {response.status_code}"
            tried += 1
    assert tried > 20, "the routes with ids were found"
