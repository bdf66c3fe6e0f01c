"""waitress's event loop for `mainland serve`, asking only the connections whose state may have changed.

waitress's own loop (`wasyncore.poll2`) asks every open connection whether it wants to read or to
write, on every turn: a new `select.poll` set each time, two method calls per connection. A turn
comes with each request that arrives and each that ends. With 500 website-chat widgets' long polls
and 50 agents' live streams open, that walk over some 550 connections was about half of the one
server process's busy time (py-spy `--gil` under `bench/chat_load.py`), and every request queued
behind it for the interpreter.

This loop keeps one poll set for the life of the server and asks again only:
- the listening socket and waitress's trigger, on every turn (the listener's `readable()` is where
  waitress applies its connection limit and runs its maintenance: after maintenance, which may mark
  idle connections for closing, every connection is asked again);
- a connection the loop has just handled an event of;
- a connection a request thread has changed (`TrackedChannel`: a request ended or was cancelled,
  output it wrote waits to go out), which then wakes the loop with waitress's trigger, after the
  change, so that the loop sees the new state;
- a connection just opened; a connection closed leaves the set.

Everything else is waitress's own: the same channels, the same handlers (`wasyncore.readwrite`),
the same flags. Used by `inbox/commands/running.py` `create_server` for a single listening socket.
"""

from __future__ import annotations

import collections
import select
from errno import EINTR
from typing import Any

from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer

_READ = select.POLLIN | select.POLLPRI
_WRITE = select.POLLOUT


class TrackedChannel(HTTPChannel):
    """waitress's HTTP channel that tells the loop when a request thread changed what it waits for."""

    def __init__(self, server: Any, sock: Any, addr: Any, adj: Any, map: dict | None = None) -> None:
        super().__init__(server, sock, addr, adj, map=map)
        self.server.loop_changes.append(self._fileno)

    def write_soon(self, data: Any) -> int:
        try:
            return super().write_soon(data)
        finally:
            # Flushed at once (the usual case) changes nothing the loop waits for; output left in
            # the buffer must be polled for writing.
            if self.total_outbufs_len:
                self._changed()

    def service(self) -> None:
        try:
            super().service()
        finally:
            self._changed()  # the request ended: readable again, or closing, or the next one queued

    def cancel(self) -> None:
        super().cancel()
        self._changed()

    def _changed(self) -> None:
        fd = self._fileno
        if fd is not None:
            self.server.loop_changes.append(fd)
            self.server.pull_trigger()


class ChangedOnlyLoop:
    """Stands in for the `wasyncore` module as `server.asyncore`: `run()` calls `loop()`."""

    def __init__(self, server: BaseWSGIServer) -> None:
        self.server = server
        self.pollster = select.poll()
        #: fd -> the flags it is registered with (absent: not registered).
        self.registered: dict[int, int] = {}
        #: Turns taken and connections asked, for tests and measurements.
        self.turns = 0
        self.asked = 0

    def loop(self, timeout: float = 30.0, use_poll: bool = True, map: dict | None = None,
             count: int | None = None) -> None:
        socket_map = self.server._map if map is None else map
        while socket_map and (count is None or count > 0):
            self.turn(timeout, socket_map)
            if count is not None:
                count -= 1

    def turn(self, timeout: float, socket_map: dict) -> None:
        """One turn: ask what changed, wait for the sockets, handle their events."""
        self.turns += 1
        server = self.server
        changes: collections.deque = server.loop_changes
        cleanup_before = server.next_channel_cleanup
        self._ask(server._fileno, socket_map)  # may run maintenance
        if server.next_channel_cleanup != cleanup_before:
            changes.extend(list(socket_map))
        self._ask(server.trigger._fileno, socket_map)
        while changes:
            self._ask(changes.popleft(), socket_map)
        try:
            events = self.pollster.poll(None if timeout is None else int(timeout * 1000))
        except OSError as err:
            if err.args[0] != EINTR:
                raise
            events = []
        for fd, flags in events:
            obj = socket_map.get(fd)
            if obj is None:  # closed without our knowing: it must not wake every turn
                self._forget(fd)
                continue
            wasyncore.readwrite(obj, flags)
            changes.append(fd)

    def _ask(self, fd: int | None, socket_map: dict) -> None:
        if fd is None:
            return
        obj = socket_map.get(fd)
        if obj is None:
            self._forget(fd)
            return
        self.asked += 1
        flags = 0
        if obj.readable():
            flags |= _READ
        # accepting sockets should not be writable (as waitress's poll2)
        if obj.writable() and not obj.accepting:
            flags |= _WRITE
        if not flags:
            self._forget(fd)
        elif self.registered.get(fd) != flags:
            self.pollster.register(fd, flags)
            self.registered[fd] = flags

    def _forget(self, fd: int) -> None:
        if self.registered.pop(fd, None) is not None:
            self.pollster.unregister(fd)


def use_changed_only_loop(server: Any) -> bool:
    """Make a server made by `waitress.create_server` run this loop; False (and waitress's own loop)
    for a server that listens on several sockets."""
    if not isinstance(server, BaseWSGIServer):
        return False
    server.loop_changes = collections.deque()
    server.channel_class = TrackedChannel
    server.asyncore = ChangedOnlyLoop(server)
    return True
