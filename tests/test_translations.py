"""Dutch is complete: every string has a translation, the catalogue matches the code, pages speak Dutch.

When a test here fails after you changed a string: run `scripts/translations.sh`, translate the
new entries in inbox/translations/nl/LC_MESSAGES/messages.po, run `scripts/translations.sh compile`
and commit the .pot, .po and .mo files.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "inbox" / "translations"
POT = TRANSLATIONS / "messages.pot"
NL_PO = TRANSLATIONS / "nl" / "LC_MESSAGES" / "messages.po"
NL_MO = TRANSLATIONS / "nl" / "LC_MESSAGES" / "messages.mo"
FIX = "run scripts/translations.sh, translate the new entries in the nl .po, then scripts/translations.sh compile"


def _ids(catalog) -> set:
    return {m.id for m in catalog if m.id}


def _catalog(path: Path, **kw):
    with path.open("rb") as fh:
        return read_po(fh, **kw)


def test_every_string_has_a_dutch_translation():
    template = _catalog(POT)
    dutch = _catalog(NL_PO, locale="nl")
    missing = [m.id for m in template if m.id and not (dutch.get(m.id) and dutch.get(m.id).string)]
    fuzzy = [m.id for m in dutch if m.id and m.fuzzy]
    assert not missing, f"no Dutch for {missing}; {FIX}"
    assert not fuzzy, f"fuzzy (unchecked) Dutch for {fuzzy}; check them and remove the fuzzy mark"


def test_catalogue_is_up_to_date_with_the_code(tmp_path):
    fresh = tmp_path / "messages.pot"
    subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "extract", "-F", "babel.cfg", "-k", "lazy_gettext",
         "-k", "_l", "--no-location", "-o", str(fresh), "."],
        cwd=ROOT, check=True, capture_output=True,
    )
    in_code, in_catalogue = _ids(_catalog(fresh)), _ids(_catalog(POT))
    assert in_code == in_catalogue, (
        f"strings new in the code: {sorted(map(str, in_code - in_catalogue))}; "
        f"gone from the code: {sorted(map(str, in_catalogue - in_code))}; {FIX}"
    )


def test_compiled_catalogue_matches_the_po_file():
    dutch = _catalog(NL_PO, locale="nl")
    with NL_MO.open("rb") as fh:
        compiled = read_mo(fh)
    # Plural forms come back from the .mo as a list and from the .po as a tuple.
    same = lambda a, b: (tuple(a) if isinstance(a, list) else a) == (tuple(b) if isinstance(b, list) else b)  # noqa: E731
    stale = [m.id for m in dutch if m.id and (compiled.get(m.id) is None or not same(compiled.get(m.id).string, m.string))]
    assert not stale, f"the .mo file is older than the .po file for {stale}; run scripts/translations.sh compile"


def test_translations_keep_their_placeholders():
    # Both kinds: %(name)s of gettext's formatting and {name} of connector phrases (connectors.base.Phrase).
    placeholder = re.compile(r"%\(\w+\)[sd]|\{\w+\}")
    # Plural entries hold tuples (singular, plural) and (one translation per Dutch form).
    text = lambda value: " ".join(value) if isinstance(value, tuple | list) else value  # noqa: E731
    for message in _catalog(NL_PO, locale="nl"):
        if message.id:
            assert sorted(placeholder.findall(text(message.id))) == \
                sorted(placeholder.findall(text(message.string))), message.id


def test_sign_in_page_in_dutch_for_a_dutch_browser(client):
    page = client.get("/login", headers={"Accept-Language": "nl-NL,nl;q=0.9,en;q=0.5"}).get_data(as_text=True)
    assert '<html lang="nl">' in page
    for word in ("Inloggen", "Wachtwoord", "E-mailadres"):
        assert word in page
    assert "Password" not in page and "Sign in" not in page


@pytest.mark.parametrize("header", ["en-GB,en;q=0.9", "de-DE,de;q=0.9"])
def test_other_browsers_get_english(client, header):
    page = client.get("/login", headers={"Accept-Language": header}).get_data(as_text=True)
    assert "Sign in" in page and "Password" in page
