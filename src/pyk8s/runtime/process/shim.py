"""The per-container supervisor (containerd's shim, conmon's role): ``python -m
pyk8s.runtime.process.shim <container-dir>``.

Why a separate process: the container must outlive the kubelet. The runtime starts this
module, which detaches (double fork, own session, ignores SIGHUP/SIGTERM/SIGINT), so killing
or restarting the kubelet leaves the container and its supervisor running; the next runtime
instance re-adopts it by reading the state file this shim keeps.

What it does, in order:

1. becomes a child subreaper, so daemonising grandchildren are reaped here;
2. creates the container's cgroups (v1, when root) and applies the memory/cpu limits;
3. forks the container process: new process group (a session of its own with a
   terminal), joins the cgroups, and -- when the container has mounts -- a private mount
   namespace (``unshare(CLONE_NEWNS)``, ``/`` made rprivate) in which each volume is
   bind-mounted at its mountPath before ``exec``;
4. copies stdout/stderr into the log file in the CRI format, and to the clients of the
   container's attach socket, whose stdin it writes to the container's
   (:mod:`pyk8s.runtime.process.stdio`; with ``tty`` the container's stdio is a terminal
   this process holds the master of);
5. when the container's first process exits, kills what is left of its process group and
   cgroup (as a PID namespace would), records exit code, finish time and ``OOMKilled``
   (``memory.oom_control``'s ``oom_kill``) in ``state.json``, removes the cgroups and exits.

Files in the container directory: ``config.json`` (written by the runtime, read here),
``state.json`` (written here, atomically), ``shim.pid``, ``shim.log`` (the shim's own errors),
``attach.sock`` (while the container runs).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import selectors
import signal
import sys
import termios
import time
import traceback
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyk8s.runtime.logs import MAX_LINE, format_record
from pyk8s.runtime.process import cgroups
from pyk8s.runtime.process.stdio import AttachServer
from pyk8s.runtime.zygote import record_supervisor

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(json.dumps(data).encode())
    os.replace(tmp, path)


def _now() -> datetime:
    return datetime.now(UTC)


class _Libc:
    def __init__(self) -> None:
        self.lib = ctypes.CDLL(None, use_errno=True)
        self.lib.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                                   ctypes.c_ulong, ctypes.c_void_p]

    def _check(self, rc: int, what: str) -> None:
        if rc != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"{what}: {os.strerror(err)}")

    def prctl(self, option: int, arg: int) -> None:
        self._check(self.lib.prctl(option, arg, 0, 0, 0), "prctl")

    def unshare(self, flags: int) -> None:
        self._check(self.lib.unshare(flags), "unshare")

    def sethostname(self, name: str) -> None:
        raw = name.encode()
        self._check(self.lib.sethostname(raw, len(raw)), "sethostname")

    def mount(self, source: str | None, target: str, flags: int) -> None:
        self._check(self.lib.mount(source.encode() if source else None, target.encode(), None,
                                   flags, None), f"mount {target}")


def _setup_mounts(libc: _Libc, mounts: list[dict[str, Any]]) -> None:
    """In the container process, before exec: a private mount namespace with the volumes."""
    libc.unshare(CLONE_NEWNS)
    libc.mount(None, "/", MS_REC | MS_PRIVATE)
    for m in mounts:
        source, target = m["host_path"], m["container_path"]
        if os.path.isdir(source):
            os.makedirs(target, exist_ok=True)
        elif not os.path.exists(target):
            os.makedirs(os.path.dirname(target) or "/", exist_ok=True)
            Path(target).touch()
        libc.mount(source, target, MS_BIND | MS_REC)
        if m.get("read_only"):
            libc.mount(None, target, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC)


class Stdio:
    """The container's standard streams, both ends. ``child``: the fds that become the
    container's 0, 1, 2; ``outputs``: what the supervisor reads (fd → ``stdout``/``stderr``);
    ``stdin``: the supervisor's write end of the container's stdin (None: none);
    ``terminal``: the master of the container's terminal (``tty``)."""

    def __init__(self, child: tuple[int, int, int], outputs: dict[int, str],
                 stdin: int | None = None, terminal: int | None = None) -> None:
        self.child = child
        self.outputs = outputs
        self.stdin = stdin
        self.terminal = terminal

    @classmethod
    def open(cls, *, stdin: bool, tty: bool) -> Stdio:
        if tty:
            master, slave = os.openpty()
            # The supervisor writes stdin through its own descriptor of the master.
            return cls((slave, slave, slave), {master: "stdout"},
                       os.dup(master) if stdin else None, master)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        if stdin:
            in_r, in_w = os.pipe()
            return cls((in_r, out_w, err_w), {out_r: "stdout", err_r: "stderr"}, in_w)
        return cls((os.open(os.devnull, os.O_RDONLY), out_w, err_w),
                   {out_r: "stdout", err_r: "stderr"})

    def close_child_ends(self) -> None:
        """In the supervisor, once the container has its copies."""
        for fd in set(self.child):
            os.close(fd)

    def close_supervisor_ends(self) -> None:
        """In the container, before exec."""
        for fd in [*self.outputs, self.stdin, self.terminal]:
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def attach_server(self, directory: Path, stdin_once: bool) -> AttachServer:
        return AttachServer(directory, stdin=self.stdin, stdin_once=stdin_once,
                            terminal=self.terminal)


