"""The per-container supervisor of the ``oci`` runtime (conmon's role):
``python -m pyk8s.runtime.oci.shim <container-dir>``.

Like the process runtime's shim (whose log writer, output pump and attach socket --
:mod:`pyk8s.runtime.process.stdio` -- it reuses), it detaches
from the kubelet (double fork, own session, ignores SIGTERM/SIGHUP/SIGINT), so containers
outlive kubelet restarts, and it keeps ``state.json`` for the next runtime instance.

In order:

1. becomes a child subreaper: the container's init (``runc init``) is re-parented here
   once ``runc create`` exits, so this process can ``waitpid`` it;
2. ``runc create`` with the container's stdout/stderr on pipes and, with ``stdin``, its
   stdin on a pipe this process keeps the write end of (the container inherits them:
   runc's pass-through mode, ``terminal: false``; a ``tty`` is not given), runc's own log
   in ``runc.log``; then ``runc start``;
3. copies the pipes into the CRI-format log and to attached clients, and attached clients'
   stdin into the container, until init exits (its PID namespace dies with it);
4. reads ``oom_kill`` from the memory cgroup, ``runc delete --force`` (which removes the
   container's cgroups), records exit code, reason and finish time, and exits.

A failure of create or start is recorded as ``StartError`` with runc's message.
Files: ``shim.json`` (from the runtime), ``state.json``, ``shim.pid``, ``runc.log``,
``shim.log`` (this process's own crash, if any).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyk8s.runtime.process import cgroups
from pyk8s.runtime.process.shim import (
    PR_SET_CHILD_SUBREAPER,
    Stdio,
    _Libc,
    _LogWriter,
    _pump,
    write_json_atomic,
)
from pyk8s.runtime.zygote import record_supervisor


def _now() -> float:
    return datetime.now(UTC).timestamp()


def runc_error(log_path: Path, fallback: str = "") -> str:
    """The last error runc logged (its ``--log-format json`` file), else ``fallback``."""
    message = ""
    with contextlib.suppress(OSError):
        for line in log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if entry.get("level") in ("error", "fatal"):
                    message = str(entry.get("msg", ""))
    return (message or fallback).strip()[-2000:]


def runc_base(conf: dict[str, Any], log_path: Path) -> list[str]:
    return [conf["runc"], "--root", conf["runc_root"], "--log", str(log_path),
            "--log-format", "json"]


def supervise(cdir: Path) -> int:
    conf = json.loads((cdir / "shim.json").read_bytes())
    state_path = cdir / "state.json"
    runc_log = cdir / "runc.log"
    base = runc_base(conf, runc_log)
    cid = conf["id"]
    with contextlib.suppress(OSError):
        _Libc().prctl(PR_SET_CHILD_SUBREAPER, 1)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    state: dict[str, Any] = {"status": "created"}
    cg = cgroups.CgroupSet({k: Path(v) for k, v in conf.get("cgroups", {}).items()})
    stdio = Stdio.open(stdin=bool(conf.get("stdin")), tty=False)
    log = _LogWriter(conf["log_path"], conf.get("log_max_size", 10 * 1024 * 1024),
                     conf.get("log_max_files", 5))

    def failed(what: str, proc: subprocess.CompletedProcess[bytes]) -> int:
        stdio.close_supervisor_ends()
        log.close()
        subprocess.run([*base, "delete", "--force", cid], capture_output=True, check=False)
        state.update(status="exited", started_at=None, finished_at=_now(), exit_code=128,
                     reason="StartError",
                     message=runc_error(runc_log, (proc.stderr or b"").decode(errors="replace")
                                        or f"runc {what} failed"))
        write_json_atomic(state_path, state)
        return 0

    pid_file = cdir / "container.pid"
    stdin_r, out_w, err_w = stdio.child
    create = subprocess.run([*base, "create", "--bundle", conf["bundle"], "--pid-file",
                             str(pid_file), cid], stdin=stdin_r, stdout=out_w,
                            stderr=err_w, check=False)
    stdio.close_child_ends()
    if create.returncode != 0:
        return failed("create", create)
    pid = int(pid_file.read_text())
    start = subprocess.run([*base, "start", cid], capture_output=True, check=False)
    if start.returncode != 0:
        return failed("start", start)
    attach = stdio.attach_server(cdir, bool(conf.get("stdin_once")))
    state.update(status="running", pid=pid, started_at=_now())
    write_json_atomic(state_path, state)

    exit_status = _pump(pid, stdio.outputs, log, cg, attach)
    code = os.waitstatus_to_exitcode(exit_status)
    exit_code = 128 - code if code < 0 else code
    oom = cg.oom_kills() > 0
    subprocess.run([*base, "delete", "--force", cid], capture_output=True, check=False)
    state.update(status="exited", finished_at=_now(), exit_code=exit_code,
                 reason="OOMKilled" if oom else ("Completed" if exit_code == 0 else "Error"))
    write_json_atomic(state_path, state)
    return 0


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
        import traceback  # only when something went wrong: it costs ~25 ms to import

        (cdir / "shim.log").write_text(traceback.format_exc())
        with contextlib.suppress(Exception):
            path = cdir / "state.json"
            prev = json.loads(path.read_bytes()) if path.exists() else {}
            if prev.get("status") != "exited":
                prev.update(status="exited", finished_at=_now(), exit_code=128,
                            reason="StartError", message="the container's supervisor failed")
                write_json_atomic(path, prev)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
