#!/usr/bin/env bash
# The README's run command: installs Mainland if needed, then starts the demo.
#
#   scripts/demo.sh [ARGS…]     extra arguments go to `mainland demo`
#
# MAINLAND_CONFIG picks another configuration file (default demo/config.yaml).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

scripts/setup.sh
exec .venv/bin/mainland --config "${MAINLAND_CONFIG:-demo/config.yaml}" demo "$@"