def _child(config: dict[str, Any], cg: cgroups.CgroupSet, stdio: Stdio,
           errpipe_w: int) -> None:
    """Runs in the forked container process; never returns."""
    try:
        # If the supervisor dies, nobody would record the exit: the container dies with it
        # (the runtime then reports it exited with 255, reason Unknown, and kills leftovers).
        _Libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        stdio.close_supervisor_ends()
        if stdio.terminal is not None:
            os.setsid()  # its own session (and group), with the terminal as controlling one
            fcntl.ioctl(stdio.child[0], termios.TIOCSCTTY, 0)
        else:
            os.setpgid(0, 0)
        cg.add(os.getpid())
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        if config.get("uts_namespace"):
            # The pod's hostname, as `hostname` and gethostname() see it.
            _Libc().unshare(CLONE_NEWUTS)
            _Libc().sethostname(config["hostname"])
        if config.get("mounts"):
            _setup_mounts(_Libc(), config["mounts"])
        for target, fd in enumerate(stdio.child):
            os.dup2(fd, target)
        workdir = config.get("working_dir") or "/"
        os.makedirs(workdir, exist_ok=True)
        os.chdir(workdir)
        argv = config["argv"]
        os.execvpe(argv[0], argv, config["env"])
    except BaseException as exc:  # report anything to the shim, then die
        if isinstance(exc, FileNotFoundError) and exc.filename is None:
            text = f'exec: "{config["argv"][0]}": executable file not found in $PATH'
        elif isinstance(exc, OSError) and exc.errno in (errno.ENOENT, errno.EACCES):
            text = f'exec: "{config["argv"][0]}": {exc.strerror}'
        else:
            text = f"{type(exc).__name__}: {exc}"
        with contextlib.suppress(OSError):
            os.write(errpipe_w, text.encode()[:4000])
        os._exit(127)


