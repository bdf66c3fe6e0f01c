"""The throwaway PostgreSQL cluster (tests/pg_cluster.py) the PostgreSQL engine's tests and benches start.

Real Debian server binaries: the cluster starts as an unprivileged user on a private port of
127.0.0.1, takes writes, and leaves nothing behind (no folder, no open port, no process).
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.pg_cluster import ClusterError, ThrowawayCluster, server_bin_dir
from tests.servers import unavailable

pytestmark = pytest.mark.server


@pytest.fixture
def psycopg():
    try:
        import psycopg
    except ImportError:
        unavailable("psycopg is not installed (scripts/setup.sh --test installs it)")
    if server_bin_dir() is None:
        unavailable("no PostgreSQL 15+ server in /usr/lib/postgresql (scripts/setup.sh --test installs it)")
    return psycopg


def _status(pid: int, field: str) -> str | None:
    """A field of /proc/PID/status; None when the process is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except FileNotFoundError:
        return None
    return next(line.split(":", 1)[1].split()[0] for line in lines if line.startswith(f"{field}:"))


def test_a_cluster_takes_writes_as_an_unprivileged_user_on_its_own_port_and_leaves_nothing(psycopg):
    cluster = ThrowawayCluster()
    with cluster as url:
        assert url == f"postgresql://postgres@127.0.0.1:{cluster.port}/postgres"
        folder = cluster.folder
        with psycopg.connect(url, autocommit=True) as conn:
            version, address = conn.execute(
                "SELECT current_setting('server_version_num')::int, host(inet_server_addr())").fetchone()
            assert version >= 150000 and address == "127.0.0.1"
            conn.execute("CREATE TABLE notes (id bigserial PRIMARY KEY, text text NOT NULL)")
            conn.execute("INSERT INTO notes (text) VALUES (%s), (%s)", ("één", "two"))
            assert conn.execute("SELECT text FROM notes ORDER BY id").fetchall() == [("één",), ("two",)]
            # Throwaway: fsync off (the benches ask for a durable one).
            assert conn.execute("SHOW fsync").fetchone() == ("off",)
        server_pid = int((cluster.data / "postmaster.pid").read_text().split()[0])
        assert int(_status(server_pid, "Uid")) != 0  # PostgreSQL refuses root; CI runs as root
    assert not folder.exists()
    assert _status(server_pid, "State") in (None, "Z")  # gone (a zombie until its new parent reaps it)
    port = int(url.split(":")[-1].split("/")[0])
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def test_two_clusters_run_side_by_side_and_a_durable_one_syncs(psycopg):
    with ThrowawayCluster() as first, ThrowawayCluster(durable=True) as second:
        assert first != second
        with psycopg.connect(first) as a, psycopg.connect(second) as b:
            a.execute("CREATE TABLE only_here (x int)")
            assert b.execute("SELECT to_regclass('only_here')").fetchone() == (None,)
            assert b.execute("SHOW fsync").fetchone() == ("on",)


def test_a_missing_server_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("MAINLAND_PG_BIN", str(tmp_path))
    with pytest.raises(ClusterError, match="install Debian's 'postgresql' package"):
        ThrowawayCluster()
