"""`Limits.refuse_files`: the one rule the composer, the outbox and each connector apply to a reply's files."""

from __future__ import annotations

from connectors.base import Limits
from inbox.models import Attachment


def _file(name: str, kind: str, size: int) -> Attachment:
    return Attachment(filename=name, content_type=kind, data=b"x" * size, size=size)


IMAGES = Limits(attachment_types=("image/*",), max_attachment_bytes=1000, max_attachments=4, attachments_private=False)


def test_files_that_fit_pass_and_nothing_passes_too():
    assert IMAGES.refuse_files([_file("a.png", "image/png", 10)], public=True) is None
    assert IMAGES.refuse_files([], public=False) is None


def test_each_rule_names_what_broke_it():
    png = _file("a.png", "image/png", 10)
    assert IMAGES.refuse_files([png], public=False).code == "none", "no files in a private reply here"
    assert (IMAGES.refuse_files([png] * 5, public=True).code, IMAGES.refuse_files([png] * 5, public=True).limit) == (
        "count", 4)
    refused = IMAGES.refuse_files([_file("a.pdf", "application/pdf", 10)], public=True)
    assert (refused.code, refused.filename, refused.content_type) == ("type", "a.pdf", "application/pdf")
    big = IMAGES.refuse_files([_file("big.png", "image/png", 1001)], public=True)
    assert (big.code, big.filename, big.limit, big.size) == ("size", "big.png", 1000, 1001)
    assert IMAGES.refuse_files([Attachment(filename="e.png", content_type="image/png", data=b"")],
                               public=True).code == "empty"


def test_a_narrower_count_or_cap_wins():
    png = _file("a.png", "image/png", 600)
    assert IMAGES.refuse_files([png, png], public=True, most=1).limit == 1, "a DM that takes one image"
    assert IMAGES.refuse_files([png], public=True, cap=500).limit == 500, "the installation's own cap"
    assert IMAGES.refuse_files([png], public=True, cap=5000) is None, "a wider cap does not widen the channel's"
