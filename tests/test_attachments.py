"""Attachments from hostile mail (reliability.md 4.1 IN-07..IN-09, IN-26, IN-27; SEC-03, SEC-14).

Files are stored under the attachment root by content hash only, whatever the sender calls them;
the displayed name is cleaned of path parts, control and bidi characters and capped; a file
whose bytes are not what its image type claims is flagged; archives and images are stored as
opaque bytes, never opened, extracted or thumbnailed.
"""

from __future__ import annotations

import base64
import io
import itertools
import os
import struct
import zipfile
import zlib
from pathlib import Path

import pytest

from inbox.attachments import MAX_FILENAME_CHARS, safe_filename, type_mismatch
from tests.budget import cpu_budget
from tests.inbound import attachment_rows, ingest_raw

_ids = itertools.count(1)


def mail_with_attachment(data: bytes, *, content_type: str = "application/octet-stream",
                         disposition: str = 'attachment; filename="file.bin"') -> bytes:
    encoded = base64.encodebytes(data).decode()
    return ("From: Jane <jane@example.net>\r\nTo: support@mainland.test\r\nSubject: files\r\n"
            f"Message-ID: <att-{next(_ids)}@example.net>\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="m"\r\n\r\n--m\r\nContent-Type: text/plain\r\n\r\nsee file\r\n'
            f"--m\r\nContent-Type: {content_type}\r\nContent-Disposition: {disposition}\r\n"
            f"Content-Transfer-Encoding: base64\r\n\r\n{encoded}--m--\r\n").encode()


def files_under(root: Path) -> list[Path]:
    return [Path(dirpath) / name for dirpath, _, names in os.walk(root) for name in names]


# IN-08: the filename matrix ---------------------------------------------------------------------------

FILENAMES = [
    pytest.param("../../etc/passwd", "passwd", id="IN-08-dot-dot-slash"),
    pytest.param("..%2F..%2Fapp.py", "app.py", id="IN-08-percent-encoded-slash"),
    pytest.param("/etc/passwd", "passwd", id="IN-08-absolute-path"),
    pytest.param("C:\\Windows\\win.ini", "win.ini", id="IN-08-windows-path"),
    pytest.param("..\\..\\x", "x", id="IN-08-backslashes"),
    pytest.param("evil\x00.txt.exe", "evil.txt.exe", id="IN-08-nul-byte"),
    pytest.param("a" * 600 + ".pdf", None, id="IN-08-600-chars"),
    pytest.param("CON", "_CON", id="IN-08-windows-device-name"),
    pytest.param("aux.txt", "_aux.txt", id="IN-08-windows-device-name-with-extension"),
    pytest.param("report\u202efdp.exe", "reportfdp.exe", id="IN-08-rlo-bidi-override"),
    pytest.param("invoice\u2066.pdf\u2069.exe", "invoice.pdf.exe", id="IN-08-bidi-isolates"),
    pytest.param("\uff0e\uff0e\uff0fx", "x", id="IN-08-full-width-dot-dot-slash"),
    pytest.param("", "attachment-1.bin", id="IN-08-empty"),
    pytest.param("...", "attachment-1.bin", id="IN-08-only-dots"),
    pytest.param(".htaccess", "htaccess", id="IN-08-hidden-file"),
    pytest.param("x.exe. . ", "x.exe", id="IN-08-trailing-dots-and-spaces"),
    pytest.param("line\r\nbreak.txt", "linebreak.txt", id="IN-08-crlf"),
    pytest.param("zero\u200bwidth.pdf", "zerowidth.pdf", id="IN-08-zero-width"),
]


@pytest.mark.parametrize("name, expected", FILENAMES)
def test_safe_filename_matrix(name, expected):
    cleaned = safe_filename(name, 1, "")
    if expected is not None:
        assert cleaned == expected
    assert cleaned
    assert "/" not in cleaned and "\\" not in cleaned
    assert not cleaned.startswith(".")
    assert len(cleaned) <= MAX_FILENAME_CHARS
    assert all(ch.isprintable() for ch in cleaned)
    assert not any("\u202a" <= ch <= "\u202e" or "\u2066" <= ch <= "\u2069" for ch in cleaned)


