"""Real mail servers and a network guard for Mainland's tests (a pytest plugin).

Loaded from tests/conftest.py with ``pytest_plugins = ["tests.servers", ...]``.

Fixtures:

* ``dovecot_server`` (session): a private Dovecot IMAP server on 127.0.0.1.
* ``imap_account`` (function): a fresh, uniquely named user on that server, so
  every test starts with an empty INBOX and its own UIDVALIDITY.
* ``dovecot`` (function): the same as ``imap_account``; the name used in
  shared/recipes.md.
* ``smtp_server`` (function): an aiosmtpd sink that records what it receives
  and can be told to refuse the next messages (``fail_next``).
* ``no_network`` (function, not autouse): any connection or name lookup that
  leaves the loopback interface raises ``NetworkBlocked`` and fails the test.

Helpers: ``imap_connect``, ``imap_append``, ``imap_append_many``,
``imap_status``, ``set_uidvalidity``, ``add_imap_user``.

When Dovecot is missing the IMAP fixtures skip with a message, except under
CI (``CI`` set and not false/0), where they fail: CI must never quietly skip
the IMAP tests. ``scripts/setup.sh --test`` installs Dovecot.
"""

from __future__ import annotations

import grp
import imaplib
import ipaddress
import itertools
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

__all__ = [
    "DovecotServer",
    "NetworkBlocked",
    "NetworkGuard",
    "SmtpMessage",
    "SmtpSink",
    "add_imap_user",
    "dovecot",
    "dovecot_server",
    "imap_account",
    "imap_append",
    "imap_append_many",
    "imap_connect",
    "imap_status",
    "in_ci",
    "no_network",
    "set_uidvalidity",
    "smtp_server",
    "unavailable",
]

LOOPBACK = "127.0.0.1"


def in_ci() -> bool:
    """True when running under CI (the ``CI`` variable set to anything but false/0)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(reason: str) -> None:
    """Skip the test on a developer machine, fail it under CI."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (for servers that cannot bind port 0)."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------
# Dovecot
# --------------------------------------------------------------------------

# Choices that differ from shared/recipes.md, and why:
# * One passwd-file per user ({d}/users/%u) instead of one shared file. Dovecot
#   re-reads a passwd-file when its mtime or size changes, but checks at most
#   once per second, so a user appended within the same second as the previous
#   login is not found (seen: AUTHENTICATIONFAILED). A path with %u is a new
#   file to Dovecot, read on first use, so new users work at once.
# * The anvil auth penalty is off and auth_failure_delay is 0: otherwise every
#   failed login (a test of a wrong password) delays the next logins from
#   127.0.0.1 by 2, 4, 8, up to 15 s. A login as an unknown user still takes ~1 s.
# * mail_fsync = never: test mail need not survive a power cut, and bulk
#   APPENDs of the corpus are faster.
_DOVECOT_CONF = """\
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
auth_failure_delay = 0
mail_fsync = never
default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
mail_location = maildir:{d}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users/%u
}}
userdb {{
  driver = static
  args = uid={mail_user} gid={mail_group} home={d}/home/%u
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
{anvil_extra}}}
service imap-login {{
  inet_listener imap {{
    port = {port}
  }}
{login_extra}}}
"""

# Dovecot builds socket paths under base_dir; past about 80 characters they
# exceed sun_path ("File name too long").
_MAX_BASE_DIR = 80
_USER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _find_binary(name: str) -> str | None:
    # /usr/sbin is often missing from a non-root PATH.
    return shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
    )


