"""The SpamAssassin public corpus as a pytest fixture (the fetching lives in `inbox/corpus.py`).

Two ways in:

* the pytest fixture ``spam_assassin_corpus`` (session scope), when this module
  is loaded as a plugin (``pytest_plugins = ["tests.corpus"]``);
* ``corpus_paths()`` for scripts such as bench/, which need no pytest:
  ``from tests.corpus import corpus_paths`` (or ``inbox.corpus`` directly).

``python -m tests.corpus`` fetches it ahead of time and prints where it is.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

try:  # only the fixture needs pytest; bench scripts may run without it
    import pytest
except ImportError:  # pragma: no cover
    pytest = None

from inbox.corpus import EXPECTED_COUNT, VERSION, CorpusUnavailable, cache_dir, corpus_paths, is_spam

__all__ = ["EXPECTED_COUNT", "CorpusUnavailable", "cache_dir", "corpus_paths", "is_spam", "messages_folder",
           "spam_assassin_corpus"]


if pytest is not None:

    @pytest.fixture(scope="session")
    def spam_assassin_corpus() -> list[Path]:
        """The 6,046 SpamAssassin message files (``pathlib.Path``, sorted).

        Skips when the corpus cannot be fetched, except under CI, where it fails.
        """
        try:
            return corpus_paths()
        except CorpusUnavailable as exc:
            ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
            if ci:
                pytest.fail(f"SpamAssassin corpus unavailable under CI: {exc}", pytrace=False)
            pytest.skip(f"SpamAssassin corpus unavailable: {exc}")


def messages_folder(paths: list[Path], folder: Path) -> Path:
    """`folder` holding the corpus's messages only (the package folder also holds JSON files), as the
    importer reads a mailbox folder; returns it. Hard links (or copies) rather than symlinks: a re-fetch
    of the shared cache must not pull the files away mid-test."""
    for path in paths:
        target = folder / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copyfile(path, target)
    return folder


if __name__ == "__main__":
    found = corpus_paths()
    print(f"{len(found)} messages under {cache_dir() / VERSION / 'package' / 'data'}")
