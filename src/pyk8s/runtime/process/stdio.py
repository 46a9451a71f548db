"""The supervisor's end of a container's standard streams, shared by both shims: the attach
socket, the container's stdin and its terminal (conmon's attach socket, containerd's
``ContainerIO``).

Every started container has ``attach.sock`` (mode 0600) in its state directory, served by its
supervisor for as long as the container runs: what the container writes is copied to each
connected client as it comes (besides the log), and what a client sends as stdin is written
to the container's stdin. The container's stdin (a pipe, or the terminal) is owned by the
supervisor, so it survives kubelet restarts like the container does.

The wire, both ways a sequence of frames ``[kind: 1 byte][length: 4 bytes, big-endian]
[payload]``:

- client → supervisor: :data:`HELLO` first (payload ``b"\\x01"``: this session attaches
  stdin), then :data:`STDIN` data, :data:`STDIN_CLOSE` (this session's stdin ended),
  :data:`RESIZE` (``>HH`` width, height; a terminal only);
- supervisor → client: :data:`STDOUT` and :data:`STDERR` data. The end of the connection
  is the end of the container (its output drained) or of the supervisor.

Semantics as containerd's: a session's stdin counts only if the container was created with
``stdin``; with ``stdin_once`` (and no terminal) the container's stdin is closed -- EOF --
when the first session that attached stdin ends it (or disconnects), and stays closed;
otherwise sessions come and go and the stdin stays open. A client that falls more than
:data:`MAX_CLIENT_BACKLOG` behind the container's output is disconnected rather than
slowing the container down.

No asyncio here: this runs in the supervisor's ``selectors`` loop (see ``shim._pump``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import selectors
import socket
import struct
import termios
import time
from pathlib import Path

ATTACH_SOCKET = "attach.sock"
FRAME = struct.Struct(">BI")
HELLO, STDIN, STDOUT, STDERR, STDIN_CLOSE, RESIZE = ord("A"), 0, 1, 2, 3, 4
STREAMS = {"stdout": STDOUT, "stderr": STDERR}
MAX_CLIENT_BACKLOG = 8 * 1024 * 1024
MAX_STDIN_BACKLOG = 1024 * 1024
MAX_FRAME = 1024 * 1024


def frame(kind: int, payload: bytes = b"") -> bytes:
    return FRAME.pack(kind, len(payload)) + payload


def socket_path(dir_fd: int) -> str:
    """A path to ``attach.sock`` in the directory open as ``dir_fd`` that fits in
    ``sun_path`` (108 bytes) however deep the state directory is."""
    return f"/proc/self/fd/{dir_fd}/{ATTACH_SOCKET}"


def set_window_size(fd: int, width: int, height: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


class _Client:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbox = bytearray()
        self.outbox = bytearray()
        self.stdin = False
        self.stdin_ended = False
        self.closed = False
        self.registered = False


class AttachServer:
    """The attach socket of one container. ``stdin``: the supervisor's write end of the
    container's stdin (None: the container has none); ``terminal``: the terminal's master
    (resizes go there). Register with :meth:`register`, feed output with :meth:`output`,
    end with :meth:`finish` once the container has exited."""

    def __init__(self, directory: Path, *, stdin: int | None, stdin_once: bool,
                 terminal: int | None) -> None:
        self._stdin = stdin
        self._stdin_once = stdin_once and terminal is None
        self._terminal = terminal
        self._pending_stdin = bytearray()
        self._close_stdin_when_written = False
        self._clients: list[_Client] = []
        self._sel: selectors.BaseSelector | None = None
        self._paused = False
        if stdin is not None:
            os.set_blocking(stdin, False)
        self.path = directory / ATTACH_SOCKET
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        dir_fd = os.open(directory, os.O_PATH | os.O_DIRECTORY)
        old_umask = os.umask(0o177)
        try:
            self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._listener.bind(socket_path(dir_fd))
        finally:
            os.umask(old_umask)
            os.close(dir_fd)
        self._listener.listen(16)
        self._listener.setblocking(False)

    def register(self, sel: selectors.BaseSelector) -> None:
        self._sel = sel
        sel.register(self._listener, selectors.EVENT_READ, self._accept)

    # ---- clients --------------------------------------------------------------------------

    def _accept(self, mask: int) -> None:
        try:
            sock, _ = self._listener.accept()
        except OSError:
            return
        sock.setblocking(False)
        client = _Client(sock)
        self._clients.append(client)
        self._update(client)

    def _update(self, client: _Client) -> None:
        """(Re)register the client for what it waits for: its input unless paused, writing
        while it has a backlog."""
        if client.closed or self._sel is None:
            return
        events = 0 if self._paused else selectors.EVENT_READ
        if client.outbox:
            events |= selectors.EVENT_WRITE
        handler = lambda mask: self._client_event(client, mask)  # noqa: E731
        if events and client.registered:
            self._sel.modify(client.sock, events, handler)
        elif events:
            self._sel.register(client.sock, events, handler)
        elif client.registered:
            self._sel.unregister(client.sock)
        client.registered = bool(events)

    def _client_event(self, client: _Client, mask: int) -> None:
        if client.closed:
            return
        if mask & selectors.EVENT_WRITE:
            self._flush(client)
        if client.closed or not mask & selectors.EVENT_READ or self._paused:
            return
        try:
            data = client.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop(client)
            return
        client.inbox += data
        while len(client.inbox) >= FRAME.size:
            kind, length = FRAME.unpack_from(client.inbox)
            if length > MAX_FRAME:
                self._drop(client)
                return
            if len(client.inbox) < FRAME.size + length:
                break
            payload = bytes(client.inbox[FRAME.size:FRAME.size + length])
            del client.inbox[:FRAME.size + length]
            self._frame(client, kind, payload)

    def _frame(self, client: _Client, kind: int, payload: bytes) -> None:
        if kind == HELLO:
            client.stdin = payload[:1] == b"\x01" and self._stdin is not None
        elif kind == STDIN and client.stdin and not client.stdin_ended:
            self._write_stdin(payload)
        elif kind == STDIN_CLOSE and client.stdin:
            self._end_session_stdin(client)
        elif kind == RESIZE and self._terminal is not None and len(payload) == 4:
            width, height = struct.unpack(">HH", payload)
            set_window_size(self._terminal, width, height)

    def _end_session_stdin(self, client: _Client) -> None:
        if client.stdin_ended:
            return
        client.stdin_ended = True
        if self._stdin_once:
            self._close_stdin_when_written = True
            self._stdin_progress()

    def _drop(self, client: _Client) -> None:
        if client.closed:
            return
        if client.stdin:
            self._end_session_stdin(client)
        client.closed = True
        if self._sel is not None and client.registered:
            self._sel.unregister(client.sock)
        client.sock.close()
        self._clients.remove(client)

    def _flush(self, client: _Client) -> None:
        while client.outbox:
            try:
                sent = client.sock.send(client.outbox)
            except BlockingIOError:
                break
            except OSError:
                self._drop(client)
                return
            del client.outbox[:sent]
        self._update(client)

    def output(self, stream: str, data: bytes) -> None:
        """Container output, to every connected client."""
        message = frame(STREAMS[stream], data)
        for client in list(self._clients):
            had_backlog = bool(client.outbox)
            client.outbox += message
            if len(client.outbox) > MAX_CLIENT_BACKLOG:
                self._drop(client)
            elif not had_backlog:
                self._flush(client)

    # ---- the container's stdin ------------------------------------------------------------

    def _write_stdin(self, data: bytes) -> None:
        if self._stdin is None:
            return
        self._pending_stdin += data
        self._stdin_progress()

    def _stdin_progress(self, mask: int = 0) -> None:
        """Write what is pending; close the stdin once written if a session asked for it."""
        if self._stdin is None:
            return
        while self._pending_stdin:
            try:
                written = os.write(self._stdin, self._pending_stdin)
            except BlockingIOError:
                break
            except OSError:  # the container closed its stdin (or exited): nothing to feed
                self._pending_stdin.clear()
                self._close_stdin()
                return
            del self._pending_stdin[:written]
        assert self._sel is not None
        registered = self._stdin in self._sel.get_map()
        if self._pending_stdin and not registered:
            self._sel.register(self._stdin, selectors.EVENT_WRITE, self._stdin_progress)
        elif not self._pending_stdin and registered:
            self._sel.unregister(self._stdin)
        self._set_paused(len(self._pending_stdin) > MAX_STDIN_BACKLOG)
        if not self._pending_stdin and self._close_stdin_when_written:
            self._close_stdin()

    def _set_paused(self, paused: bool) -> None:
        """Back-pressure: while the container does not read its stdin, clients are not read."""
        if paused == self._paused:
            return
        self._paused = paused
        for client in list(self._clients):
            self._update(client)

    def _close_stdin(self) -> None:
        if self._stdin is None:
            return
        if self._sel is not None and self._stdin in self._sel.get_map():
            self._sel.unregister(self._stdin)
        with contextlib.suppress(OSError):
            os.close(self._stdin)
        self._stdin = None
        self._set_paused(False)

    # ---- the end --------------------------------------------------------------------------

    def finish(self, timeout: float = 2.0) -> None:
        """The container is gone and its output drained: stop listening, hand every client
        what is left for it (within ``timeout``), then hang up."""
        if self._sel is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(self._listener)
        self._listener.close()
        with contextlib.suppress(OSError):
            self.path.unlink()
        self._close_stdin()
        deadline = time.monotonic() + timeout
        for client in list(self._clients):
            if self._sel is not None and client.registered:
                self._sel.unregister(client.sock)
            client.sock.settimeout(max(deadline - time.monotonic(), 0.01))
            with contextlib.suppress(OSError):
                client.sock.sendall(client.outbox)
            client.closed = True
            client.sock.close()
        self._clients.clear()
