"""The ``process`` runtime: containers are host processes. **No isolation** beyond a private
mount namespace for volumes and cgroup v1 limits (both only as root).

Images resolve to nothing (the command runs from the host's filesystem), so a container must
say what to run: one without ``command`` cannot be created (``CreateContainerError``). The
pod's network is the host's: its IP is the node's.

State lives under ``state_dir``: ``sandboxes/<id>/sandbox.json`` and
``containers/<id>/{config,state}.json``. Each started container has its own supervisor process
(:mod:`pyk8s.runtime.process.shim`), so this object holds no state worth losing: a new
instance over the same directory sees everything (that is the re-adoption after a kubelet
restart). Calls are cheap file reads; blocking work (spawning, waiting) runs in threads or
subprocesses so the event loop never stalls.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import uuid
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyk8s.runtime import zygote
from pyk8s.runtime.interface import (
    ContainerConfig,
    ContainerState,
    ContainerStats,
    ContainerStatus,
    ExecProcess,
    ExecResult,
    NotFoundError,
    PodSandbox,
    PodSandboxConfig,
    RuntimeInfo,
    RuntimeOperationError,
    SandboxState,
)
from pyk8s.runtime.process import cgroups
from pyk8s.runtime.process.shim import write_json_atomic
from pyk8s.runtime.supervised import (
    ExecSession,
    attach,
    controlling_terminal,
    read_json,
    rotated_logs,
    timestamp,
)
from pyk8s.runtime.zygote import supervisor_alive

VERSION = "0.1"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SHIM_MODULE = "pyk8s.runtime.process.shim"


def _shim_alive(cdir: Path) -> bool:
    return supervisor_alive(cdir, SHIM_MODULE)


class ProcessRuntime:
    """See the module docstring. ``python`` is the interpreter that runs the shims."""

    def __init__(self, state_dir: str | Path, *, host_ip: str = "127.0.0.1",
                 python: str = sys.executable, poll_interval: float = 0.01,
                 namespaces: bool | None = None, log_max_size: int = 10 * 1024 * 1024,
                 log_max_files: int = 5) -> None:
        """``namespaces``: use mount/UTS namespaces (volumes, hostname); None means "when
        root", False forces the unprivileged behaviour (pods with volumes fail).
        ``log_max_size``/``log_max_files``: container log rotation (upstream's
        ``containerLogMaxSize`` 10Mi and ``containerLogMaxFiles`` 5; size 0: never)."""
        self.log_max_size = log_max_size
        self.log_max_files = log_max_files
        self.state_dir = Path(state_dir)
        self._namespaces = os.geteuid() == 0 if namespaces is None else namespaces
        self.host_ip = host_ip
        self.python = python
        self.poll_interval = poll_interval
        self._sandboxes = self.state_dir / "sandboxes"
        self._sandbox_cache: dict[str, tuple[tuple[int, int, int], PodSandbox]] = {}
        self._file_cache: dict[str, tuple[tuple[int, int, int], dict[str, Any]]] = {}
        self._supervisors = zygote.Supervisors(SHIM_MODULE)
        self._containers = self.state_dir / "containers"
        self._sandboxes.mkdir(parents=True, exist_ok=True)
        self._containers.mkdir(parents=True, exist_ok=True)

    def info(self) -> RuntimeInfo:
        return RuntimeInfo("process", f"process://{VERSION}", "process (no isolation)",
                           pulls_images=False, own_root_filesystem=False)

    @property
    def can_mount(self) -> bool:
        """Volumes need a private mount namespace, which needs root (CAP_SYS_ADMIN)."""
        return self._namespaces

    async def update_pod_cidr(self, cidr: str) -> None:
        """Pods share the host's network and address: nothing to configure."""

    # ---- sandboxes ------------------------------------------------------------------------

    async def run_pod_sandbox(self, config: PodSandboxConfig) -> str:
        sandbox_id = uuid.uuid4().hex
        sdir = self._sandboxes / sandbox_id
        sdir.mkdir(parents=True)
        if config.log_directory:
            Path(config.log_directory).mkdir(parents=True, exist_ok=True)
        write_json_atomic(sdir / "sandbox.json", {
            "id": sandbox_id, "config": {**asdict(config)}, "state": SandboxState.READY.value,
            "created_at": datetime.now(UTC).timestamp(), "ip": self.host_ip})
        return sandbox_id

    def _sandbox(self, sandbox_id: str) -> PodSandbox:
        """Parsed once per version of its file (a kubelet lists every sandbox when a pod
        worker starts: with many pods, re-parsing them all made starts quadratic)."""
        path = self._sandboxes / sandbox_id / "sandbox.json"
        try:
            st = path.stat()
        except OSError:
            self._sandbox_cache.pop(sandbox_id, None)
            raise NotFoundError("sandbox", sandbox_id) from None
        version = (st.st_ino, st.st_mtime_ns, st.st_size)
        cached = self._sandbox_cache.get(sandbox_id)
        if cached is not None and cached[0] == version:
            return cached[1]
        data = read_json(path)
        if data is None:
            raise NotFoundError("sandbox", sandbox_id)
        sandbox = PodSandbox(id=data["id"], config=PodSandboxConfig(**data["config"]),
                             state=SandboxState(data["state"]),
                             created_at=timestamp(data["created_at"]) or datetime.now(UTC),
                             ip=data.get("ip", ""))
        self._sandbox_cache[sandbox_id] = (version, sandbox)
        return sandbox

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        path = self._sandboxes / sandbox_id / "sandbox.json"
        data = read_json(path)
        if data is None:
            return
        for c in await self.list_containers(sandbox_id):
            if c.state == ContainerState.RUNNING:
                await self.stop_container(c.id, 0)
        data["state"] = SandboxState.NOTREADY.value
        write_json_atomic(path, data)

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        await self.stop_pod_sandbox(sandbox_id)
        for c in await self.list_containers(sandbox_id):
            await self.remove_container(c.id)
        shutil.rmtree(self._sandboxes / sandbox_id, ignore_errors=True)

    async def pod_sandbox_status(self, sandbox_id: str) -> PodSandbox:
        return self._sandbox(sandbox_id)

    async def list_pod_sandboxes(self) -> list[PodSandbox]:
        out = []
        for sdir in sorted(self._sandboxes.iterdir()):
            with contextlib.suppress(NotFoundError, TypeError, KeyError, ValueError):
                out.append(self._sandbox(sdir.name))
        return out

    # ---- images ---------------------------------------------------------------------------

    async def image_status(self, image: str) -> str | None:
        """Every image is "present": nothing is ever pulled."""
        return image

    async def garbage_collect_images(self, high_threshold_percent: int,
                                     low_threshold_percent: int, min_age: float) -> list[str]:
        return []

    async def pull_image(self, image: str) -> str:
        """Nothing to pull: the process runtime runs host binaries. The image name is kept
        only so statuses show what the user asked for."""
        return image

    # ---- containers -----------------------------------------------------------------------

    async def create_container(self, sandbox_id: str, config: ContainerConfig) -> str:
        sandbox = self._sandbox(sandbox_id)
        if not config.command:
            raise RuntimeOperationError(
                "CreateContainerError",
                f"container {config.name!r} has no command: the process runtime (no isolation) "
                "runs host commands and cannot use an image's entrypoint; set `command`")
        if config.mounts and not self.can_mount:
            raise RuntimeOperationError(
                "CreateContainerError",
                f"container {config.name!r} mounts volumes, which the process runtime can only "
                "do as root (a private mount namespace per container)")
        container_id = uuid.uuid4().hex
        cdir = self._containers / container_id
        cdir.mkdir(parents=True)
        # The sandbox's index of its containers: listing one pod reads only its own.
        (self._sandboxes / sandbox_id / f"c.{container_id}").touch()
        log_dir = sandbox.config.log_directory or str(cdir)
        log_path = os.path.join(log_dir, config.log_path or f"{config.name}/{config.attempt}.log")
        hostname = sandbox.config.hostname or sandbox.config.name
        env = {"PATH": DEFAULT_PATH, "HOSTNAME": hostname, "HOME": "/root", **config.env}
        write_json_atomic(cdir / "config.json", {
            "id": container_id, "sandbox_id": sandbox_id, "name": config.name,
            "attempt": config.attempt, "image": config.image,
            "argv": [*config.command, *config.args], "env": env,
            "working_dir": config.working_dir, "hostname": hostname,
            "uts_namespace": self.can_mount and bool(hostname),
            "mounts": [asdict(m) for m in config.mounts],
            "resources": asdict(config.resources), "log_path": log_path,
            "log_max_size": self.log_max_size, "log_max_files": self.log_max_files,
            "stdin": config.stdin, "stdin_once": config.stdin_once, "tty": config.tty,
            "cgroup_parent": sandbox.config.cgroup_parent or f"pyk8s/pod{sandbox.config.pod_uid}",
            "labels": dict(config.labels), "annotations": dict(config.annotations),
            "created_at": datetime.now(UTC).timestamp()})
        return container_id

    def _cdir(self, container_id: str) -> Path:
        cdir = self._containers / container_id
        if not (cdir / "config.json").exists():
            raise NotFoundError("container", container_id)
        return cdir

    async def start_container(self, container_id: str) -> None:
        cdir = self._cdir(container_id)
        if (cdir / "state.json").exists() or (cdir / "shim.pid").exists():
            raise RuntimeOperationError("RunContainerError",
                                        f"container {container_id} was already started")
        # From a thread: the zygote round trip blocks, and a cold start's subprocess uses
        # vfork there, where uvloop's own spawn forks the whole kubelet process.
        await asyncio.to_thread(self._launch_shim, cdir)
        for _ in range(int(30 / self.poll_interval)):
            if (cdir / "state.json").exists():
                return
            await asyncio.sleep(self.poll_interval)
        raise RuntimeOperationError("RunContainerError",
                                    f"the supervisor of {container_id} did not start")

    def _launch_shim(self, cdir: Path) -> None:
        """Fork the supervisor from the zygote; returns once it is detached."""
        zygote.launch(SHIM_MODULE, cdir, python=self.python,
                      env={**os.environ,
                           "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)})

    def _read_cached(self, path: Path) -> dict[str, Any] | None:
        """A state file parsed once per version (kubelets re-read every container every
        second); callers must not change what they get."""
        try:
            st = os.stat(path)
        except OSError:
            self._file_cache.pop(str(path), None)
            return None
        version = (st.st_ino, st.st_mtime_ns, st.st_size)
        cached = self._file_cache.get(str(path))
        if cached is not None and cached[0] == version:
            return cached[1]
        data = read_json(path)
        if data is not None:
            self._file_cache[str(path)] = (version, data)
        return data

    def _alive(self, cdir: Path) -> bool:
        return self._supervisors.alive(cdir)

    def _status(self, cdir: Path) -> ContainerStatus:
        config = self._read_cached(cdir / "config.json")
        if config is None:
            raise NotFoundError("container", cdir.name)
        state = dict(self._read_cached(cdir / "state.json") or {})
        status = state.get("status", "created")
        kind = {"created": ContainerState.CREATED, "running": ContainerState.RUNNING,
                "exited": ContainerState.EXITED}.get(status, ContainerState.UNKNOWN)
        reason, message = state.get("reason", ""), state.get("message", "")
        exit_code = state.get("exit_code", 0)
        finished = timestamp(state.get("finished_at"))
        if kind == ContainerState.RUNNING and not self._alive(cdir):
            # The supervisor died (host reboot, kill -9): the container goes with it.
            kind, exit_code, reason = ContainerState.EXITED, 255, "Unknown"
            message = "the container's supervisor is gone"
            finished = datetime.now(UTC)
            _reap_orphan(cdir, state, finished)
        return ContainerStatus(
            id=config["id"], sandbox_id=config["sandbox_id"], name=config["name"],
            attempt=config["attempt"], state=kind, image=config["image"],
            image_ref=config["image"], created_at=timestamp(config["created_at"]) or datetime.now(UTC),
            started_at=timestamp(state.get("started_at")), finished_at=finished,
            exit_code=exit_code, reason=reason, message=message, log_path=config["log_path"],
            labels=config.get("labels", {}), annotations=config.get("annotations", {}))

    async def container_status(self, container_id: str) -> ContainerStatus:
        return self._status(self._cdir(container_id))

    async def list_containers(self, sandbox_id: str | None = None) -> list[ContainerStatus]:
        if sandbox_id is None:
            dirs = sorted(self._containers.iterdir())
        else:
            try:
                entries = sorted(p.name for p in (self._sandboxes / sandbox_id).iterdir())
            except FileNotFoundError:
                return []
            dirs = [self._containers / e[2:] for e in entries if e.startswith("c.")]
        out = []
        for cdir in dirs:
            try:
                status = self._status(cdir)
            except (NotFoundError, KeyError, TypeError):
                continue
            if sandbox_id is None or status.sandbox_id == sandbox_id:
                out.append(status)
        return out

    def _signal(self, cdir: Path, sig: int) -> None:
        state = read_json(cdir / "state.json") or {}
        if state.get("status") != "running" or not _shim_alive(cdir):
            return
        with contextlib.suppress(OSError):
            os.killpg(state["pgid"], sig)
        for pid in cgroups.CgroupSet.from_json(state.get("cgroups")).pids():
            with contextlib.suppress(OSError):
                os.kill(pid, sig)

    async def stop_container(self, container_id: str, timeout: float) -> None:
        cdir = self._cdir(container_id)
        loop = asyncio.get_running_loop()
        if timeout > 0:
            self._signal(cdir, signal.SIGTERM)
            deadline = loop.time() + timeout
            while loop.time() < deadline:
                if self._status(cdir).state != ContainerState.RUNNING:
                    return
                await asyncio.sleep(self.poll_interval)
        for _ in range(int(10 / self.poll_interval)):
            if self._status(cdir).state != ContainerState.RUNNING:
                return
            self._signal(cdir, signal.SIGKILL)
            await asyncio.sleep(self.poll_interval)
        raise RuntimeOperationError("StopContainerError",
                                    f"container {container_id} did not stop after SIGKILL")

    async def remove_container(self, container_id: str) -> None:
        cdir = self._containers / container_id
        if not cdir.exists():
            return
        status = self._status(cdir)
        if status.state == ContainerState.RUNNING:
            await self.stop_container(container_id, 0)
        for path in [status.log_path, *rotated_logs(status.log_path)]:
            with contextlib.suppress(OSError):
                os.unlink(path)  # as CRI runtimes do on RemoveContainer
        with contextlib.suppress(OSError):
            (self._sandboxes / status.sandbox_id / f"c.{container_id}").unlink()
        shutil.rmtree(cdir, ignore_errors=True)
        self._supervisors.forget(container_id)
        for name in ("config.json", "state.json"):
            self._file_cache.pop(str(cdir / name), None)

    # ---- exec and stats -------------------------------------------------------------------

    async def exec(self, container_id: str, command: Sequence[str], *,
                   stdin: bool = False, tty: bool = False) -> ExecProcess:
        cdir = self._cdir(container_id)
        config = read_json(cdir / "config.json") or {}
        state = read_json(cdir / "state.json") or {}
        if self._status(cdir).state != ContainerState.RUNNING:
            raise RuntimeOperationError("ContainerNotRunning",
                                        f"container {container_id} is not running")
        argv = list(command)
        workdir = config.get("working_dir") or "/"
        cwd: str | None = workdir
        namespaces = [flag for key, flag in (("mount_namespace", "--mount"),
                                             ("uts_namespace", "--uts")) if state.get(key)]
        if namespaces:
            # Join the container's namespaces: volumes where it sees them, its hostname.
            argv = ["nsenter", f"--target={state['pid']}", *namespaces, f"--wd={workdir}", "--",
                    *argv]
            cwd = None
        if not argv:
            raise RuntimeOperationError("ExecError", "no command given")
        env = config.get("env") or {}
        workdir_ok = cwd if cwd and os.path.isdir(cwd) else None
        try:
            if tty:
                master, slave = os.openpty()
                try:
                    proc = await asyncio.create_subprocess_exec(
                        *argv, stdin=slave, stdout=slave, stderr=slave,
                        env={**env, "TERM": env.get("TERM", "xterm")}, cwd=workdir_ok,
                        start_new_session=True, preexec_fn=controlling_terminal(slave))
                finally:
                    os.close(slave)
                return ExecSession(proc, master)
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                env=env, cwd=workdir_ok, start_new_session=True)
        except OSError as exc:
            raise RuntimeOperationError("ExecError", f"exec {command[0]!r}: {exc.strerror}") \
                from None
        return ExecSession(proc)

    async def attach(self, container_id: str, *, stdin: bool, tty: bool) -> ExecProcess:
        """Through the container's attach socket, served by its supervisor (a terminal, if
        the container has one, is the supervisor's: ``tty`` changes nothing here)."""
        cdir = self._cdir(container_id)
        if self._status(cdir).state != ContainerState.RUNNING:
            raise RuntimeOperationError("ContainerNotRunning",
                                        f"container {container_id} is not running")
        return await attach(cdir, container_id, stdin)

    async def exec_sync(self, container_id: str, command: Sequence[str],
                        timeout: float) -> ExecResult:
        proc = await self.exec(container_id, command)
        assert isinstance(proc, ExecSession)
        try:
            out, err = await asyncio.wait_for(proc.proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return ExecResult(-1, b"", b"", timed_out=True)
        code = proc.proc.returncode or 0
        return ExecResult(128 - code if code < 0 else code, out, err)

    async def container_stats(self, container_id: str) -> ContainerStats:
        cdir = self._cdir(container_id)
        state = read_json(cdir / "state.json") or {}
        cg = cgroups.CgroupSet.from_json(state.get("cgroups"))
        cpu = cg.cpu_usage_ns()
        mem = cg.memory()
        if (cpu is None or mem is None) and state.get("status") == "running":
            cpu_proc, rss = _proc_group_usage(state["pgid"])
            cpu = cpu if cpu is not None else cpu_proc
            mem = mem if mem is not None else (rss, rss)
        usage, working = mem or (0, 0)
        return ContainerStats(container_id, datetime.now(UTC), cpu or 0, working, usage)

    async def port_forward(self, sandbox_id: str, port: int
                           ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """The pod's network is the host's: a connection to the host's loopback, where a
        server inside a pod that binds 127.0.0.1 is reachable too (as from inside a pod's
        own network namespace)."""
        sandbox = self._sandbox(sandbox_id)
        if sandbox.state != SandboxState.READY:
            raise RuntimeOperationError("PortForwardError",
                                        f"sandbox {sandbox_id} is not ready")
        try:
            return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
        except (OSError, TimeoutError) as exc:
            reason = os.strerror(exc.errno) if isinstance(exc, OSError) and exc.errno \
                else "timed out"
            raise RuntimeOperationError(
                "PortForwardError", f"failed to connect to localhost:{port} inside namespace "
                f"of sandbox {sandbox_id[:12]}: {reason}") from None

    async def close(self) -> None:
        return None


def _reap_orphan(cdir: Path, state: dict[str, Any], finished: datetime) -> None:
    """Kill what is left of a container whose supervisor died (its cgroup members; the main
    process already got SIGKILL through PDEATHSIG) and record the exit for good."""
    cg = cgroups.CgroupSet.from_json(state.get("cgroups"))
    for pid in cg.pids():
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    cg.remove()
    state.update(status="exited", exit_code=255, reason="Unknown",
                 message="the container's supervisor is gone", finished_at=finished.timestamp())
    with contextlib.suppress(OSError):
        write_json_atomic(cdir / "state.json", state)


def _proc_group_usage(pgid: int) -> tuple[int, int]:
    """(cpu ns, rss bytes) summed over a process group, from /proc (no cgroups)."""
    ticks = os.sysconf("SC_CLK_TCK")
    page = os.sysconf("SC_PAGE_SIZE")
    cpu_ns = rss = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if int(fields[2]) != pgid:
            continue
        cpu_ns += (int(fields[11]) + int(fields[12])) * 1_000_000_000 // ticks
        rss += int(fields[21]) * page
    return cpu_ns, rss
