"""`ast.parse` for the tests that read Mainland's own source, safe beside other threads.

CPython 3.11 keeps the AST constructor's recursion counter per interpreter, not per thread
(gh-106905): when another thread builds an AST at the same moment (3.11's traceback module parses
the source line of every traceback it formats, as a server thread of an earlier test does when it
logs an error while shutting down), `ast.parse` fails with "SystemError: AST constructor recursion
depth mismatch" although the source is fine. Parsing again gives the right answer.
"""

from __future__ import annotations

import ast

ATTEMPTS = 5


def parse(source: str) -> ast.Module:
    for attempt in range(ATTEMPTS):
        try:
            return ast.parse(source)
        except SystemError as exc:
            if "recursion depth mismatch" not in str(exc) or attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")
