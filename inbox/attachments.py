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
    "image/jpg": (b"\xff\xd8\xff",),
    "image/pjpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "application/pdf": (b"%PDF-",),
    "image/webp": (b"RIFF",),
    "image/bmp": (b"BM",),
    "image/tiff": (b"II*\x00", b"MM\x00*"),
    "image/x-icon": (b"\x00\x00\x01\x00",),
    "image/vnd.microsoft.icon": (b"\x00\x00\x01\x00",),
}
#: Markup a browser would run if it ever sniffed an "image" as HTML (a GIF/HTML or PNG/HTML polyglot).
_ACTIVE_MARKUP = re.compile(rb"<(?:script|html|body|svg|iframe|object|embed|img|a\s)|javascript:", re.IGNORECASE)
# Control characters, bidi overrides and isolates, zero-width and invisible characters, line and
# paragraph separators: each can make a name look like something it is not.
_BIDI_AND_CONTROL = re.compile(
    "[\u0000-\u001f\u007f-\u009f\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]"
)
_SEPARATORS = re.compile(r"[\\/]|%2f|%5c", re.IGNORECASE)
#: Device names Windows will not save a file as, with any extension.
_WINDOWS_RESERVED = frozenset({"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)),
                               *(f"lpt{i}" for i in range(10))})


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

    def delete(self, sha256: str) -> bool:
        """Remove the file for `sha256` (callers first check that no attachment row references it).

        Files are shared by content: only delete once the last reference is gone (see inbox/privacy.py).
        """
        path = self.path_for(sha256)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True

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
    # Windows drops trailing dots and spaces: `x.exe. ` would be saved as `x.exe`.
    # Percent-encoded separators too: a name is shown, linked and maybe decoded once more later.
    name = _SEPARATORS.split(name)[-1].strip().lstrip(".").rstrip(". ")
    if name.split(".", 1)[0].strip().lower() in _WINDOWS_RESERVED:
        name = f"_{name}"
    if len(name) > MAX_FILENAME_CHARS:
        stem, dot, ext = name.rpartition(".")
        ext = ext[:10] if dot else ""
        name = (stem if dot else name)[: MAX_FILENAME_CHARS - len(ext) - 1] + (f".{ext}" if ext else "")
    if not name:
        ext = {"text/plain": "txt", "text/html": "html", "message/rfc822": "eml"}.get(content_type, "bin")
        name = f"attachment-{index}.{ext}"
    return name


def type_mismatch(content_type: str, data: bytes | None) -> bool:
    """True when the bytes are not what the declared image/PDF type says (a polyglot or a lie).

    An image must start with its format's signature and hold no HTML or script markup: a file
    that is both a valid GIF and a valid HTML page is flagged, whichever a browser would see.
    """
    if not data:
        return False
    content_type = content_type.lower()
    signatures = _MAGIC.get(content_type)
    if signatures is not None and not data.startswith(signatures):
        return True
    if content_type == "image/webp" and data[8:12] != b"WEBP":
        return True
    return content_type.startswith("image/") and content_type != "image/svg+xml" and bool(
        _ACTIVE_MARKUP.search(data))
