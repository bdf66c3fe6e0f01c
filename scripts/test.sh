#!/usr/bin/env bash
# The README's test command: installs what the tests need, then runs pytest.
#
#   scripts/test.sh                      the whole suite (pytest -q -ra)
#   scripts/test.sh tests/test_x.py -x   any pytest arguments instead of the defaults
#
# Exits with pytest's exit code. "No tests collected" (5) is reported loudly:
# a test command that ran nothing must never look like a pass.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

scripts/setup.sh --test

if (( $# == 0 )); then
    set -- -q -ra
fi

status=0
.venv/bin/python -m pytest "$@" || status=$?

if (( status == 5 )); then
    echo "mainland: FAILED: pytest collected no tests (exit 5); check the paths and -k/-m filters" >&2
fi
exit "$status"
