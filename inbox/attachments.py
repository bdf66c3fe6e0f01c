"""Attachment files on disk, stored once by content hash, written so a crash leaves no half file.

Files live at `<root>/<aa>/<bb>/<sha256>`: the name is ours, never the sender's, so no filename
can climb out of the folder. Bytes are written to a temporary file, flushed to disk and renamed
into place before the database row that points at them is committed. The display name keeps the
sender's choice without path parts, control or bidi characters, capped in length.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
import unicodedata
from pathlib import Path

MAX_FILENAME_CHARS = 120
_MAGIC = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "application/pdf": (b"%PDF-",),
    "image/webp": (b"RIFF",),
}
_BIDI_AND_CONTROL = re.compile("[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


class AttachmentStore:
    """Content-addressed files under one root folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def path_for(self, sha256: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise ValueError("not a sha256 hex digest")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes) -> str:
        """Store `data` (once) and return its sha256."""
        digest = hashlib.sha256(data).hexdigest()
        path = self.path_for(digest)
        if path.exists():
            return digest
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest

    def read(self, sha256: str) -> bytes:
        return self.path_for(sha256).read_bytes()

    def remove_orphaned_temp_files(self, min_age_seconds: float = 0.0) -> int:
        """Delete temporary files left by a crash mid-write; returns how many.

        `min_age_seconds` spares younger files: another process may be writing them right now.
        """
        removed = 0
        cutoff = time.time() - min_age_seconds
        for tmp in self.root.glob("*/*/.tmp-*"):
            try:
                if min_age_seconds and tmp.stat().st_mtime > cutoff:
                    continue
            except FileNotFoundError:
                continue
            tmp.unlink(missing_ok=True)
            removed += 1
        return removed


def safe_filename(name: str | None, index: int = 1, content_type: str = "") -> str:
    """A display name without path parts, control or bidi characters; never empty."""
    name = unicodedata.normalize("NFKC", name or "")
    name = _BIDI_AND_CONTROL.sub("", name)
    name = re.split(r"[\\/]", name)[-1].strip().lstrip(".")
    if len(name) > MAX_FILENAME_CHARS:
        stem, dot, ext = name.rpartition(".")
        ext = ext[:10] if dot else ""
        name = (stem if dot else name)[: MAX_FILENAME_CHARS - len(ext) - 1] + (f".{ext}" if ext else "")
    if not name:
        ext = {"text/plain": "txt", "text/html": "html", "message/rfc822": "eml"}.get(content_type, "bin")
        name = f"attachment-{index}.{ext}"
    return name


def type_mismatch(content_type: str, data: bytes | None) -> bool:
    """True when the bytes are not what the declared image/PDF type says (a polyglot or a lie)."""
    if not data:
        return False
    signatures = _MAGIC.get(content_type.lower())
    if signatures is None:
        return False
    return not data.startswith(signatures)