class DovecotServer:
    """A private Dovecot on 127.0.0.1 with its state in a short /tmp directory.

    Usable outside pytest too (bench scripts): ``with DovecotServer() as srv:``.
    ``info()`` gives the dict the fixtures yield; ``add_user()`` makes accounts.
    """

    def __init__(self) -> None:
        self.dir: Path | None = None
        self.port: int | None = None
        self.conf: Path | None = None
        self.proc: subprocess.Popen | None = None
        self._names = itertools.count(1)
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------
    def start(self, timeout: float = 10.0) -> DovecotServer:
        binary = _find_binary("dovecot")
        if binary is None:
            raise FileNotFoundError("dovecot is not installed (Debian: apt-get install dovecot-imapd)")
        # Not pytest's tmp_path: /tmp/pytest-of-root is 0700, and Dovecot's mail
        # processes (uid nobody) need +x on every parent directory.
        self.dir = Path(tempfile.mkdtemp(prefix="mlnd-imap-", dir="/tmp"))
        if len(str(self.dir / "run")) + 25 > _MAX_BASE_DIR:
            raise RuntimeError(f"Dovecot base_dir would be too long: {self.dir}/run")
        os.chmod(self.dir, 0o711)
        users = self.dir / "users"
        users.mkdir()
        users.chmod(0o755)

        if os.geteuid() == 0:
            # Dovecot refuses to keep mail as root and to run imap-login as root.
            mail_user, mail_group = "nobody", "nogroup"
            nobody = pwd.getpwnam(mail_user)
            for sub in ("mail", "home"):
                (self.dir / sub).mkdir()
                os.chown(self.dir / sub, nobody.pw_uid, nobody.pw_gid)
            settings = {
                "internal_user": "dovecot",
                "internal_group": "dovecot",
                "login_user": "dovenull",
                "mail_user": mail_user,
                "mail_group": mail_group,
                "anvil_extra": "",
                "login_extra": "",
            }
        else:
            # Everything as the current user: chroot needs root, so turn it off.
            me = pwd.getpwuid(os.geteuid()).pw_name
            group = grp.getgrgid(os.getegid()).gr_name
            for sub in ("mail", "home"):
                (self.dir / sub).mkdir()
            settings = {
                "internal_user": me,
                "internal_group": group,
                "login_user": me,
                "mail_user": me,
                "mail_group": group,
                "anvil_extra": "  chroot =\n",
                "login_extra": "  chroot =\n",
            }

        self.conf = self.dir / "dovecot.conf"
        last_error = ""
        # The free port may be taken between our probe and Dovecot's bind; then
        # the master exits within a second and we try another port.
        for _attempt in range(3):
            self.port = free_port()
            self.conf.write_text(_DOVECOT_CONF.format(d=self.dir, port=self.port, **settings))
            self.proc = subprocess.Popen(
                [binary, "-F", "-c", str(self.conf)],
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # so a stuck server can be killed as a group
            )
            last_error = self._wait_for_greeting(timeout)
            if not last_error:
                self.add_user("testuser", "secret")
                return self
            self._kill()
        self._cleanup_dir()
        raise RuntimeError(f"Dovecot did not start: {last_error}")

    def _wait_for_greeting(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                return f"exited with {self.proc.returncode}; log:\n{self.log_tail()}"
            try:
                with socket.create_connection((LOOPBACK, self.port), 1) as s:
                    if s.recv(64).startswith(b"* OK"):
                        return ""
            except OSError:
                pass
            if time.monotonic() > deadline:
                return f"no '* OK' greeting within {timeout} s; log:\n{self.log_tail()}"
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop the server and remove its directory (mail included)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # the master stops its children on SIGTERM (about 1 s)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self._kill()
        self._cleanup_dir()

    def _kill(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)

    def _cleanup_dir(self) -> None:
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> DovecotServer:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- state -------------------------------------------------------------
    def log_tail(self, chars: int = 4000) -> str:
        try:
            return (self.dir / "dovecot.log").read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"the test Dovecot is not running; log:\n{self.log_tail()}")

    def info(self, user: str = "testuser", password: str = "secret") -> dict[str, Any]:
        return {
            "host": LOOPBACK,
            "port": self.port,
            "user": user,
            "password": password,
            "conf": str(self.conf),
            "dir": str(self.dir),
            "maildir": str(self.dir / "mail" / user),
            "log": str(self.dir / "dovecot.log"),
            "server": self,
        }

    def add_user(self, user: str | None = None, password: str | None = None, hint: str = "") -> dict[str, Any]:
        """Create an account and return its dict; a name is made up when none is given."""
        self.check_alive()
        with self._lock:
            if user is None:
                stem = re.sub(r"[^a-z0-9]+", "-", hint.lower()).strip("-")[:24] or "user"
                user = f"u{next(self._names)}-{stem}"
            if not _USER_RE.match(user):
                raise ValueError(f"unsupported IMAP test user name: {user!r}")
            if password is None:
                password = f"pw-{user}"
            if ":" in password or "\n" in password:
                raise ValueError("passwd-file passwords cannot contain ':' or newlines")
            path = self.dir / "users" / user
            if path.exists():
                raise ValueError(f"IMAP test user {user!r} exists already")
            # Written whole and renamed: the auth process may read it at any moment.
            tmp = path.with_name(f".{user}.tmp")
            tmp.write_text(f"{user}:{{PLAIN}}{password}\n")
            tmp.chmod(0o644)  # read by the auth process, which runs as `dovecot`
            tmp.replace(path)
        return self.info(user, password)

    def remove_user(self, user: str) -> None:
        (self.dir / "users" / user).unlink(missing_ok=True)
        shutil.rmtree(self.dir / "mail" / user, ignore_errors=True)
        shutil.rmtree(self.dir / "home" / user, ignore_errors=True)


