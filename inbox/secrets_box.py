"""Sealing the secret settings an admin types in the browser (a channel's token, an SMTP password).

They are stored encrypted, as `{"$encrypted": "<Fernet token>"}`, with a key from the environment
(`MAINLAND_SECRETS_KEY`, any long random text) or, when that is not set, from a key file made beside
the data (`data_dir/secrets_key`, mode 0600), so a copy of the database alone reveals no secret.
Fernet (from `cryptography`, already used for single sign-on) is authenticated encryption: a value
changed in the database, or a changed key, fails to open instead of giving garbage. An admin may
instead name an environment variable (`$env:NAME`), kept as the `{"$env": NAME}` reference the YAML
file uses.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

ENV_KEY = "MAINLAND_SECRETS_KEY"
_ENV_REFERENCE = re.compile(r"^\$env:([A-Za-z_][A-Za-z0-9_]{0,127})$")


class SecretError(Exception):
    """A sealed value cannot be opened (the key changed or the value was altered)."""


def _fernet(material: bytes) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"mainland stored settings").derive(material)
    return Fernet(base64.urlsafe_b64encode(key))


class SecretBox:
    """Seals and opens secret settings with the installation's key."""

    def __init__(self, data_dir: Path, environ: dict[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        self.from_environment = bool(environ.get(ENV_KEY))
        if self.from_environment:
            material = environ[ENV_KEY].encode()
        else:
            material = _key_file(data_dir)
        self._fernet = _fernet(material)

    def seal(self, text: str) -> dict[str, str]:
        """What to store for the secret `text`: an `$env` reference stays one, anything else is encrypted."""
        match = _ENV_REFERENCE.match(text.strip())
        if match:
            return {"$env": match.group(1)}
        return {"$encrypted": self._fernet.encrypt(text.encode()).decode()}

    def open(self, value: Any) -> Any:
        """The clear value of a stored setting (non-secret values come back as they are)."""
        if isinstance(value, dict) and set(value) == {"$encrypted"}:
            try:
                return self._fernet.decrypt(str(value["$encrypted"]).encode()).decode()
            except InvalidToken:
                raise SecretError("cannot be decrypted: the secrets key changed (MAINLAND_SECRETS_KEY or "
                                  "data_dir/secrets_key); enter the secret again") from None
        if isinstance(value, dict) and set(value) == {"$env"}:
            name = str(value["$env"])
            if name not in os.environ:
                raise SecretError(f"environment variable {name} is not set")
            return os.environ[name]
        return value


def is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and set(value) in ({"$encrypted"}, {"$env"})


def describe(value: Any) -> str:
    """How a stored secret is shown: never its value."""
    if isinstance(value, dict) and set(value) == {"$env"}:
        return f"$env:{value['$env']}"
    return "••••••••" if value else ""


def _key_file(data_dir: Path) -> bytes:
    path = data_dir / "secrets_key"
    if path.exists():
        return path.read_bytes().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key