class _LogWriter:
    """CRI-format records into ``path``, rotated by size as upstream's kubelet rotates
    (``containerLogMaxSize``/``containerLogMaxFiles``): past ``max_size`` the file becomes
    ``<path>.<YYYYmmdd-HHMMSS.micros>`` and a new one starts; at most ``max_files`` files are kept,
    the current one included. Rotated files are not compressed."""

    def __init__(self, path: str, max_size: int = 10 * 1024 * 1024, max_files: int = 5) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.path = path
        self.max_size = max_size
        self.max_files = max(max_files, 1)
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self.size = os.fstat(self.fd).st_size
        self.pending: dict[str, bytes] = {"stdout": b"", "stderr": b""}

    def _write(self, data: bytes) -> None:
        os.write(self.fd, data)
        self.size += len(data)
        if self.max_size > 0 and self.size >= self.max_size:
            self._rotate()

    def _rotate(self) -> None:
        # Upstream's suffix (YYYYmmdd-HHMMSS) plus microseconds: names sort by age, which
        # pruning relies on, even for several rotations in one second.
        target = f"{self.path}.{_now().strftime('%Y%m%d-%H%M%S.%f')}"
        while os.path.exists(target):
            target += "0"
        os.rename(self.path, target)
        os.close(self.fd)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self.size = 0
        directory, base = os.path.split(self.path)
        rotated = sorted(f for f in os.listdir(directory) if f.startswith(base + "."))
        for old in rotated[:max(len(rotated) - (self.max_files - 1), 0)]:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(directory, old))

    def feed(self, stream: str, data: bytes) -> None:
        buf = self.pending[stream] + data
        out = []
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                break
            out.append(format_record(_now(), stream, buf[:nl]))
            buf = buf[nl + 1:]
        while len(buf) >= MAX_LINE:
            out.append(format_record(_now(), stream, buf[:MAX_LINE], partial=True))
            buf = buf[MAX_LINE:]
        self.pending[stream] = buf
        if out:
            self._write(b"".join(out))

    def close(self) -> None:
        for stream, rest in self.pending.items():
            if rest:
                self._write(format_record(_now(), stream, rest))
        os.close(self.fd)


def supervise(cdir: Path) -> int:
    config = json.loads((cdir / "config.json").read_bytes())
    state_path = cdir / "state.json"
    libc = _Libc()
    with contextlib.suppress(OSError):
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)

    cg = cgroups.create(config.get("cgroup_parent", ""), config["id"])
    resources = config.get("resources") or {}
    limited = True
    if resources.get("memory_limit_bytes"):
        limited = cg.set_memory_limit(resources["memory_limit_bytes"]) and limited
    if resources.get("pids_limit", 0) > 0:
        limited = cg.set_pids_limit(resources["pids_limit"]) and limited
    if resources.get("cpu_quota_us") or resources.get("cpu_shares"):
        limited = cg.set_cpu(resources.get("cpu_quota_us", 0),
                             resources.get("cpu_period_us", 100_000),
                             resources.get("cpu_shares", 0)) and limited

    state: dict[str, Any] = {"status": "created", "cgroups": cg.to_json(),
                             "limits_enforced": limited, "mount_namespace": bool(config.get("mounts")),
                             "uts_namespace": bool(config.get("uts_namespace"))}
    stdio = Stdio.open(stdin=bool(config.get("stdin")), tty=bool(config.get("tty")))
    errpipe_r, errpipe_w = os.pipe2(os.O_CLOEXEC)
    log = _LogWriter(config["log_path"], config.get("log_max_size", 10 * 1024 * 1024),
                     config.get("log_max_files", 5))
    pid = os.fork()
    if pid == 0:
        os.close(errpipe_r)
        _child(config, cg, stdio, errpipe_w)
    started = _now()
    stdio.close_child_ends()
    os.close(errpipe_w)
    failure = b""
    while chunk := os.read(errpipe_r, 4096):
        failure += chunk
    os.close(errpipe_r)
    if failure:
        os.waitpid(pid, 0)
        log.close()
        stdio.close_supervisor_ends()
        state.update(status="exited", pid=pid, started_at=None, finished_at=_now().timestamp(),
                     exit_code=128, reason="StartError", message=failure.decode(errors="replace"))
        write_json_atomic(state_path, state)
        cg.remove()
        return 0
    attach = stdio.attach_server(cdir, bool(config.get("stdin_once")))
    state.update(status="running", pid=pid, pgid=pid, started_at=started.timestamp(),
                 tty=stdio.terminal is not None)
    write_json_atomic(state_path, state)

    exit_status = _pump(pid, stdio.outputs, log, cg, attach)
    code = os.waitstatus_to_exitcode(exit_status)
    exit_code = 128 - code if code < 0 else code
    oom = cg.oom_kills() > 0
    reason = "OOMKilled" if oom else ("Completed" if exit_code == 0 else "Error")
    state.update(status="exited", finished_at=_now().timestamp(), exit_code=exit_code,
                 reason=reason)
    write_json_atomic(state_path, state)
    _wait_empty(cg)
    cg.remove()
    return 0


