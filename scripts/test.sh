#!/usr/bin/env bash
# The README's test command: installs what the tests need, then runs pytest.
#
#   scripts/test.sh                      the whole suite (pytest -q -ra)
#   scripts/test.sh --fast               the fast tier: no server, browser or slow test; installs no
#                                        Debian package and starts no server (a few minutes)
#   scripts/test.sh tests/test_x.py -x   any pytest arguments instead of the defaults
#   scripts/test.sh --fast -k queue      --fast first, then pytest arguments
#   scripts/test.sh --engine postgresql  the `store` fixture on a throwaway PostgreSQL cluster (#17;
#                                        before --fast when both are given)
#
# Exits with pytest's exit code. "No tests collected" (5) is reported loudly:
# a test command that ran nothing must never look like a pass.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if [[ "${1:-}" == "--engine" ]]; then
    case "${2:-}" in
        sqlite|postgresql) export MAINLAND_TEST_ENGINE="$2" ;;
        *) echo "mainland: test.sh: --engine takes sqlite or postgresql, not '${2:-}'" >&2; exit 2 ;;
    esac
    shift 2
fi

fast=0
if [[ "${1:-}" == "--fast" ]]; then
    fast=1
    shift
fi

if (( fast )); then
    scripts/setup.sh --test --no-system
    export MAINLAND_TEST_TIER=fast
    set -- -m "not server and not browser and not slow" "$@"
else
    scripts/setup.sh --test
fi

if (( $# == 0 || (fast && $# == 2) )); then
    set -- "$@" -q -ra
fi

status=0
.venv/bin/python -m pytest "$@" || status=$?

if (( status == 5 )); then
    echo "mainland: FAILED: pytest collected no tests (exit 5); check the paths and -k/-m filters" >&2
fi
exit "$status"
