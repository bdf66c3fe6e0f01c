#!/usr/bin/env bash
# Translations: extract every string, merge them into each language, compile the .mo files.
#
#   scripts/translations.sh            extract + update + compile (run after changing strings)
#   scripts/translations.sh compile    compile only (after editing a .po file)
#   scripts/translations.sh init LANG  start a new language
#
# Then translate the new/fuzzy entries in inbox/translations/<lang>/LC_MESSAGES/messages.po,
# run `scripts/translations.sh compile`, and commit the .pot, .po and .mo files.
# tests/test_translations.py fails while a string lacks its Dutch translation.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

pybabel=(pybabel)
if [[ -x .venv/bin/pybabel ]]; then pybabel=(.venv/bin/pybabel); fi
dir=inbox/translations
pot=$dir/messages.pot

extract() {
    "${pybabel[@]}" extract -F babel.cfg -k lazy_gettext -k _l --no-location --sort-output \
        --project=Mainland --copyright-holder="Mainland contributors" --msgid-bugs-address="" \
        -o "$pot" .
}

case "${1:-all}" in
    all)
        extract
        "${pybabel[@]}" update -i "$pot" -d "$dir" --no-fuzzy-matching --ignore-obsolete
        "${pybabel[@]}" compile -d "$dir" --statistics
        ;;
    compile)
        "${pybabel[@]}" compile -d "$dir" --statistics
        ;;
    init)
        lang="${2:?usage: scripts/translations.sh init LANG}"
        extract
        "${pybabel[@]}" init -i "$pot" -d "$dir" -l "$lang"
        ;;
    *)
        echo "usage: scripts/translations.sh [all|compile|init LANG]" >&2
        exit 2
        ;;
esac
