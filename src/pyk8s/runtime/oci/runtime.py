"""The ``oci`` runtime: containers from images, isolated by runc.

Per pod, a sandbox pins network/IPC/UTS namespaces (:mod:`.sandbox`); per container, an OCI
bundle under the container's directory: ``bundle/config.json`` (:mod:`.spec`) and
``bundle/rootfs``, an overlayfs whose lower dirs are the image's unpacked layers (shared,
read-only, from :mod:`pyk8s.runtime.images`) and whose upper dir is the container's own.
Each started container has a supervisor (:mod:`.shim`) that outlives the kubelet; this
object only reads and writes files, so a new instance over the same ``state_dir``
re-adopts everything, as with the process runtime.

Cgroups: runc creates the container's under an absolute ``cgroupsPath``
(``/<cgroup_parent or pyk8s/pod<uid>>/<container id>``) and removes it on delete; the pod
level is removed here with the sandbox (runc leaves parents behind).

State: ``state_dir/runc`` (runc's ``--root``), ``sandboxes/<id>/`` and
``containers/<id>/``. Requires root, runc and overlayfs (and the CNI plugins with
``network="cni"``). hostPorts go through CNI ``portmap`` (:mod:`.cni`; the mappings and the
CNI result are kept in ``sandbox.json`` for DEL); securityContext is applied by
:mod:`.spec` and :mod:`.seccomp`. Not yet: pids limits, host devices for privileged
containers.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pyk8s.runtime import zygote
from pyk8s.runtime.images import ImageStore
from pyk8s.runtime.images.errors import ImageError, ImageNotFound
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
    PortMapping,
    RuntimeInfo,
    RuntimeOperationError,
    SandboxState,
)
from pyk8s.runtime.oci import sandbox as sandboxes
from pyk8s.runtime.oci import spec
from pyk8s.runtime.oci.cni import Cni, CniConfig, ensure_masquerade, pod_ip
from pyk8s.runtime.oci.shim import runc_base, runc_error
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

log = logging.getLogger("pyk8s.runtime.oci")
T = TypeVar("T")
VERSION = "0.1"
SHIM_MODULE = "pyk8s.runtime.oci.shim"
CLONE_NEWNET = 0x40000000


def _shim_alive(cdir: Path) -> bool:
    return supervisor_alive(cdir, SHIM_MODULE)


def _is_mounted(path: Path) -> bool:
    target = str(path).encode()
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_bytes().splitlines():
            if line.split(b" ")[4] == target:
                return True
    return False


class OciRuntime:
    """See the module docstring. ``images``: the image store (default one under
    ``image_root``); ``network``: ``cni`` (own namespace and IP on the node's bridge,
    :mod:`.cni`), ``isolated`` (own namespace, loopback only) or ``host``."""

    def __init__(self, state_dir: str | Path, *, images: ImageStore | None = None,
                 image_root: str | Path = "/var/lib/pyk8s/images", runc: str = "runc",
                 network: str = "isolated", cni: CniConfig | None = None,
                 host_ip: str = "127.0.0.1",
                 python: str = sys.executable, poll_interval: float = 0.01,
                 log_max_size: int = 10 * 1024 * 1024, log_max_files: int = 5) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.images = images or ImageStore(image_root)
        found = shutil.which(runc)
        if found is None:
            raise RuntimeOperationError("RuntimeUnavailable", f"{runc!r} not found: the oci "
                                        "runtime needs runc (Debian: apt-get install runc)")
        self.runc = found
        if network not in ("cni", "isolated", "host"):
            raise ValueError(f"network must be cni, isolated or host, not {network!r}")
        self.network = network
        self.host_ip = host_ip
        self.python = python
        self.poll_interval = poll_interval
        self.log_max_size = log_max_size
        self.log_max_files = log_max_files
        self._runc_root = self.state_dir / "runc"
        self._supervisors = zygote.Supervisors(SHIM_MODULE)
        self._executor = ThreadPoolExecutor(16, thread_name_prefix="oci")
        self._sandboxes = self.state_dir / "sandboxes"
        self._containers = self.state_dir / "containers"
        for d in (self._runc_root, self._sandboxes, self._containers):
            d.mkdir(parents=True, exist_ok=True)
        self._cni = Cni(cni or CniConfig(), self.state_dir / "cni") if network == "cni" \
            else None
        self._network_ready = cni is not None or network != "cni"
        if self._cni is not None and cni is not None and cni.ip_masq:
            ensure_masquerade(cni.subnet)
        """With ``cni`` and no explicit config, pods wait for :meth:`update_pod_cidr`."""

    def info(self) -> RuntimeInfo:
        return RuntimeInfo("oci", f"oci://{VERSION}",
                           f"runc containers (own PID and mount namespaces, pod network: "
                           f"{self.network})")

    async def _runc(self, *args: str, log: Path | None = None) -> tuple[int, bytes]:
        log = log or self.state_dir / "runc.log"
        proc = await asyncio.create_subprocess_exec(
            *runc_base({"runc": self.runc, "runc_root": str(self._runc_root)}, log), *args,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
        out, _ = await proc.communicate()
        return proc.returncode or 0, out

    async def update_pod_cidr(self, cidr: str) -> None:
        if self._cni is None or not cidr:
            return
        if cidr != self._cni.config.subnet:
            self._cni.config = replace(self._cni.config, subnet=cidr)
        if self._cni.config.ip_masq and not await self._in_thread(ensure_masquerade, cidr):
            log.warning("could not add the masquerade rule for %s (iptables): pods reach "
                        "only the node and each other", cidr)
        self._network_ready = True

    async def _in_thread(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Blocking set-up work (namespaces, CNI plugins, overlay mounts) in the runtime's
        own threads: many sandboxes start at once, and the event loop's default pool has
        only a handful."""
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, functools.partial(func, *args, **kwargs))

    # ---- sandboxes ------------------------------------------------------------------------

    async def run_pod_sandbox(self, config: PodSandboxConfig) -> str:
        sandbox_id = uuid.uuid4().hex
        sdir = self._sandboxes / sandbox_id
        sdir.mkdir(parents=True)
        if config.log_directory:
            Path(config.log_directory).mkdir(parents=True, exist_ok=True)
        hostname = config.hostname or config.name
        network = "host" if config.host_network else self.network
        cni = self._cni if network == "cni" else None
        if cni is not None and not self._network_ready:
            shutil.rmtree(sdir, ignore_errors=True)
            raise RuntimeOperationError(
                "NetworkNotReady", "network is not ready: container runtime network not "
                "ready: NetworkReady=false reason:NetworkPluginNotReady message:the node has "
                "no pod CIDR yet (spec.podCIDR; the controller manager's nodeipam controller "
                "assigns one)")
        try:
            namespaces = await self._in_thread(sandboxes.create, sdir, hostname,
                                                 network=network, python=self.python)
            ip = self.host_ip if network == "host" else ""
            cni_result: dict[str, Any] = {}
            if cni is not None:
                try:
                    cni_result = await self._in_thread(
                        cni.add, sandbox_id, namespaces["network"], config.port_mappings)
                    ip = pod_ip(cni_result)
                except RuntimeOperationError:
                    with contextlib.suppress(RuntimeOperationError):
                        await self._in_thread(cni.delete, sandbox_id, namespaces["network"],
                                                config.port_mappings, cni_result)
                    sandboxes.remove(sdir)
                    raise
                sandboxes.write_hosts(sdir, hostname, ip)
        except BaseException:
            shutil.rmtree(sdir, ignore_errors=True)
            raise
        parent = (config.cgroup_parent or f"pyk8s/pod{config.pod_uid}").strip("/")
        write_json_atomic(sdir / "sandbox.json", {
            "id": sandbox_id, "config": asdict(config), "state": SandboxState.READY.value,
            "created_at": datetime.now(UTC).timestamp(), "namespaces": namespaces,
            "hostname": hostname, "cgroup_parent": parent, "ip": ip,
            "cni": cni is not None, "cni_result": cni_result})
        return sandbox_id

    def _sandbox_data(self, sandbox_id: str) -> dict[str, Any]:
        data = read_json(self._sandboxes / sandbox_id / "sandbox.json")
        if data is None:
            raise NotFoundError("sandbox", sandbox_id)
        return data

    def _sandbox(self, sandbox_id: str) -> PodSandbox:
        data = self._sandbox_data(sandbox_id)
        config = {**data["config"], "port_mappings": tuple(
            PortMapping(**p) for p in data["config"].get("port_mappings") or ())}
        return PodSandbox(id=data["id"], config=PodSandboxConfig(**config),
                          state=SandboxState(data["state"]),
                          created_at=timestamp(data["created_at"]) or datetime.now(UTC),
                          ip=data.get("ip", ""))

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        path = self._sandboxes / sandbox_id / "sandbox.json"
        data = read_json(path)
        if data is None:
            return
        for c in await self.list_containers(sandbox_id):
            if c.state == ContainerState.RUNNING:
                await self.stop_container(c.id, 0)
        if data.get("cni") and self._cni is not None:
            # Before the namespace goes: the plugin frees the IP and the veth either way.
            # The hostPorts and the ADD result as stored: DEL needs the same runtimeConfig.
            mappings = [PortMapping(**p) for p in data["config"].get("port_mappings") or ()]
            await self._in_thread(self._cni.delete, sandbox_id,
                                    data["namespaces"]["network"], mappings,
                                    data.get("cni_result"))
            data["cni"] = False
            write_json_atomic(path, data)
        sandboxes.remove(self._sandboxes / sandbox_id)
        data["state"] = SandboxState.NOTREADY.value
        write_json_atomic(path, data)

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        data = read_json(self._sandboxes / sandbox_id / "sandbox.json")
        await self.stop_pod_sandbox(sandbox_id)
        for c in await self.list_containers(sandbox_id):
            await self.remove_container(c.id)
        if data is not None:
            _remove_cgroup_parents(data.get("cgroup_parent", ""))
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
        try:
            return self.images.get(image).repo_digest
        except ImageNotFound:
            return None
        except ImageError as exc:
            raise RuntimeOperationError("InvalidImageName", exc.message) from None

    async def pull_image(self, image: str) -> str:
        try:
            found = await self.images.ensure(image, "Always")
        except ImageError as exc:
            raise RuntimeOperationError("ErrImagePull", exc.message) from None
        return found.repo_digest

    async def garbage_collect_images(self, high_threshold_percent: int,
                                     low_threshold_percent: int, min_age: float) -> list[str]:
        from pyk8s.runtime.images.diskgc import ImageGcPolicy, free_space

        in_use = set()
        for cdir in self._containers.iterdir():
            meta = read_json(cdir / "container.json")
            if meta is not None:
                in_use.update((meta.get("image_id", ""), meta.get("image", "")))
        policy = ImageGcPolicy(high_threshold_percent, low_threshold_percent, min_age)
        result = await asyncio.to_thread(free_space, self.images, in_use, policy=policy)
        return result.removed

    # ---- containers -----------------------------------------------------------------------

    async def create_container(self, sandbox_id: str, config: ContainerConfig) -> str:
        sb = self._sandbox_data(sandbox_id)
        if sb["state"] != SandboxState.READY.value:
            raise RuntimeOperationError("CreateContainerError",
                                        f"sandbox {sandbox_id} is not ready")
        try:
            image = self.images.get(config.image)
        except ImageNotFound:
            raise RuntimeOperationError(
                "CreateContainerError", f'image "{config.image}" is not present: pull it '
                "first") from None
        container_id = uuid.uuid4().hex
        cdir = self._containers / container_id
        cdir.mkdir(parents=True)
        (self._sandboxes / sandbox_id / f"c.{container_id}").touch()
        pod_config = sb["config"]
        log_dir = pod_config.get("log_directory") or str(cdir)
        log_path = os.path.join(log_dir, config.log_path or f"{config.name}/{config.attempt}.log")
        cgroups_path = f"/{sb['cgroup_parent']}/{container_id}"
        meta = {
            "id": container_id, "sandbox_id": sandbox_id, "name": config.name,
            "attempt": config.attempt, "image": config.image, "image_ref": image.repo_digest,
            "image_id": image.id, "log_path": log_path, "cgroups_path": cgroups_path,
            "labels": dict(config.labels), "annotations": dict(config.annotations),
            "created_at": datetime.now(UTC).timestamp()}
        write_json_atomic(cdir / "container.json", meta)
        try:
            await self._in_thread(self._prepare_bundle, cdir, image, config, sb, cgroups_path)
        except (ImageError, RuntimeOperationError) as exc:
            await self.remove_container(container_id)
            reason = exc.reason if exc.reason == "CreateContainerConfigError" \
                else "CreateContainerError"  # runAsNonRoot refusals keep their reason
            raise RuntimeOperationError(reason, exc.message) from None
        except OSError as exc:
            await self.remove_container(container_id)
            raise RuntimeOperationError("CreateContainerError",
                                        f"cannot prepare the container: {exc}") from None
        write_json_atomic(cdir / "shim.json", {
            "id": container_id, "runc": self.runc, "runc_root": str(self._runc_root),
            "bundle": str(cdir / "bundle"), "log_path": log_path,
            "log_max_size": self.log_max_size, "log_max_files": self.log_max_files,
            "stdin": config.stdin, "stdin_once": config.stdin_once, "tty": config.tty,
            "cgroups": {k: str(v / cgroups_path.lstrip("/"))
                        for k, v in cgroups.v1_mounts().items()}})
        return container_id

    def _prepare_bundle(self, cdir: Path, image: Any, config: ContainerConfig,
                        sb: dict[str, Any], cgroups_path: str) -> None:
        image_config = self.images.image_config(image)
        self.images.lease(cdir.name, image)
        lowers = self.images.layer_dirs(image)
        bundle = cdir / "bundle"
        rootfs = bundle / "rootfs"
        for d in (rootfs, cdir / "upper", cdir / "work"):
            d.mkdir(parents=True, exist_ok=True)
        _mount_overlay(lowers, cdir / "upper", cdir / "work", rootfs)
        pod = spec.PodContext(hostname=sb["hostname"], namespaces=sb["namespaces"],
                              etc_files=sandboxes.etc_files(self._sandboxes / sb["id"]),
                              cgroups_path=cgroups_path, pod="{name}_{namespace}({pod_uid})"
                              .format(**sb["config"]))
        document = spec.build(config, image_config, pod, rootfs)
        (bundle / "config.json").write_text(json.dumps(document, indent=1))

    def _cdir(self, container_id: str) -> Path:
        cdir = self._containers / container_id
        if not (cdir / "container.json").exists():
            raise NotFoundError("container", container_id)
        return cdir

    async def start_container(self, container_id: str) -> None:
        cdir = self._cdir(container_id)
        if (cdir / "state.json").exists() or (cdir / "shim.pid").exists():
            raise RuntimeOperationError("RunContainerError",
                                        f"container {container_id} was already started")
        await asyncio.to_thread(
            zygote.launch, SHIM_MODULE, cdir, python=self.python,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)})
        for _ in range(int(30 / self.poll_interval)):
            state = read_json(cdir / "state.json")
            if state is not None and state.get("status") != "created":
                if state.get("reason") == "StartError":
                    raise RuntimeOperationError("RunContainerError",
                                                state.get("message") or "runc failed")
                return
            await asyncio.sleep(self.poll_interval)
        raise RuntimeOperationError("RunContainerError",
                                    f"the supervisor of {container_id} did not start")

    def _status(self, cdir: Path) -> ContainerStatus:
        meta = read_json(cdir / "container.json")
        if meta is None:
            raise NotFoundError("container", cdir.name)
        state = read_json(cdir / "state.json") or {}
        kind = {"created": ContainerState.CREATED, "running": ContainerState.RUNNING,
                "exited": ContainerState.EXITED}.get(state.get("status", "created"),
                                                     ContainerState.UNKNOWN)
        reason, message = state.get("reason", ""), state.get("message", "")
        exit_code = state.get("exit_code", 0)
        finished = timestamp(state.get("finished_at"))
        if kind == ContainerState.RUNNING and not self._supervisors.alive(cdir):
            kind, exit_code, reason = ContainerState.EXITED, 255, "Unknown"
            message = "the container's supervisor is gone"
            finished = datetime.now(UTC)
        return ContainerStatus(
            id=meta["id"], sandbox_id=meta["sandbox_id"], name=meta["name"],
            attempt=meta["attempt"], state=kind, image=meta["image"],
            image_ref=meta.get("image_ref", meta["image"]),
            created_at=timestamp(meta["created_at"]) or datetime.now(UTC),
            started_at=timestamp(state.get("started_at")), finished_at=finished,
            exit_code=exit_code, reason=reason, message=message, log_path=meta["log_path"],
            labels=meta.get("labels", {}), annotations=meta.get("annotations", {}))

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
            with contextlib.suppress(NotFoundError, KeyError, TypeError):
                status = self._status(cdir)
                if sandbox_id is None or status.sandbox_id == sandbox_id:
                    out.append(status)
        return out

    async def _kill(self, cdir: Path, sig: signal.Signals) -> None:
        await self._runc("kill", cdir.name, sig.name.removeprefix("SIG"),
                         log=cdir / "runc-kill.log")

    async def stop_container(self, container_id: str, timeout: float) -> None:
        cdir = self._cdir(container_id)
        loop = asyncio.get_running_loop()
        if self._status(cdir).state != ContainerState.RUNNING:
            return
        if timeout > 0:
            await self._kill(cdir, signal.SIGTERM)
            deadline = loop.time() + timeout
            while loop.time() < deadline:
                if self._status(cdir).state != ContainerState.RUNNING:
                    return
                await asyncio.sleep(self.poll_interval)
        for i in range(int(10 / self.poll_interval)):
            if self._status(cdir).state != ContainerState.RUNNING:
                return
            if i % 20 == 0:
                await self._kill(cdir, signal.SIGKILL)
            await asyncio.sleep(self.poll_interval)
        raise RuntimeOperationError("StopContainerError",
                                    f"container {container_id} did not stop after SIGKILL")

    async def remove_container(self, container_id: str) -> None:
        cdir = self._containers / container_id
        if not cdir.exists():
            return
        meta = read_json(cdir / "container.json") or {}
        with contextlib.suppress(NotFoundError):
            if self._status(cdir).state == ContainerState.RUNNING:
                await self.stop_container(container_id, 0)
        for _ in range(int(5 / self.poll_interval)):  # the shim deletes runc's state last
            if not _shim_alive(cdir):
                break
            await asyncio.sleep(self.poll_interval)
        self._supervisors.forget(container_id)
        await self._runc("delete", "--force", container_id, log=cdir / "runc-delete.log")
        rootfs = cdir / "bundle" / "rootfs"
        if _is_mounted(rootfs):
            _umount(rootfs)
        self.images.release(container_id)
        log_path = meta.get("log_path", "")
        if log_path:
            for path in [log_path, *rotated_logs(log_path)]:
                with contextlib.suppress(OSError):
                    os.unlink(path)
        if meta.get("sandbox_id"):
            with contextlib.suppress(OSError):
                (self._sandboxes / meta["sandbox_id"] / f"c.{container_id}").unlink()
        shutil.rmtree(cdir, ignore_errors=True)

    # ---- exec, stats, port-forward --------------------------------------------------------

    async def exec(self, container_id: str, command: Sequence[str], *,
                   stdin: bool = False, tty: bool = False) -> ExecProcess:
        cdir = self._cdir(container_id)
        if self._status(cdir).state != ContainerState.RUNNING:
            raise RuntimeOperationError("ContainerNotRunning",
                                        f"container {container_id} is not running")
        if not command:
            raise RuntimeOperationError("ExecError", "no command given")
        argv = [*runc_base({"runc": self.runc, "runc_root": str(self._runc_root)},
                           cdir / "runc-exec.log"), "exec", *(["--tty"] if tty else []),
                container_id, *command]
        try:
            if tty:
                master, slave = os.openpty()
                try:
                    proc = await asyncio.create_subprocess_exec(
                        *argv, stdin=slave, stdout=slave, stderr=slave,
                        start_new_session=True, preexec_fn=controlling_terminal(slave))
                finally:
                    os.close(slave)
                return ExecSession(proc, master)
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                start_new_session=True)
        except OSError as exc:
            raise RuntimeOperationError("ExecError", f"runc exec: {exc.strerror}") from None
        return ExecSession(proc)

    async def attach(self, container_id: str, *, stdin: bool, tty: bool) -> ExecProcess:
        """Through the attach socket of the container's supervisor. Containers get no
        terminal here (runc's ``--console-socket`` is not wired): a ``tty`` is refused."""
        cdir = self._cdir(container_id)
        if self._status(cdir).state != ContainerState.RUNNING:
            raise RuntimeOperationError("ContainerNotRunning",
                                        f"container {container_id} is not running")
        if tty:
            raise RuntimeOperationError(
                "AttachError", "the oci runtime does not give containers a terminal "
                "(tty: true) yet, so it cannot attach to one")
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
        if code == 255 and not out:  # runc itself failed (no such executable, ...)
            message = runc_error(self._cdir(container_id) / "runc-exec.log")
            err = err or message.encode()
        return ExecResult(128 - code if code < 0 else code, out, err)

    async def container_stats(self, container_id: str) -> ContainerStats:
        cdir = self._cdir(container_id)
        conf = read_json(cdir / "shim.json") or {}
        cg = cgroups.CgroupSet({k: Path(v) for k, v in conf.get("cgroups", {}).items()})
        usage, working = cg.memory() or (0, 0)
        return ContainerStats(container_id, datetime.now(UTC), cg.cpu_usage_ns() or 0,
                              working, usage)

    async def port_forward(self, sandbox_id: str, port: int
                           ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A TCP connection to ``localhost:port`` inside the pod's network namespace: a
        thread enters the namespace (``setns`` is per thread), makes the socket, leaves."""
        data = self._sandbox_data(sandbox_id)
        netns = data.get("namespaces", {}).get("network")
        try:
            if netns is None:
                return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
            sock = await asyncio.to_thread(_connect_in_netns, netns, port)
            return await asyncio.open_connection(sock=sock)
        except (OSError, TimeoutError) as exc:
            reason = os.strerror(exc.errno) if isinstance(exc, OSError) and exc.errno \
                else "timed out"
            raise RuntimeOperationError(
                "PortForwardError", f"failed to connect to localhost:{port} inside namespace "
                f"of sandbox {sandbox_id[:12]}: {reason}") from None

    async def close(self) -> None:
        self._executor.shutdown(wait=False)


def _connect_in_netns(netns: str, port: int) -> socket.socket:
    libc = ctypes.CDLL(None, use_errno=True)
    result: list[Any] = []

    def work() -> None:  # a fresh thread: its namespace change dies with it
        try:
            fd = os.open(netns, os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
            finally:
                os.close(fd)
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.setblocking(False)
            result.append(sock)
        except OSError as exc:
            result.append(exc)

    thread = threading.Thread(target=work, name="netns-connect")
    thread.start()
    thread.join()
    if isinstance(result[0], OSError):
        raise result[0]
    return result[0]  # type: ignore[no-any-return]


def _mount_overlay(lowers: list[Path], upper: Path, work: Path, target: Path) -> None:
    """Lower dirs are given relative to their common directory (the mount runs there), so
    many layers fit in the one page of mount options."""
    if not lowers:
        raise RuntimeOperationError("CreateContainerError", "the image has no layers")
    base = lowers[0].parent
    if all(p.parent == base for p in lowers):
        lowerdir = ":".join(p.name for p in reversed(lowers))
        cwd = str(base)
    else:
        lowerdir, cwd = ":".join(str(p) for p in reversed(lowers)), "/"
    options = f"lowerdir={lowerdir},upperdir={upper},workdir={work}"
    proc = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(target)],
                          cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeOperationError("CreateContainerError",
                                    f"cannot mount the container's rootfs: "
                                    f"{proc.stderr.strip()[-300:]}")


def _umount(path: Path) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.umount2(str(path).encode(), 2)  # MNT_DETACH


def _cgroup_mounts() -> list[Path]:
    """Every cgroup hierarchy (v1 and the unified one): runc creates the path in each."""
    out = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            pre, _, post = line.partition(" - ")
            if post.split(" ", 1)[0] in ("cgroup", "cgroup2"):
                out.append(Path(pre.split()[4]))
    return out


def _remove_cgroup_parents(parent: str) -> None:
    """runc leaves the pod's cgroup (and ours above it) behind: remove what is empty."""
    parts = [p for p in parent.split("/") if p]
    for mount in _cgroup_mounts():
        for depth in range(len(parts), 0, -1):
            try:
                (mount / "/".join(parts[:depth])).rmdir()
            except OSError:
                break