def add_imap_user(server: dict[str, Any], user: str | None = None, password: str | None = None) -> dict[str, Any]:
    """Another account on ``dovecot_server`` (e.g. a second mailbox owner in one test)."""
    return server["server"].add_user(user, password)


@pytest.fixture(scope="session")
def dovecot_server() -> Iterator[dict[str, Any]]:
    """The session's Dovecot: host, port, user/password of a shared ``testuser``, conf, dir."""
    if _find_binary("dovecot") is None:
        unavailable("Dovecot is not installed; run scripts/setup.sh --test (apt-get install dovecot-imapd)")
    server = DovecotServer().start()
    try:
        yield server.info()
    finally:
        server.stop()


@pytest.fixture
def imap_account(dovecot_server: dict[str, Any], request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """A fresh account for this test only: host, port, user, password, conf, maildir."""
    server: DovecotServer = dovecot_server["server"]
    account = server.add_user(hint=request.node.name)
    yield account
    server.remove_user(account["user"])


@pytest.fixture
def dovecot(imap_account: dict[str, Any]) -> dict[str, Any]:
    """Alias of ``imap_account`` under the name used in shared/recipes.md."""
    return imap_account


def _quote_mailbox(name: str) -> str:
    # imaplib sends arguments as they are; a name with a space must be quoted.
    if name.startswith('"'):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def imap_connect(account: dict[str, Any]) -> imaplib.IMAP4:
    """A logged-in imaplib connection to the account (the caller logs out)."""
    conn = imaplib.IMAP4(account["host"], account["port"], timeout=30)
    conn.login(account["user"], account["password"])
    return conn


def _ensure_mailbox(conn: imaplib.IMAP4, mailbox: str) -> None:
    if mailbox.upper() != "INBOX":
        conn.create(_quote_mailbox(mailbox))  # NO when it exists: fine


_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]")


def _append(conn: imaplib.IMAP4, mailbox: str, raw: bytes, flags: Iterable[str], date_time: Any) -> int:
    flag_list = "(" + " ".join(flags) + ")" if flags else None
    when = imaplib.Time2Internaldate(date_time) if date_time is not None else None
    typ, data = conn.append(_quote_mailbox(mailbox), flag_list, when, raw)
    match = _APPENDUID.search(data[0] or b"") if typ == "OK" else None
    if match is None:
        raise RuntimeError(f"APPEND to {mailbox} failed: {typ} {data!r}")
    return int(match.group(2))


def imap_append(
    account: dict[str, Any],
    raw_bytes: bytes,
    mailbox: str = "INBOX",
    flags: Iterable[str] = (),
    date_time: Any = None,
) -> int:
    """APPEND one raw message; returns its UID. Other mailboxes are created as needed.

    imaplib turns bare LF into CRLF on the way, so the server stores CRLF lines.
    """
    return imap_append_many(account, [raw_bytes], mailbox, flags, date_time)[0]


def imap_append_many(
    account: dict[str, Any],
    messages: Iterable[bytes],
    mailbox: str = "INBOX",
    flags: Iterable[str] = (),
    date_time: Any = None,
) -> list[int]:
    """APPEND many raw messages over one connection; returns their UIDs in order."""
    flags = tuple(flags)
    conn = imap_connect(account)
    try:
        _ensure_mailbox(conn, mailbox)
        return [_append(conn, mailbox, raw, flags, date_time) for raw in messages]
    finally:
        conn.logout()


