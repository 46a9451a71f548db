"""Container supervisors (shims) forked from a warm process instead of started cold.

A shim is a Python process; starting one with ``python -m ...shim`` costs 100-150 ms of CPU
(the interpreter and its imports), which for 100 pods started at once is seconds of a
2-core node's time. A *zygote* -- one process per user and interpreter, with both shims' modules
already imported -- forks a new shim in about a millisecond instead, as Android's
zygote does for apps.

The zygote matters only while containers are being started: it exits when the process that
started it (the kubelet) is gone, or after ``IDLE_SECONDS`` without a request, and is
started again on demand. The shims it forks are independent of it (their own session,
re-parented to init), so neither its exit nor the kubelet's touches running containers.

Requests come over an abstract Unix socket whose name derives from the interpreter and the
runtime package's source files; the zygote serves only clients with its own user ID (``SO_PEERCRED``), since a shim runs what
its container directory says. Anything that goes wrong on the way (no zygote, a refused
connection) falls back to starting the shim cold, so this is only ever an optimisation.

A forked shim's command line is retitled to what a cold start would show (``setproctitle``),
but a shim is recognised by its PID *and* its start time (``shim.pid``, ``shim.start``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import json
import os
import select
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

SHIM_MODULES = ("pyk8s.runtime.process.shim", "pyk8s.runtime.oci.shim")
IDLE_SECONDS = 60.0
_started: dict[str, subprocess.Popen[bytes]] = {}


# ---- the shim's identity ------------------------------------------------------------------

def _start_time(pid: int) -> str:
    """Field 22 of ``/proc/<pid>/stat``: when the process started, in clock ticks; empty
    for a process that has exited (a zombie waiting to be reaped)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rfind(")") + 2:].split()
    return "" if fields[0] in ("Z", "X") else fields[19]


def record_supervisor(cdir: Path) -> None:
    """Called by a shim once detached: who supervises this container."""
    pid = os.getpid()
    (cdir / "shim.start").write_text(_start_time(pid))
    (cdir / "shim.pid").write_text(str(pid))


def supervisor_alive(cdir: Path, module: str) -> bool:
    """Whether the process in ``shim.pid`` is still this container's shim (a PID can be
    reused). Shims from before the zygote are recognised by their command line."""
    try:
        pid = int((cdir / "shim.pid").read_text())
    except (OSError, ValueError):
        return False
    try:
        started = (cdir / "shim.start").read_text()
    except OSError:
        started = ""
    try:
        if started:
            return _start_time(pid) == started
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, IndexError):
        return False
    return module.encode() in cmdline and str(cdir).encode() in cmdline


class Supervisors:
    """Shims' liveness through a pidfd each (a kubelet asks about every container every
    second): once a shim is verified, a check is one ``poll`` with no timeout, and a dead
    shim's pidfd turns readable even before it is reaped."""

    def __init__(self, module: str) -> None:
        self.module = module
        self._fds: dict[str, int] = {}

    def alive(self, cdir: Path) -> bool:
        fd = self._fds.get(cdir.name)
        if fd is None:
            if not supervisor_alive(cdir, self.module):
                return False
            try:
                fd = os.pidfd_open(int((cdir / "shim.pid").read_text()))
            except (OSError, ValueError, AttributeError):
                return supervisor_alive(cdir, self.module)
            if not supervisor_alive(cdir, self.module):  # the PID changed hands meanwhile
                os.close(fd)
                return False
            self._fds[cdir.name] = fd
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        if poller.poll(0):
            self.forget(cdir.name)
            return False
        return True

    def forget(self, container_id: str) -> None:
        fd = self._fds.pop(container_id, None)
        if fd is not None:
            os.close(fd)


# ---- the client ---------------------------------------------------------------------------

@functools.cache
def _address(python: str) -> str:
    """One zygote per user, interpreter and version of the runtime package's code (a changed
    source file gets a new zygote rather than old code): the shims import more than their
    own modules."""
    stamp = [python, str(os.getuid())]
    root = Path(__file__).resolve().parent
    for source in sorted(root.rglob("*.py")):
        with contextlib.suppress(OSError):
            stamp.append(f"{source}:{source.stat().st_mtime_ns}")
    digest = hashlib.sha256("\0".join(stamp).encode()).hexdigest()
    return f"\0pyk8s-zygote-{digest[:24]}"


def _request(address: str, module: str, cdir: Path, timeout: float = 10.0) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(address)
        sock.sendall(json.dumps({"module": module, "cdir": str(cdir)}).encode() + b"\n")
        return sock.makefile("rb").readline().strip() == b"ok"


def _start_zygote(address: str, python: str, env: dict[str, str]) -> None:
    old = _started.pop(address, None)
    if old is not None:
        old.poll()  # reap an exited one
    _started[address] = subprocess.Popen(
        [python, "-m", __name__, address.lstrip("\0"), str(IDLE_SECONDS)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        cwd="/", env=env)


def launch(module: str, cdir: Path, *, python: str, env: dict[str, str]) -> None:
    """Start the shim ``module`` for ``cdir``; returns once it is detached. Blocking: call
    it from a thread."""
    address = _address(python)
    for attempt in range(2):
        with contextlib.suppress(OSError):
            if _request(address, module, cdir):
                return
        if attempt == 0:
            _start_zygote(address, python, env)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                with contextlib.suppress(OSError), \
                        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                    probe.connect(address)
                    break
                time.sleep(0.01)
    # The zygote is unavailable: start the shim cold (the launcher exits once it detached).
    subprocess.run([python, "-m", module, str(cdir)], stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/", env=env,
                   check=False, timeout=30)


# ---- the zygote ---------------------------------------------------------------------------

def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def _fork_shim(listener: socket.socket, conn: socket.socket, module: str, cdir: str) -> None:
    """The child *is* the shim: its own session, reaped here while the zygote lives and by
    init after."""
    if os.fork() == 0:
        code = 1
        try:
            listener.close()
            conn.close()
            _retitle(f"{module} {cdir}")
            code = importlib.import_module(module).run_detached(Path(cdir))
        finally:
            os._exit(code or 0)


def _reap() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def _retitle(title: str) -> None:
    """What ``ps`` shows: the shim's own command line (as if started cold), not the
    zygote's."""
    with contextlib.suppress(ImportError):
        import setproctitle

        setproctitle.setproctitle(f"{sys.executable} -m {title}")


def serve(name: str, idle_seconds: float) -> None:
    for module in (*SHIM_MODULES, "setproctitle"):
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    parent = os.getppid()
    me = os.getuid()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        try:
            listener.bind("\0" + name)
        except OSError:
            return  # another zygote serves this state directory
        listener.listen(64)
        listener.settimeout(1.0)
        last = time.monotonic()
        while os.getppid() == parent and time.monotonic() - last < idle_seconds:
            _reap()
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                last = time.monotonic()
                if _peer_uid(conn) != me:
                    continue
                conn.settimeout(5.0)
                try:
                    request = json.loads(conn.makefile("rb").readline())
                    module, cdir = request["module"], request["cdir"]
                except (OSError, ValueError, KeyError, TypeError):
                    continue
                if module not in SHIM_MODULES or not Path(cdir).is_dir():
                    with contextlib.suppress(OSError):
                        conn.sendall(b"refused\n")
                    continue
                _fork_shim(listener, conn, module, cdir)
                with contextlib.suppress(OSError):
                    conn.sendall(b"ok\n")


if __name__ == "__main__":
    serve(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else IDLE_SECONDS)