def _wait_empty(cg: cgroups.CgroupSet, timeout: float = 5.0) -> None:
    """Killed stragglers leave the cgroup only once reaped (we are their subreaper)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap_all(-1)
        if not cg.pids():
            return
        time.sleep(0.02)


def _kill_rest(pgid: int, cg: cgroups.CgroupSet) -> None:
    with contextlib.suppress(OSError):
        os.killpg(pgid, signal.SIGKILL)
    for p in cg.pids():
        with contextlib.suppress(OSError):
            os.kill(p, signal.SIGKILL)


def _reap_all(main: int) -> int | None:
    """Reap every exited child; the main process's wait status once it is among them."""
    result = None
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return result
        if pid == 0:
            return result
        if pid == main:
            result = status


def _pump(pid: int, outputs: Mapping[int, str], log: _LogWriter, cg: cgroups.CgroupSet,
          attach: AttachServer | None = None) -> int:
    """Copy output (fd → stream name) to the log and to attached clients until the main
    process exits; then finish the stragglers. The attach socket is served meanwhile."""
    sel = selectors.DefaultSelector()
    for fd, stream in outputs.items():
        sel.register(fd, selectors.EVENT_READ, stream)
    if attach is not None:
        attach.register(sel)
    open_outputs = set(outputs)
    exit_status: int | None = None
    drain_deadline: float | None = None
    while open_outputs:
        for key, mask in sel.select(timeout=0.1):
            if not isinstance(key.data, str):  # the attach socket's business
                if key.fd in sel.get_map():  # not dropped by an earlier event of this round
                    key.data(mask)
                continue
            try:
                data = os.read(key.fd, 65536)
            except BlockingIOError:  # a terminal's master shares O_NONBLOCK with stdin's dup
                continue
            except OSError:  # EIO: a terminal whose last other end is closed
                data = b""
            if data:
                log.feed(key.data, data)
                if attach is not None:
                    attach.output(key.data, data)
            else:
                sel.unregister(key.fd)
                os.close(key.fd)
                open_outputs.discard(key.fd)
        if exit_status is None:
            exit_status = _reap_all(pid)
            if exit_status is not None:
                _kill_rest(pid, cg)
                drain_deadline = time.monotonic() + 2.0
        else:
            _reap_all(pid)
            if drain_deadline is not None and time.monotonic() > drain_deadline:
                break  # a process outside the group still holds the pipe: stop copying
    while exit_status is None:
        exit_status = _reap_all(pid)
        if exit_status is None:
            time.sleep(0.05)
    _kill_rest(pid, cg)
    log.close()
    for fd in open_outputs:  # abandoned after the drain deadline
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(fd)
        os.close(fd)
    if attach is not None:
        attach.finish()
    sel.close()
    return exit_status


def main(argv: list[str]) -> int:
    """Started cold: detach (the runtime waits for this first process only)."""
    if os.fork() != 0:
        os._exit(0)
    return run_detached(Path(argv[1]))


def run_detached(cdir: Path) -> int:
    """The supervisor's life, in its own session (the zygote's child calls this directly)."""
    os.setsid()
    record_supervisor(cdir)
    try:
        return supervise(cdir)
    except Exception:
        (cdir / "shim.log").write_text(traceback.format_exc())
        state_path = cdir / "state.json"
        with contextlib.suppress(Exception):
            prev = json.loads(state_path.read_bytes()) if state_path.exists() else {}
            if prev.get("status") != "exited":
                prev.update(status="exited", finished_at=_now().timestamp(), exit_code=128,
                            reason="StartError", message="the process supervisor failed")
                write_json_atomic(state_path, prev)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
