"""`ast.parse` for the tests that read Mainland's own source, safe beside other threads.

CPython 3.11 keeps the AST constructor's recursion counter per interpreter, not per thread
(gh-106905): when another thread builds an AST at the same moment (3.11's traceback module parses
the source line of every traceback it formats, as a server thread of an earlier test does when it
logs an error while shutting down), `ast.parse` fails with "SystemError: AST constructor recursion
depth mismatch" although the source is fine. Parsing again gives the right answer.

The same race hit code the tests do not own: werkzeug compiles each URL rule with `ast.parse` while
`create_app` registers the blueprints, and a loopback imitation's server thread formatted a
"Broken pipe" traceback at that moment (a clean-clone CI run). `serialize_ast_parse()`, installed by
tests/conftest.py for the whole run on Pythons before 3.12, makes every `ast.parse` take one lock.
The product itself parses nothing at run time but the tracebacks it logs.
"""

from __future__ import annotations

import ast
import functools
import sys
import threading

ATTEMPTS = 5


def parse(source: str) -> ast.Module:
    for attempt in range(ATTEMPTS):
        try:
            return ast.parse(source)
        except SystemError as exc:
            if "recursion depth mismatch" not in str(exc) or attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def serialize_ast_parse() -> None:
    """Make `ast.parse` take one process-wide lock (Python 3.11 and older; see the module's doc)."""
    if sys.version_info >= (3, 12) or getattr(ast.parse, "serialized", False):
        return
    lock = threading.RLock()
    unlocked = ast.parse

    @functools.wraps(unlocked)
    def parse_in_turn(*args, **kwargs):
        with lock:
            return unlocked(*args, **kwargs)

    parse_in_turn.serialized = True
    ast.parse = parse_in_turn