def test_IN_08_long_names_keep_their_extension():
    assert safe_filename("a" * 600 + ".pdf").endswith(".pdf")
    assert len(safe_filename("a" * 600 + ".pdf")) == MAX_FILENAME_CHARS


@pytest.mark.parametrize("content_type, expected", [
    pytest.param("text/plain", "attachment-3.txt", id="IN-08-empty-text"),
    pytest.param("message/rfc822", "attachment-3.eml", id="IN-08-empty-message"),
    pytest.param("application/zip", "attachment-3.bin", id="IN-08-empty-other"),
])
def test_IN_08_empty_names_are_numbered(content_type, expected):
    assert safe_filename(None, 3, content_type) == expected


@pytest.mark.parametrize("name, expected", FILENAMES)
def test_IN_08_hostile_names_are_stored_under_the_root_only(ingestor, store, tmp_path, name, expected):
    quoted = name.replace("\\", "\\\\").replace('"', '\\"').replace("\r\n", "")
    # RFC 2231 form, so that any byte (NUL, bidi) reaches the parser exactly as the attacker chose.
    encoded = "".join(ch if ch.isalnum() or ch in "._-" else "".join(f"%{b:02X}" for b in ch.encode())
                      for ch in name)
    raw = mail_with_attachment(b"payload " + name.encode("utf-8", "replace"),
                               disposition=f"attachment; filename*=UTF-8''{encoded}" if name else
                               f'attachment; filename="{quoted}"')
    stored = ingest_raw(ingestor, raw)
    [attachment] = attachment_rows(store, stored.message["id"])
    if expected is not None:
        # The header decoder turns control characters into spaces before the name is cleaned.
        assert attachment["filename"].replace(" ", "") == expected.replace(" ", "")
    root = Path(ingestor.attachments.root).resolve()
    path = ingestor.attachments.path_for(attachment["sha256"]).resolve()
    assert path.is_relative_to(root)
    assert path.name == attachment["sha256"]
    for file in files_under(tmp_path):
        assert file.resolve().is_relative_to(root) or file.name.startswith("store.db"), file
    assert not (tmp_path / "etc").exists() and not Path("/tmp/x").exists()


def test_IN_07_content_type_name_parameter_is_used_and_cleaned(ingestor, store):
    raw = mail_with_attachment(b"%PDF-1.4", content_type='application/pdf; name="../../<b>bill</b>.pdf"',
                               disposition="attachment")
    stored = ingest_raw(ingestor, raw)
    [attachment] = attachment_rows(store, stored.message["id"])
    assert attachment["filename"] == "b>.pdf"  # the last path part: `</b>` holds a slash


# IN-09: bytes that are not what their type says -----------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + struct.pack(">II", 1, 1) + b"\x08\x02\x00\x00\x00"


@pytest.mark.parametrize(
    "content_type, data, mismatch",
    [
        pytest.param("image/png", b"<html><script>alert(1)</script></html>", True, id="IN-09-png-that-is-html"),
        pytest.param("image/png", PNG + b"tEXt<script>alert(1)</script>", True, id="IN-09-png-html-polyglot"),
        pytest.param("image/gif", b"GIF89a<svg onload=alert(1)>", True, id="IN-09-gif-html-polyglot"),
        pytest.param("image/gif", b"GIF89a=1;alert(document.domain)//<html>", True, id="IN-09-gif-js-polyglot"),
        pytest.param("image/jpeg", b"%PDF-1.4", True, id="IN-09-jpeg-that-is-pdf"),
        pytest.param("image/webp", b"RIFF\x00\x00\x00\x00WAVEfmt ", True, id="IN-09-webp-that-is-wav"),
        pytest.param("application/pdf", b"<html>", True, id="IN-09-pdf-that-is-html"),
        pytest.param("image/png", PNG + b"\x00" * 64, False, id="IN-09-control-real-png"),
        pytest.param("image/gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", False, id="IN-09-control-real-gif"),
        pytest.param("application/octet-stream", b"<html>", False, id="IN-09-control-untyped"),
    ],
)
def test_IN_09_type_mismatch_is_flagged(ingestor, store, content_type, data, mismatch):
    assert type_mismatch(content_type, data) is mismatch
    stored = ingest_raw(ingestor, mail_with_attachment(data, content_type=content_type))
    [attachment] = attachment_rows(store, stored.message["id"])
    assert attachment["type_mismatch"] == int(mismatch)
    assert attachment["content_type"] == content_type
    assert stored.message["html"] is None


