"""A throwaway PostgreSQL cluster for the tests and the benches (#17).

Debian's server package (`/usr/lib/postgresql/<major>/bin`, 15 or newer; `MAINLAND_PG_BIN` names
another folder) runs a cluster of its own: a fresh data folder under the system's temporary folder,
its own port on 127.0.0.1 (and its socket in the data folder, not /var/run/postgresql), trust
sign-in for the `postgres` role, and, when the caller is root (as in CI), an unprivileged user
(`nobody`), because PostgreSQL refuses to run as root. Stopping it removes the folder.

`durable=False` (the default, for tests) turns off fsync and full-page writes: a cluster thrown
away at the end has nothing to keep after a crash. The benches compare it with SQLite at
`synchronous=FULL` and ask for `durable=True`.

    with ThrowawayCluster() as url:          # postgresql://postgres@127.0.0.1:PORT/postgres
        ...

`python -m tests.pg_cluster` starts one, prints its URL and keeps it until Ctrl+C.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest

#: The oldest PostgreSQL Mainland supports.
MIN_MAJOR = 15
#: The unprivileged user the cluster runs as when the caller is root.
UNPRIVILEGED_USER = "nobody"


class ClusterError(RuntimeError):
    """The cluster could not be made or started; the message says what to do."""


def server_bin_dir(min_major: int = MIN_MAJOR) -> Path | None:
    """Where initdb, pg_ctl and postgres are: `MAINLAND_PG_BIN`, else the newest Debian server
    package of `min_major` or later; None when there is none."""
    named = os.environ.get("MAINLAND_PG_BIN")
    if named:
        return Path(named) if (Path(named) / "initdb").is_file() else None
    found = []
    for initdb in Path("/usr/lib/postgresql").glob("*/bin/initdb"):
        major = initdb.parent.parent.name
        if re.fullmatch(r"\d+", major) and int(major) >= min_major:
            found.append((int(major), initdb.parent))
    return max(found)[1] if found else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ThrowawayCluster:
    """One PostgreSQL cluster, started by `start()` (or `with`), removed by `stop()`."""

    def __init__(self, *, durable: bool = False, bin_dir: Path | None = None, settings: tuple[str, ...] = ()) -> None:
        self.bin_dir = bin_dir or server_bin_dir()
        if self.bin_dir is None:
            raise ClusterError(f"no PostgreSQL {MIN_MAJOR}+ server found in /usr/lib/postgresql: install Debian's "
                               "'postgresql' package (scripts/setup.sh --test does) or set MAINLAND_PG_BIN")
        self.durable = durable
        #: More server settings, "name=value" each (a bench's `shared_preload_libraries=pg_stat_statements`).
        self.settings = settings
        self.folder: Path | None = None
        self.port: int | None = None
        self._user = pwd.getpwnam(UNPRIVILEGED_USER) if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        if self.port is None:
            raise ClusterError("the cluster is not started")
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def data(self) -> Path:
        assert self.folder is not None
        return self.folder / "data"

    def _run(self, *args: str) -> None:
        as_user = {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []} if self._user else {}
        done = subprocess.run([str(self.bin_dir / args[0]), *args[1:]], capture_output=True, text=True,
                              env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"},
                              cwd=self.folder, **as_user)
        if done.returncode != 0:
            log = self.folder / "server.log" if self.folder else None
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise ClusterError(f"{args[0]} failed ({done.returncode}): {done.stderr.strip()}\n{tail}".strip())

    def start(self) -> str:
        """Make and start the cluster; its URL."""
        self.folder = Path(tempfile.mkdtemp(prefix="mainland-pg-"))
        if self._user:
            os.chown(self.folder, self._user.pw_uid, self._user.pw_gid)
        try:
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
                      "--locale=C.UTF-8", "--no-sync")
            settings = ["-c listen_addresses=127.0.0.1", f"-c unix_socket_directories={self.data}"]
            if not self.durable:
                settings += ["-c fsync=off", "-c full_page_writes=off", "-c synchronous_commit=off"]
            settings += [f"-c {setting}" for setting in self.settings]
            # The port is free when looked at; another process may take it before the server binds
            # it, so a start that fails to bind tries a new one.
            for attempt in range(3):
                self.port = _free_port()
                try:
                    self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "server.log"), "-w",
                              "-t", "60", "-o", " ".join([*settings, f"-c port={self.port}"]), "start")
                    break
                except ClusterError:
                    if attempt == 2:
                        raise
        except BaseException:
            self.port = None
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None
            raise
        return self.url

    def stop(self) -> None:
        """Stop the server at once (its data is thrown away) and remove the folder."""
        if self.folder is None:
            return
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder, self.port = None, None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()


def database_url(cluster_url: str, name: str) -> str:
    """The URL of database `name` on the cluster at `cluster_url`."""
    return cluster_url.rsplit("/", 1)[0] + f"/{name}"


def create_database(cluster_url: str, *, template: str | None = None) -> str:
    """A new database on the cluster (a copy of `template` when given, which must have no open
    connection); its URL. PostgreSQL copies a template's files, far quicker than migrating anew."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(cluster_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
    return database_url(cluster_url, name)


def drop_database(url: str) -> None:
    """Drop the database at `url`, closing what is still connected to it."""
    import psycopg

    cluster_url, name = url.rsplit("/", 1)
    with psycopg.connect(f"{cluster_url}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A throwaway cluster for one test module; its URL. Skipped on a machine without the server or
    psycopg, failed under CI (tests/servers.py). A plugin of the tests (tests/conftest.py): any test may ask for it."""
    from tests.servers import unavailable

    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("psycopg is not installed (scripts/setup.sh --test installs it)")
    if server_bin_dir() is None:
        unavailable("no PostgreSQL 15+ server in /usr/lib/postgresql (scripts/setup.sh --test installs it)")
    with ThrowawayCluster() as url:
        yield url


def main() -> None:
    with ThrowawayCluster(durable="--durable" in sys.argv[1:]) as url:
        print(url, flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()
