"""Reading `multipart/form-data` request bodies in the imitations (media uploads).

The standard library's `email` parser does the work: the body is parsed as a MIME message whose
Content-Type is the request's, and each part becomes a `FormPart` (field name, file name, the
part's Content-Type and its bytes).
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass


@dataclass(frozen=True)
class FormPart:
    name: str
    data: bytes
    filename: str | None = None
    content_type: str | None = None

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


def parse_form(content_type: str, body: bytes) -> dict[str, list[FormPart]]:
    """The parts of a multipart body by field name (a name may repeat); {} when it is not multipart."""
    if not content_type.lower().startswith("multipart/form-data"):
        return {}
    message = email.message_from_bytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body,
                                       policy=email.policy.HTTP)
    if not message.is_multipart():
        return {}
    parts: dict[str, list[FormPart]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        declared = part.get("Content-Type")
        parts.setdefault(str(name), []).append(FormPart(
            name=str(name), data=part.get_payload(decode=True) or b"", filename=part.get_filename(),
            content_type=part.get_content_type() if declared else None))
    return parts