# IN-26, IN-27: archives and images are opaque blobs ------------------------------------------------------


def zip_bomb() -> bytes:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("zeros.bin", b"\0" * (20 * 1024 * 1024))
    outer = io.BytesIO()
    with zipfile.ZipFile(outer, "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(8):
            z.writestr(f"layer{i}.zip", inner.getvalue())
        z.writestr("../../escape.txt", b"traversal")
    return outer.getvalue()


def test_IN_26_zip_bomb_is_stored_as_is_and_never_opened(ingestor, store, tmp_path, monkeypatch):
    bomb = zip_bomb()
    assert len(bomb) < 200_000

    def refuse(*args, **kwargs):
        raise AssertionError("an archive was opened during ingest")

    monkeypatch.setattr(zipfile.ZipFile, "__init__", refuse)
    with cpu_budget(2, "ingesting a zip bomb"):
        stored = ingest_raw(ingestor, mail_with_attachment(bomb, content_type="application/zip",
                                                           disposition='attachment; filename="42.zip"'))
    [attachment] = attachment_rows(store, stored.message["id"])
    assert attachment["size"] == len(bomb)
    assert ingestor.attachments.read(attachment["sha256"]) == bomb
    assert len(files_under(ingestor.attachments.root)) == 1
    assert not (tmp_path / "escape.txt").exists()


def png_with_size(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    "content_type, data",
    [
        pytest.param("image/png", png_with_size(50_000, 50_000), id="IN-27-png-50000x50000"),
        pytest.param("image/jpeg", b"\xff\xd8\xff\xc0\x00\x11\x08\xff\xff\xff\xff\x03" + b"\0" * 64,
                     id="IN-27-jpeg-huge-declared-size"),
        pytest.param("image/tiff", b"II*\x00" + b"\xff" * 64, id="IN-27-tiff"),
        pytest.param("image/fits", b"SIMPLE  =                    T" + b" " * 50, id="IN-27-fits"),
    ],
)
def test_IN_27_images_are_kept_and_never_decoded(ingestor, store, content_type, data):
    with cpu_budget(2, "ingesting the image"):
        stored = ingest_raw(ingestor, mail_with_attachment(data, content_type=content_type,
                                                           disposition='inline; filename="picture"'))
    [attachment] = attachment_rows(store, stored.message["id"])
    assert attachment["size"] == len(data)
    assert ingestor.attachments.read(attachment["sha256"]) == data
    # No thumbnail or preview: the attachment is the only file written.
    assert len(files_under(ingestor.attachments.root)) == 1


def test_IN_28_tnef_winmail_dat_is_kept_undecoded(ingestor, store):
    # A TNEF header with a crafted compressed-RTF size (the Roundcube 1.6.17 shape): we never decode TNEF.
    tnef = struct.pack("<IH", 0x223E9F78, 1) + b"\x01\x06\x90\x08\x00" + b"\xff\xff\xff\x7f" + b"\0" * 64
    stored = ingest_raw(ingestor, mail_with_attachment(tnef, content_type="application/ms-tnef",
                                                       disposition='attachment; filename="winmail.dat"'))
    [attachment] = attachment_rows(store, stored.message["id"])
    assert attachment["filename"] == "winmail.dat"
    assert ingestor.attachments.read(attachment["sha256"]) == tnef
    assert len(files_under(ingestor.attachments.root)) == 1


# Size cap ------------------------------------------------------------------------------------------------


def test_attachment_over_the_cap_is_listed_without_bytes(ingestor, store):
    data = os.urandom(300_000)
    raw = mail_with_attachment(data, disposition='attachment; filename="big.bin"')
    stored = ingest_raw(ingestor, raw, max_attachment_bytes=100_000)
    [attachment] = attachment_rows(store, stored.message["id"])
    assert attachment["stored"] == 0 and attachment["sha256"] is None
    assert attachment["size"] == len(data) and attachment["filename"] == "big.bin"
    assert "truncated" in stored.flags
    assert store.raw_message(stored.message["id"]) == raw
    assert files_under(ingestor.attachments.root) == []
