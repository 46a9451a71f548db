"""What the runtimes that supervise containers through a detached shim (``process`` and
``oci``) share: reading their state files, finding rotated logs, exec sessions, and attach
sessions (the client end of a shim's attach socket, :mod:`pyk8s.runtime.process.stdio`).

Kept in one place so the two runtimes cannot drift apart in how a state file is read or
how an exec'd command's terminal, stdin and exit code behave.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import signal
import socket
import struct
import termios
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyk8s.runtime.interface import RuntimeOperationError
from pyk8s.runtime.process import stdio


def timestamp(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value else None


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_bytes())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


def rotated_logs(log_path: str) -> list[str]:
    directory, base = os.path.split(log_path)
    try:
        return [os.path.join(directory, f) for f in os.listdir(directory)
                if f.startswith(base + ".")]
    except OSError:
        return []


class ExecSession:
    """An :class:`ExecProcess` over an asyncio subprocess in its own session; with a TTY,
    a pseudo-terminal is its controlling terminal and carries stdin and stdout."""

    def __init__(self, proc: asyncio.subprocess.Process, master: int | None = None) -> None:
        self.proc = proc
        self._master = master
        if master is None:
            assert proc.stdout is not None and proc.stderr is not None
            self.stdout: asyncio.StreamReader = proc.stdout
            self.stderr: asyncio.StreamReader = proc.stderr
        else:
            self.stdout = asyncio.StreamReader()
            self.stderr = asyncio.StreamReader()
            self.stderr.feed_eof()
            os.set_blocking(master, False)
            asyncio.get_running_loop().add_reader(master, self._pty_readable)

    def _pty_readable(self) -> None:
        assert self._master is not None
        try:
            data = os.read(self._master, 65536)
        except BlockingIOError:
            return
        except OSError:  # EIO: the last holder of the terminal's other side is gone
            data = b""
        if data:
            self.stdout.feed_data(data)
            return
        asyncio.get_running_loop().remove_reader(self._master)
        self.stdout.feed_eof()

    async def write_stdin(self, data: bytes) -> None:
        if self._master is not None:
            view = memoryview(data)
            while view:
                try:
                    view = view[os.write(self._master, view):]
                except BlockingIOError:
                    await asyncio.sleep(0.01)
            return
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.write(data)
            with contextlib.suppress(ConnectionError):
                await self.proc.stdin.drain()

    def close_stdin(self) -> None:
        if self._master is not None:
            with contextlib.suppress(OSError):
                os.write(self._master, b"\x04")  # EOF for a terminal in canonical mode
        elif self.proc.stdin is not None:
            self.proc.stdin.close()

    def resize(self, width: int, height: int) -> None:
        if self._master is not None:
            with contextlib.suppress(OSError):
                fcntl.ioctl(self._master, termios.TIOCSWINSZ,
                            struct.pack("HHHH", height, width, 0, 0))

    async def wait(self) -> int:
        code = await self.proc.wait()
        if self._master is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._drained(), 1.0)
            with contextlib.suppress(OSError, ValueError):
                asyncio.get_running_loop().remove_reader(self._master)
                os.close(self._master)
            self._master = None
            if not self.stdout.at_eof():
                self.stdout.feed_eof()
        return 128 - code if code < 0 else code

    async def _drained(self) -> None:
        while not self.stdout.at_eof() and self._master is not None:
            await asyncio.sleep(0.01)

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            os.killpg(self.proc.pid, signal.SIGKILL)


def controlling_terminal(slave: int) -> Callable[[], None]:
    """A ``preexec_fn`` making the pty ``slave`` the child's controlling terminal. It starts
    the child's session itself: uvloop (the kubelet's loop) runs preexec functions right
    after the fork, before the child's session and stdio are set up; the standard library
    runs them after (then ``setsid`` here fails harmlessly)."""
    def preexec() -> None:
        with contextlib.suppress(OSError):
            os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    return preexec


class AttachSession:
    """An :class:`ExecProcess` over a container's attach socket: the container's output
    from now on, and (when ``stdin``) a way to write to its stdin. It ends when the container
    exits; :meth:`kill` detaches (the container runs on) and :meth:`wait` returns 0: an
    attach has no exit code of its own.

    Input and output are independent on purpose. The supervisor hangs up as soon as the
    container has exited and its output is sent, so input still on its way meets a closed
    socket: ``kubectl run -i`` sends stdin's data, then its end, and a container that needed
    only the data has answered and gone before the end arrives. On asyncio's streams that
    failed write tears the whole connection down and throws away what was received and not
    yet read -- the container's last output. Here the socket is used directly: one task
    reads frames to the end of the connection, one sends what is queued in order, and a
    failed send only ends the input."""

    def __init__(self, sock: socket.socket, stdin: bool) -> None:
        self._sock = sock
        self._stdin = stdin
        self._stdin_closed = False
        self._input_ended = False
        self._outbox = bytearray()
        self._queued = asyncio.Event()
        self._sent = asyncio.Event()
        self._sent.set()
        self.stdout = asyncio.StreamReader()
        self.stderr = asyncio.StreamReader()
        self._send(stdio.HELLO, b"\x01" if stdin else b"\x00")
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        sender = asyncio.ensure_future(self._send_queued())
        try:
            await self._receive()
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            self._end_input()
            self._sock.close()
            self.stdout.feed_eof()
            self.stderr.feed_eof()

    async def _receive(self) -> None:
        """Frames until the supervisor hangs up (after the container's last output)."""
        loop = asyncio.get_running_loop()
        streams = {stdio.STDOUT: self.stdout, stdio.STDERR: self.stderr}
        buf = bytearray()
        while True:
            try:
                chunk = await loop.sock_recv(self._sock, 65536)
            except OSError:  # ECONNRESET, once what was sent has been read
                return
            if not chunk:
                return
            buf += chunk
            while len(buf) >= stdio.FRAME.size:
                kind, length = stdio.FRAME.unpack_from(buf)
                end = stdio.FRAME.size + length
                if len(buf) < end:
                    break
                target = streams.get(kind)
                if target is not None and length:
                    target.feed_data(bytes(buf[stdio.FRAME.size:end]))
                del buf[:end]

    async def _send_queued(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                await self._queued.wait()
                self._queued.clear()
                while self._outbox:
                    data = bytes(self._outbox)
                    self._outbox.clear()
                    await loop.sock_sendall(self._sock, data)
                self._sent.set()
        except OSError:  # the supervisor hung up: the container is gone, input goes nowhere
            self._end_input()

    def _end_input(self) -> None:
        self._input_ended = True
        self._outbox.clear()
        self._sent.set()

    def _send(self, kind: int, payload: bytes = b"") -> None:
        if not self._input_ended:
            self._outbox += stdio.frame(kind, payload)
            self._sent.clear()
            self._queued.set()

    async def write_stdin(self, data: bytes) -> None:
        """Returns once sent (or once the supervisor can no longer take it)."""
        if not self._stdin or self._stdin_closed:
            return
        for start in range(0, len(data), 65536):
            self._send(stdio.STDIN, data[start:start + 65536])
        await self._sent.wait()

    def close_stdin(self) -> None:
        if self._stdin and not self._stdin_closed:
            self._stdin_closed = True
            self._send(stdio.STDIN_CLOSE)

    def resize(self, width: int, height: int) -> None:
        self._send(stdio.RESIZE, struct.pack(">HH", width & 0xFFFF, height & 0xFFFF))

    async def wait(self) -> int:
        await asyncio.shield(self._task)
        return 0

    def kill(self) -> None:
        """Detach: the supervisor sees this session end (and, with ``stdinOnce``, its stdin
        with it); reading stops at what has already arrived."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)


async def attach(directory: Path, container_id: str, stdin: bool) -> AttachSession:
    """Connect to the attach socket of the container whose state is in ``directory``."""
    dir_fd = -1
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        dir_fd = os.open(directory, os.O_PATH | os.O_DIRECTORY)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, stdio.socket_path(dir_fd))
    except OSError as exc:
        sock.close()
        raise RuntimeOperationError(
            "AttachError", f"cannot attach to container {container_id}: "
            f"{exc.strerror or exc}") from None
    finally:
        if dir_fd >= 0:
            os.close(dir_fd)
    return AttachSession(sock, stdin)
