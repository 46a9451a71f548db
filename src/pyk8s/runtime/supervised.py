"""What the runtimes that supervise containers through a detached shim (``process`` and
``oci``) share: reading their state files, finding rotated logs, and exec sessions.

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
import struct
import termios
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


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


def controlling_terminal() -> None:
    """In the exec'd child (after setsid): make the pty on stdin the controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