def imap_status(account: dict[str, Any], mailbox: str = "INBOX") -> dict[str, int]:
    """MESSAGES, UIDNEXT, UIDVALIDITY and UNSEEN of a mailbox, without selecting it."""
    conn = imap_connect(account)
    try:
        typ, data = conn.status(_quote_mailbox(mailbox), "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN)")
    finally:
        conn.logout()
    if typ != "OK":
        raise RuntimeError(f"STATUS {mailbox} failed: {data!r}")
    inner = data[0].decode().rsplit("(", 1)[1].rstrip(")")
    words = inner.split()
    return {words[i]: int(words[i + 1]) for i in range(0, len(words), 2)}


def set_uidvalidity(account: dict[str, Any], value: int, mailbox: str = "INBOX") -> None:
    """Give a mailbox a new UIDVALIDITY, keeping its messages and UIDs (as after a server restore).

    A client that has the mailbox selected at that moment is disconnected by
    Dovecot ("please relogin"), as a real server would.
    """
    doveadm = _find_binary("doveadm")
    if doveadm is None:
        raise FileNotFoundError("doveadm is not installed (Debian package dovecot-core)")
    if mailbox.upper() == "INBOX":
        # A user that never logged in has no INBOX yet, and doveadm would fail.
        imap_status(account, mailbox)
    result = subprocess.run(
        [doveadm, "-c", account["conf"], "mailbox", "update", "-u", account["user"],
         "--uid-validity", str(value), mailbox],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise RuntimeError(f"doveadm mailbox update failed ({result.returncode}): {result.stderr.strip()}")


# --------------------------------------------------------------------------
# SMTP
# --------------------------------------------------------------------------


class SmtpMessage(NamedTuple):
    """One accepted message: the envelope and the raw DATA bytes."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes


class SmtpRejection(NamedTuple):
    """A command refused because of ``fail_next``."""

    stage: str
    code: int
    mail_from: str | None
    rcpt_tos: list[str]


class SmtpSink:
    """An aiosmtpd server on 127.0.0.1 that records messages and fails on request.

    ``messages`` holds SmtpMessage tuples (mail_from, rcpt_tos, content) in
    arrival order. ``fail_next(451, "4.7.1 greylisted")`` makes the next
    message(s) be refused with that reply, at DATA by default (smtplib raises
    SMTPDataError), or at "MAIL" (SMTPSenderRefused) or "RCPT"
    (SMTPRecipientsRefused when every recipient is refused).

    ``SmtpSink(auth=("user", "password"))`` requires AUTH PLAIN/LOGIN with those
    credentials (no TLS); use it as ``with SmtpSink(auth=...) as sink:``.
    """

    STAGES = ("MAIL", "RCPT", "DATA")

    def __init__(self, auth: tuple[str, str] | None = None) -> None:
        self.host = LOOPBACK
        self.port: int | None = None
        self.messages: list[SmtpMessage] = []
        self.rejections: list[SmtpRejection] = []
        self._failures: deque[tuple[str, int, str]] = deque()
        self._cond = threading.Condition()
        self._auth = auth
        self._controller = None

    def start(self) -> SmtpSink:
        from aiosmtpd.controller import Controller

        kwargs: dict[str, Any] = {"enable_SMTPUTF8": True}
        if self._auth is not None:
            # Plain-text AUTH on loopback: the sink has no certificate. A sender
            # that skips AUTH is refused in handle_MAIL rather than through
            # aiosmtpd's auth_required, which warns on every connection without TLS.
            kwargs.update(authenticator=self._authenticate, auth_require_tls=False)
        # Controller cannot use port 0: its readiness check connects to the port.
        self.port = free_port()
        self._controller = Controller(self, hostname=self.host, port=self.port, **kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test controls -----------------------------------------------------
    def fail_next(self, code: int = 451, message: str = "4.7.1 Try again later", *,
                  count: int = 1, stage: str = "DATA") -> None:
        """Answer ``code message`` instead of accepting, for the next ``count`` messages."""
        stage = stage.upper()
        if stage not in self.STAGES:
            raise ValueError(f"stage must be one of {self.STAGES}")
        if not 400 <= code <= 599:
            raise ValueError("fail_next takes a 4xx (temporary) or 5xx (permanent) code")
        with self._cond:
            self._failures.extend([(stage, code, message)] * count)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[SmtpMessage]:
        """Block until at least ``count`` messages have arrived (for senders in other threads)."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.messages) >= count, timeout):
                raise TimeoutError(f"expected {count} SMTP messages, got {len(self.messages)} in {timeout} s")
            return list(self.messages)

    def reset(self) -> None:
        with self._cond:
            self.messages.clear()
            self.rejections.clear()
            self._failures.clear()

    # -- aiosmtpd hooks ----------------------------------------------------
    def _take_failure(self, stage: str, envelope: Any) -> str | None:
        with self._cond:
            if self._failures and self._failures[0][0] == stage:
                _, code, message = self._failures.popleft()
                self.rejections.append(SmtpRejection(stage, code, envelope.mail_from, list(envelope.rcpt_tos)))
                return f"{code} {message}"
        return None

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # noqa: N802
        if self._auth is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        refusal = self._take_failure("MAIL", envelope)
        if refusal:
            return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        refusal = self._take_failure("RCPT", envelope)
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        refusal = self._take_failure("DATA", envelope)
        if refusal:
            return refusal
        with self._cond:
            self.messages.append(SmtpMessage(envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
            self._cond.notify_all()
        return "250 OK: queued"

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult, LoginPassword

        ok = (
            isinstance(auth_data, LoginPassword)
            and (auth_data.login.decode(), auth_data.password.decode()) == self._auth
        )
        return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp_server() -> Iterator[SmtpSink]:
    """An SMTP sink for this test: host, port, messages, rejections, fail_next(), wait_for()."""
    sink = SmtpSink().start()
    try:
        yield sink
    finally:
        sink.stop()


# --------------------------------------------------------------------------
# Network guard
# --------------------------------------------------------------------------


class NetworkBlocked(RuntimeError):
    """Raised for a connection or name lookup that would leave the machine.

    Not an OSError on purpose: code that handles network errors gracefully
    would otherwise hide the attempt.
    """


# The machine's own name is local too: smtplib, logging and others look it up.
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", socket.gethostname().lower()}


def _is_local(host: Any) -> bool:
    if host is None:
        return True  # getaddrinfo(None, port): the local wildcard/loopback address
    if isinstance(host, bytes):
        host = host.decode("idna", "replace")
    host = str(host).strip("[]").split("%", 1)[0]
    if host.lower() in _LOCAL_NAMES:
        return True
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


class NetworkGuard:
    """What ``no_network`` yields: ``attempts`` lists every blocked destination."""

    def __init__(self) -> None:
        self.attempts: list[str] = []

    def _block(self, what: str) -> None:
        self.attempts.append(what)
        raise NetworkBlocked(f"network access blocked in this test: {what}")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[NetworkGuard]:
    """Forbid connections and name lookups beyond loopback for this test.

    Use it in tests that prove parsing or rendering fetches nothing (remote
    images, tracking pixels, DNS). An attempt raises NetworkBlocked and, even
    if the code under test swallows that, fails the test at teardown.
    """
    guard = NetworkGuard()
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo
    real_gethostbyname = socket.gethostbyname
    real_gethostbyname_ex = socket.gethostbyname_ex

    def check_address(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
            guard._block(f"connect to {address!r}")

    def connect(self, address):
        check_address(self, address)
        return real_connect(self, address)

    def connect_ex(self, address):
        check_address(self, address)
        return real_connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if not _is_local(host):
            guard._block(f"name lookup of {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    def gethostbyname(host):
        if not _is_local(host):
            guard._block(f"name lookup of {host!r}")
        return real_gethostbyname(host)

    def gethostbyname_ex(host):
        if not _is_local(host):
            guard._block(f"name lookup of {host!r}")
        return real_gethostbyname_ex(host)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket, "gethostbyname", gethostbyname)
    monkeypatch.setattr(socket, "gethostbyname_ex", gethostbyname_ex)
    yield guard
    if guard.attempts:
        pytest.fail("the test tried to use the network: " + "; ".join(guard.attempts), pytrace=False)

