#!/usr/bin/env bash
# Refreshes the hashed lock files in requirements/ from the ranges in pyproject.toml.
#
#   scripts/lock.sh             keep every pinned version that still fits the ranges
#   scripts/lock.sh --upgrade   take the newest version each range allows
#
# uv resolves once for every platform and Python 3.11+ (--universal) and writes a sha256 for every
# file of every pinned release, so `pip install --require-hashes` installs exactly what was tested.
# uv is only needed here, in a tool venv of its own; installs (scripts/setup.sh) use plain pip.
# After a refresh, run scripts/test.sh and commit the lock files with the change that needed them.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

extra=()
for arg in "$@"; do
    case "$arg" in
        --upgrade) extra+=(--upgrade) ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "mainland: lock.sh: unknown option: $arg" >&2; exit 2 ;;
    esac
done

tools=.venv-tools
if [[ ! -x "$tools/bin/uv" ]]; then
    python3 -m venv "$tools"
    "$tools/bin/python" -m pip install -qq --disable-pip-version-check 'uv>=0.5,<1'
fi

compile() {  # compile OUTPUT DESCRIPTION [--extra NAME…]
    local out="$1" what="$2"; shift 2
    "$tools/bin/uv" pip compile pyproject.toml --quiet --universal --python-version 3.11 \
        --generate-hashes --no-header --index-url https://pypi.org/simple \
        "${extra[@]}" "$@" -o "$out"
    # uv writes no header with --no-header; say what the file is and how it is made.
    { printf '# %s\n# Made by scripts/lock.sh from pyproject.toml; do not edit by hand.\n' "$what"; cat "$out"; } >"$out.tmp"
    mv "$out.tmp" "$out"
}

compile requirements/runtime.lock "the product alone (pip install .)"
compile requirements/demo.lock "the product and the live demo (scripts/demo.sh)" --extra demo
compile requirements/test.lock "the product, the demo and the tests (scripts/test.sh)" --extra demo --extra test
echo "mainland: lock files refreshed in requirements/"
