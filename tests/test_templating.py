"""The app's Jinja environment reads `row.name` on a dict as its key at once (inbox/web/templating.py),
with exactly Jinja's own results: the pages' rows are dicts read that way thousands of times a page."""

from __future__ import annotations

from jinja2 import Environment

from inbox.web.templating import RowEnvironment

CASES = [
    ("{{ row.name }}", {"row": {"name": "Ann"}}),
    ("{{ row.missing is defined }}", {"row": {"name": "Ann"}}),
    ("{{ row.missing or 'none' }}", {"row": {}}),
    # A dict's own methods stay methods, also when it has a key of that name.
    ("{% for k, v in row.items() %}{{ k }}={{ v }};{% endfor %}", {"row": {"items": 3, "b": 4}}),
    ("{{ row.get('b', 5) }} {{ row.keys() | list | length }}", {"row": {"get": 1, "b": 2}}),
    # Not a plain dict: Jinja's way, attribute first.
    ("{{ row.real }}", {"row": 5}),
    ("{{ row.name }}", {"row": type("Row", (dict,), {"name": "attribute"})(name="key")}),
    ("{{ row[0].name }} {{ row.name }}", {"row": [{"name": "in a list"}]}),
]


def test_rows_read_the_same_as_with_jinja_s_own_environment():
    for source, values in CASES:
        expected = Environment().from_string(source).render(**values)
        assert _render(source, values) == expected, source


def _render(source: str, values: dict) -> str:
    class Plain(RowEnvironment):
        """Without an app: only the lookup under test differs from Jinja's own environment."""

        def __init__(self) -> None:
            Environment.__init__(self)

    return Plain().from_string(source).render(**values)


def test_the_app_renders_its_pages_with_it(app):
    assert isinstance(app.jinja_env, RowEnvironment)
