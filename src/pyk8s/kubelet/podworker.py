"""One worker per pod (upstream ``pod_workers.go`` + ``SyncPod``/``computePodActions``).

Concurrency model: each pod UID gets one asyncio task that runs :meth:`PodWorker.sync`
whenever it is woken (a new version of the pod from the informer, a probe result that
changed) and at least every ``pod_resync_interval`` seconds (that re-read of the runtime is
what upstream's PLEG provides). Syncs of one pod never overlap; different pods never wait for
each other. Everything a sync decides is recomputed from the runtime's state and the latest
pod, so re-running it is always safe, and a worker rebuilt after a kubelet restart picks up
where the old one left off (same containers, same restart counts).

A sync, in order: deletion (kill with the grace period, final status, delete the pod with
grace 0) -- sandbox and volumes -- init containers one at a time -- app containers (start,
restart per restartPolicy with back-off, restart on liveness/startup failure) -- probes --
status (written to ``/status`` only when it changed).

Not done here: sidecar (restartable) init containers, lifecycle hooks, ephemeral
containers, activeDeadlineSeconds, in-place resize.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import shutil
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from pyk8s.client import ApiClient, ApiError, Informer
from pyk8s.client.clock import Clock
from pyk8s.kubelet import status as podstatus
from pyk8s.kubelet.backoff import Backoff, go_duration
from pyk8s.kubelet.envvars import (
    SERVICES,
    ConfigError,
    container_env,
    expand_command,
    parse_quantity,
    service_env,
)
from pyk8s.kubelet.events import EventRecorder
from pyk8s.kubelet.lifecycle import describe, pre_stop, run_hook
from pyk8s.kubelet.logs import LogOptions, read_log
from pyk8s.kubelet.prober import Kind, ProbeSpec, ProbeWorker, Result, run_probe
from pyk8s.kubelet.securitycontext import port_mappings_of, security_of
from pyk8s.kubelet.settings import KubeletSettings
from pyk8s.kubelet.volumes import VolumeError, VolumeManager
from pyk8s.machinery.meta import parse_rfc3339, rfc3339
from pyk8s.machinery.resources import CATALOGUE
from pyk8s.runtime import (
    ContainerConfig,
    ContainerState,
    ContainerStatus,
    Mount,
    PodSandboxConfig,
    Resources,
    Runtime,
    RuntimeOperationError,
    SandboxState,
)
from pyk8s.runtime.images.reference import default_pull_policy

log = logging.getLogger("pyk8s.kubelet.podworker")
PODS = CATALOGUE.resource("v1", "pods")
Obj = dict[str, Any]

LABEL_POD_UID = "io.kubernetes.pod.uid"
LABEL_POD_NAME = "io.kubernetes.pod.name"
LABEL_POD_NAMESPACE = "io.kubernetes.pod.namespace"
LABEL_CONTAINER_NAME = "io.kubernetes.container.name"
ANNOTATION_HASH = "io.kubernetes.container.hash"
TERMINAL = ("Succeeded", "Failed")


def container_hash(container: Obj) -> str:
    """What must not change under a running container (upstream ``HashContainer``; resources
    are left out since in-place resize does not restart)."""
    spec = {k: v for k, v in container.items() if k != "resources"}
    return hashlib.sha256(orjson.dumps(spec, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


@dataclass
class WorkerContext:
    """What every pod worker shares (the kubelet's parts a worker may use)."""

    client: ApiClient
    runtime: Runtime
    settings: KubeletSettings
    clock: Clock
    recorder: EventRecorder
    backoff: Backoff
    volumes: VolumeManager
    node_ip: str
    allocatable: dict[str, str] = field(default_factory=dict)
    services: Informer | None = None
    """All Services, for containers' service variables (upstream's service lister)."""


def pod_ref(pod: Obj) -> str:
    """Upstream ``format.Pod``: ``name_namespace(uid)``."""
    meta = pod["metadata"]
    return f"{meta['name']}_{meta.get('namespace', '')}({meta.get('uid', '')})"


def cgroup_parent(pod: Obj) -> str:
    """Upstream's cgroup layout by QoS class, under ``pyk8s`` rather than ``kubepods``:
    ``pyk8s/pod<uid>`` (Guaranteed), ``pyk8s/burstable/pod<uid>``,
    ``pyk8s/besteffort/pod<uid>``."""
    qos = (pod.get("status") or {}).get("qosClass") or "BestEffort"
    uid = pod["metadata"]["uid"]
    return f"pyk8s/pod{uid}" if qos == "Guaranteed" else f"pyk8s/{qos.lower()}/pod{uid}"


def resources_of(container: Obj, pids_limit: int = 0) -> Resources:
    limits = (container.get("resources") or {}).get("limits") or {}
    requests = (container.get("resources") or {}).get("requests") or {}
    memory = int(parse_quantity(limits["memory"])) if "memory" in limits else 0
    quota = 0
    if "cpu" in limits:
        quota = max(math.ceil(parse_quantity(limits["cpu"]) * 100_000), 1000)
    cpu_request = requests.get("cpu", limits.get("cpu"))
    shares = int(parse_quantity(cpu_request) * 1024) if cpu_request is not None else 0
    return Resources(memory_limit_bytes=memory, cpu_quota_us=quota, cpu_shares=shares,
                     pids_limit=max(pids_limit, 0))


class PodWorker:
    def __init__(self, ctx: WorkerContext, pod: Obj) -> None:
        self.ctx = ctx
        self.uid: str = pod["metadata"]["uid"]
        self.pod: Obj | None = pod
        self.last_pod: Obj = pod
        self.finished = False
        self.task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._sandbox_id: str | None = None
        self._pod_ip = ""
        """The sandbox's own address (CNI); empty: the node's (host network, process)."""
        self._sandbox_error = ""
        self._volume_paths: dict[str, str] | None = None
        self._waiting: dict[str, tuple[str, str]] = {}
        self._failed_at: dict[str, datetime] = {}
        self._backoff_reported: set[str] = set()
        self._termination_messages: dict[str, str] = {}
        self._pull_errors: dict[str, tuple[datetime, str]] = {}
        """Per ``<uid>_<image>``: when the last pull failed, and why."""
        self._probes: dict[tuple[str, Kind], ProbeWorker] = {}
        self._last_status: Obj | None = None
        self._terminated = False
        self._mount_error = ""
        self._volumes_synced_at = 0.0
        self._deadline_exceeded = False
        self.steady = False
        """Set by each sync: see :func:`_is_steady`."""

    # ---- lifecycle --------------------------------------------------------------------------

    def update(self, pod: Obj | None) -> None:
        """A new version of the pod from the API (None: it is gone from the API)."""
        self.pod = pod
        if pod is not None:
            self.last_pod = pod
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self.task = asyncio.create_task(self.run(), name=f"pod-{self.uid[:8]}")

    async def stop(self) -> None:
        """Stop working on the pod (kubelet shutdown): containers keep running."""
        for worker in self._probes.values():
            worker.stop()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def run(self) -> None:
        try:
            while not self.finished:
                self._wake.clear()
                try:
                    await self.sync()
                except asyncio.CancelledError:
                    raise
                except ApiError as exc:
                    log.warning("sync failed pod=%s: %s", self._name(), exc)
                except Exception:
                    log.exception("sync failed pod=%s", self._name())
                if self.finished:
                    break
                await self._wait(self.ctx.settings.steady_pod_resync_interval if self.steady
                                 else self.ctx.settings.pod_resync_interval)
        finally:
            for worker in self._probes.values():
                worker.stop()

    async def _wait(self, seconds: float) -> None:
        waker = asyncio.create_task(self._wake.wait())
        sleeper = asyncio.create_task(self.ctx.clock.sleep(seconds))
        try:
            await asyncio.wait({waker, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waker.cancel()
            sleeper.cancel()

    def _name(self) -> str:
        meta = self.last_pod["metadata"]
        return f"{meta.get('namespace')}/{meta.get('name')}"

    # ---- the sync ---------------------------------------------------------------------------

    async def sync(self) -> None:
        pod = self.pod
        if pod is None:
            await self._teardown()
            return
        if pod["metadata"].get("deletionTimestamp"):
            await self._terminate(pod)
            return
        if self._sandbox_id is None:
            await self._adopt_sandbox()
        terminal = (pod.get("status") or {}).get("phase") in TERMINAL
        if not terminal and self._past_deadline(pod):
            if not self._deadline_exceeded:
                self._deadline_exceeded = True
                self.ctx.recorder.record(
                    pod, "DeadlineExceeded",
                    "Pod was active on the node longer than the specified deadline", "Normal")
            terminal = True
        if terminal:
            await self._stop_all(pod, grace=self._grace(pod), reason_message=None)
        elif await self._ensure_sandbox(pod):
            await self._refresh_volumes(pod)
            await self._sync_containers(pod)
        await self._write_status(pod, terminal)

    def _past_deadline(self, pod: Obj) -> bool:
        """``activeDeadlineSeconds`` counts from the pod's startTime (upstream)."""
        deadline = (pod.get("spec") or {}).get("activeDeadlineSeconds")
        started = parse_rfc3339((pod.get("status") or {}).get("startTime") or "")
        if not isinstance(deadline, int) or started is None:
            return self._deadline_exceeded
        return self._deadline_exceeded or \
            (self.ctx.clock.now() - started).total_seconds() >= deadline

    async def _refresh_volumes(self, pod: Obj) -> None:
        """ConfigMap, Secret and downwardAPI contents follow their sources (upstream syncs
        them about once a minute); a failed refresh keeps the last good content."""
        now = self.ctx.clock.monotonic()
        if now - self._volumes_synced_at < self.ctx.settings.volume_resync_interval:
            return
        self._volumes_synced_at = now
        try:
            self._volume_paths = await self.ctx.volumes.setup(self._with_ips(pod))
        except (VolumeError, ApiError) as exc:
            log.info("volume refresh failed pod=%s: %s", self._name(), exc)

    def _grace(self, pod: Obj) -> int:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        value = meta.get("deletionGracePeriodSeconds")
        if not isinstance(value, int):
            value = spec.get("terminationGracePeriodSeconds", 30)
        return value if isinstance(value, int) and value >= 0 else 30

    async def _find_sandbox(self) -> str | None:
        """This pod's sandbox (a ready one first): how a new worker re-adopts containers."""
        await self._adopt_sandbox()
        return self._sandbox_id

    async def _adopt_sandbox(self) -> None:
        mine = [sb for sb in await self.ctx.runtime.list_pod_sandboxes()
                if sb.config.pod_uid == self.uid]
        mine.sort(key=lambda sb: (sb.state == SandboxState.READY, sb.created_at), reverse=True)
        if mine:
            self._sandbox_id, self._pod_ip = mine[0].id, mine[0].ip

    def _log_dir(self, pod: Obj) -> Path:
        meta = pod["metadata"]
        return self.ctx.settings.pods_log_dir / f"{meta['namespace']}_{meta['name']}_{self.uid}"

    async def _ensure_sandbox(self, pod: Obj) -> bool:
        if self._volume_paths is None:
            try:
                self._volume_paths = await self.ctx.volumes.setup(self._with_ips(pod))
                self._volumes_synced_at = self.ctx.clock.monotonic()
                self._mount_error = ""
            except VolumeError as exc:
                message = f"MountVolume.SetUp failed: {exc}"
                if message != self._mount_error:
                    self.ctx.recorder.record(pod, "FailedMount", message, "Warning")
                    self._mount_error = message
                return False
        if self._sandbox_id is None:
            await self._adopt_sandbox()
        if self._sandbox_id is None:
            meta, spec = pod["metadata"], pod.get("spec") or {}
            try:
                sandbox_id = await self.ctx.runtime.run_pod_sandbox(PodSandboxConfig(
                    pod_uid=self.uid, name=meta["name"], namespace=meta["namespace"],
                    hostname=spec.get("hostname") or meta["name"],
                    log_directory=str(self._log_dir(pod)),
                    labels={LABEL_POD_UID: self.uid, LABEL_POD_NAME: meta["name"],
                            LABEL_POD_NAMESPACE: meta["namespace"]},
                    port_mappings=port_mappings_of(pod),
                    host_network=spec.get("hostNetwork") is True,
                    cgroup_parent=cgroup_parent(pod)))
            except RuntimeOperationError as exc:
                # Upstream's words: the network plugin not ready yet, else the sandbox failed.
                if exc.reason == "NetworkNotReady":
                    reason, message = "NetworkNotReady", exc.message
                else:
                    reason, message = "FailedCreatePodSandBox", \
                        f"Failed to create pod sandbox: {exc.message}"
                if message != self._sandbox_error:
                    self.ctx.recorder.record(pod, reason, message, "Warning")
                    self._sandbox_error = message
                return False
            self._sandbox_error = ""
            self._sandbox_id = sandbox_id
            self._pod_ip = (await self.ctx.runtime.pod_sandbox_status(sandbox_id)).ip
        return True

    async def _containers(self) -> list[ContainerStatus]:
        if self._sandbox_id is None:
            return []
        return await self.ctx.runtime.list_containers(self._sandbox_id)

    async def _sync_containers(self, pod: Obj) -> None:
        spec = pod.get("spec") or {}
        policy = spec.get("restartPolicy", "Always")
        current = podstatus.latest_by_name(await self._containers())
        for c in spec.get("initContainers") or []:
            latest = current.get(c["name"], (None, None))[0]
            if latest is None and self._create_backing_off(pod, c):
                return
            if latest is None or latest.state == ContainerState.CREATED:
                if latest is not None:
                    await self.ctx.runtime.remove_container(latest.id)
                await self._start(pod, c, 0 if latest is None else latest.attempt)
                return
            if latest.state == ContainerState.RUNNING:
                return
            if latest.exit_code == 0:
                continue
            if policy != "Never":
                await self._maybe_restart(pod, c, latest)
            return  # a failed init container blocks the rest (or fails the pod: Never)
        self._waiting = {k: v for k, v in self._waiting.items()
                         if k not in {c["name"] for c in spec.get("initContainers") or []}}
        for c in spec.get("containers") or []:
            latest = current.get(c["name"], (None, None))[0]
            if latest is None:
                if not self._create_backing_off(pod, c):
                    await self._start(pod, c, 0)
            elif latest.state == ContainerState.RUNNING:
                if latest.annotations.get(ANNOTATION_HASH, container_hash(c)) != container_hash(c):
                    # The spec changed (an image update): replace the container, as upstream.
                    await self._kill(pod, c, latest.id, self._grace(pod),
                                     f"Container {c['name']} definition changed, "
                                     "will be restarted")
                    continue
                await self._check_probes(pod, c, latest)
            elif latest.state == ContainerState.EXITED:
                if podstatus.restart_needed(policy, latest.exit_code):
                    await self._maybe_restart(pod, c, latest)
            else:  # created but never started (a kubelet crash in between): start afresh
                await self.ctx.runtime.remove_container(latest.id)
                await self._start(pod, c, latest.attempt)
        current = podstatus.latest_by_name(await self._containers())
        self._sync_probe_workers(pod, current)

    def _create_backing_off(self, pod: Obj, c: Obj) -> bool:
        """After a failed create (config error, ...), retry on the back-off schedule."""
        failed = self._failed_at.get(c["name"])
        key = f"{self.uid}/{c['name']}/create"
        return failed is not None and self.ctx.backoff.in_backoff_since(key, failed)

    async def _maybe_restart(self, pod: Obj, c: Obj, latest: ContainerStatus) -> None:
        key = f"{self.uid}/{c['name']}"
        finished = latest.finished_at or self.ctx.clock.now()
        if self.ctx.backoff.in_backoff_since(key, finished):
            delay = go_duration(self.ctx.backoff.get(key))
            self._waiting[c["name"]] = (
                "CrashLoopBackOff",
                f"back-off {delay} restarting failed container={c['name']} pod={pod_ref(pod)}")
            if latest.id not in self._backoff_reported:
                self._backoff_reported.add(latest.id)
                self.ctx.recorder.record(
                    pod, "BackOff",
                    f"Back-off restarting failed container {c['name']} in pod {pod_ref(pod)}",
                    "Warning", self._field_path(pod, c))
            return
        self.ctx.backoff.next(key, finished)
        await self._start(pod, c, latest.attempt + 1)

    def _with_ips(self, pod: Obj) -> Obj:
        """The pod as fieldRefs see it: its IPs are known before its status says so."""
        ip = self._pod_ip or self.ctx.node_ip
        status = {**(pod.get("status") or {}), "podIP": ip, "podIPs": [{"ip": ip}],
                  "hostIP": ip, "hostIPs": [{"ip": ip}]}
        return {**pod, "status": status}

    async def _service_env(self, pod: Obj) -> dict[str, str]:
        """Service variables; an API hiccup leaves them out rather than blocking the start."""
        namespace = pod["metadata"]["namespace"]
        links = (pod.get("spec") or {}).get("enableServiceLinks", True) is not False
        services: list[Obj] = []
        master = None
        informer = self.ctx.services
        if informer is not None and informer.has_synced:
            if links:
                services = informer.by_index("namespace", namespace)
            return service_env(services, informer.get("default/kubernetes"), links)
        try:
            if links:
                services = (await self.ctx.client.list(SERVICES, namespace)).get("items") or []
            master = await self.ctx.client.get(SERVICES, "default", "kubernetes")
        except ApiError as exc:
            log.debug("service variables incomplete pod=%s: %s", self._name(), exc)
        return service_env(services, master, links)

    @staticmethod
    def _field_path(pod: Obj, c: Obj) -> str:
        init = any(x.get("name") == c["name"]
                   for x in (pod.get("spec") or {}).get("initContainers") or [])
        return f"spec.{'initContainers' if init else 'containers'}{{{c['name']}}}"

    def _fail_create(self, pod: Obj, c: Obj, reason: str, message: str) -> None:
        self._waiting[c["name"]] = (reason, message)
        now = self.ctx.clock.now()
        self._failed_at[c["name"]] = now
        self.ctx.backoff.next(f"{self.uid}/{c['name']}/create", now)
        self.ctx.recorder.record(pod, "Failed", f"Error: {message}", "Warning",
                                 self._field_path(pod, c))

    async def _start(self, pod: Obj, c: Obj, attempt: int) -> None:
        """Pull, create and start one container (upstream ``startContainer``)."""
        assert self._sandbox_id is not None and self._volume_paths is not None
        ctx, name, image = self.ctx, c["name"], c.get("image", "")
        field_path = self._field_path(pod, c)
        if await self._ensure_image(pod, c) is None:
            return
        try:
            env = await container_env(self._with_ips(pod), c, ctx.client.get, ctx.allocatable,
                                      await self._service_env(pod))
            mounts = ctx.volumes.mounts(c, self._volume_paths)
            mounts += self._termination_mount(c, attempt, mounts)
        except (ConfigError, VolumeError) as exc:
            self._fail_create(pod, c, "CreateContainerConfigError", str(exc))
            return
        # Older attempts go; the latest stays as "previous" for `kubectl logs --previous`.
        same = sorted((x for x in await self._containers() if x.name == name),
                      key=lambda x: x.attempt)
        for old in same[:-1]:
            await ctx.runtime.remove_container(old.id)
        meta = pod["metadata"]
        config = ContainerConfig(
            name=name, image=image,
            command=expand_command(c.get("command") or [], env),
            args=expand_command(c.get("args") or [], env), env=env,
            working_dir=c.get("workingDir") or "", mounts=mounts,
            resources=resources_of(c, ctx.settings.pod_pids_limit),
            security=security_of(pod, c, seccomp_root=ctx.settings.root_dir / "seccomp"),
            stdin=c.get("stdin") is True,
            stdin_once=c.get("stdinOnce") is True, tty=c.get("tty") is True, attempt=attempt,
            log_path=f"{name}/{attempt}.log",
            labels={LABEL_POD_UID: self.uid, LABEL_POD_NAME: meta["name"],
                    LABEL_POD_NAMESPACE: meta["namespace"], LABEL_CONTAINER_NAME: name},
            annotations={"io.kubernetes.container.restartCount": str(attempt),
                         ANNOTATION_HASH: container_hash(c)})
        try:
            cid = await ctx.runtime.create_container(self._sandbox_id, config)
        except RuntimeOperationError as exc:
            self._fail_create(pod, c, exc.reason, exc.message)
            return
        ctx.recorder.record(pod, "Created", f"Created container {name}", "Normal", field_path)
        try:
            await ctx.runtime.start_container(cid)
        except RuntimeOperationError as exc:
            self._fail_create(pod, c, "RunContainerError", exc.message)
            return
        self._waiting.pop(name, None)
        self._failed_at.pop(name, None)
        status = await ctx.runtime.container_status(cid)
        if status.reason == "StartError":
            ctx.recorder.record(pod, "Failed", f"Error: {status.message}", "Warning", field_path)
            return
        ctx.recorder.record(pod, "Started", f"Started container {name}", "Normal", field_path)
        hook = (c.get("lifecycle") or {}).get("postStart")
        if hook:
            error = await run_hook(hook, c, cid, ctx.node_ip, ctx.runtime,
                                   self._grace(pod), ctx.clock)
            if error is not None:
                ctx.recorder.record(
                    pod, "FailedPostStartHook",
                    f'{describe(hook)} for Container "{name}" in Pod "{pod_ref(pod)}" failed - '
                    f"error: {error}", "Warning", field_path)
                await self._kill(pod, c, cid, self._grace(pod), "FailedPostStartHook")

    async def _ensure_image(self, pod: Obj, c: Obj) -> str | None:
        """``imagePullPolicy`` as upstream's image manager applies it, with its events and its
        back-off per pod and image; ``None`` (and a waiting reason) when there is no image."""
        ctx, image = self.ctx, c.get("image", "")
        field_path = self._field_path(pod, c)
        if not ctx.runtime.info().pulls_images:
            ctx.recorder.record(pod, "Pulled",
                                f'Container image "{image}" already present on machine',
                                "Normal", field_path)
            return image
        policy = c.get("imagePullPolicy") or default_pull_policy(image)
        try:
            present = await ctx.runtime.image_status(image)
        except RuntimeOperationError as exc:
            self._image_failed(pod, c, "InvalidImageName", "InspectFailed",
                               f'Failed to apply default image tag "{image}": {exc.message}')
            return None
        if present is not None and policy != "Always":
            ctx.recorder.record(pod, "Pulled",
                                f'Container image "{image}" already present on machine',
                                "Normal", field_path)
            return present
        if policy == "Never":
            self._image_failed(pod, c, "ErrImageNeverPull", "ErrImageNeverPull",
                               f'Container image "{image}" is not present with pull policy of '
                               "Never")
            return None
        key = f"{self.uid}_{image}"
        failed = self._pull_errors.get(key)
        if failed is not None and ctx.backoff.in_backoff_since(key, failed[0]):
            reported = f"{key}/{failed[0].isoformat()}"
            last_error = failed[1]
            self._waiting[c["name"]] = (
                "ImagePullBackOff", f'Back-off pulling image "{image}"'
                + (f": ErrImagePull: {last_error}" if last_error else ""))
            if reported not in self._backoff_reported:
                self._backoff_reported.add(reported)
                ctx.recorder.record(pod, "BackOff", f'Back-off pulling image "{image}"',
                                    "Normal", field_path)
                ctx.recorder.record(pod, "Failed", "Error: ImagePullBackOff", "Warning",
                                    field_path)
            return None
        ctx.recorder.record(pod, "Pulling", f'Pulling image "{image}"', "Normal", field_path)
        started = ctx.clock.monotonic()
        try:
            ref = await ctx.runtime.pull_image(image)
        except RuntimeOperationError as exc:
            ctx.backoff.next(key, ctx.clock.now())
            self._pull_errors[key] = (ctx.clock.now(), exc.message)
            self._waiting[c["name"]] = ("ErrImagePull", exc.message)
            ctx.recorder.record(pod, "Failed", f'Failed to pull image "{image}": {exc.message}',
                                "Warning", field_path)
            ctx.recorder.record(pod, "Failed", "Error: ErrImagePull", "Warning", field_path)
            return None
        took = go_duration(timedelta(seconds=ctx.clock.monotonic() - started))
        self._pull_errors.pop(key, None)
        self._waiting.pop(c["name"], None)
        ctx.recorder.record(pod, "Pulled", f'Successfully pulled image "{image}" in {took} '
                            f"({took} including waiting)", "Normal", field_path)
        return ref

    def _image_failed(self, pod: Obj, c: Obj, reason: str, event_reason: str,
                      message: str) -> None:
        """A waiting reason that no retry will change by itself (a bad name, ``Never``)."""
        if self._waiting.get(c["name"]) != (reason, message):
            self.ctx.recorder.record(pod, event_reason, message, "Warning",
                                     self._field_path(pod, c))
            self.ctx.recorder.record(pod, "Failed", f"Error: {reason}", "Warning",
                                     self._field_path(pod, c))
        self._waiting[c["name"]] = (reason, message)

    # ---- probes -----------------------------------------------------------------------------

    def _probe_specs(self, c: Obj) -> dict[Kind, ProbeSpec]:
        out = {}
        for kind, key in ((Kind.LIVENESS, "livenessProbe"), (Kind.READINESS, "readinessProbe"),
                          (Kind.STARTUP, "startupProbe")):
            if c.get(key):
                out[kind] = ProbeSpec.from_api(c[key], kind)
        return out

    def _sync_probe_workers(self, pod: Obj, current: Any) -> None:
        wanted: set[tuple[str, Kind]] = set()
        for c in (pod.get("spec") or {}).get("containers") or []:
            latest = current.get(c["name"], (None, None))[0]
            if latest is None or latest.state != ContainerState.RUNNING:
                continue
            for kind, spec in self._probe_specs(c).items():
                key = (latest.id, kind)
                wanted.add(key)
                if key not in self._probes:
                    self._probes[key] = self._new_probe(pod, c, latest, kind, spec)
                    self._probes[key].start()
        for key in [k for k in self._probes if k not in wanted]:
            self._probes.pop(key).stop()

    def _new_probe(self, pod: Obj, c: Obj, latest: ContainerStatus, kind: Kind,
                   spec: ProbeSpec) -> ProbeWorker:
        cid = latest.id

        async def probe() -> tuple[Result, str]:
            return await run_probe(spec, c, cid, self.ctx.node_ip, self.ctx.runtime)

        def on_failure(kind: Kind, output: str) -> None:
            self.ctx.recorder.record(self.last_pod, "Unhealthy",
                                     f"{kind.title} probe failed: {output}", "Warning",
                                     self._field_path(self.last_pod, c))

        return ProbeWorker(kind, spec, cid, latest.started_at, probe, self.ctx.clock,
                           on_change=self.wake, on_failure=on_failure,
                           startup_done=lambda: self._started(c, cid))

    def _result(self, cid: str, kind: Kind) -> Result | None:
        worker = self._probes.get((cid, kind))
        return worker.result if worker is not None else None

    def _started(self, c: Obj, cid: str) -> bool:
        if not c.get("startupProbe"):
            return True
        return self._result(cid, Kind.STARTUP) == Result.SUCCESS

    def _ready(self, c: Obj, cid: str) -> bool:
        if not self._started(c, cid):
            return False
        if not c.get("readinessProbe"):
            return True
        return self._result(cid, Kind.READINESS) == Result.SUCCESS

    async def _check_probes(self, pod: Obj, c: Obj, latest: ContainerStatus) -> None:
        """A failed liveness or startup probe: kill the container; the restart policy
        decides what happens next (on the next sync)."""
        for kind in (Kind.LIVENESS, Kind.STARTUP):
            worker = self._probes.get((latest.id, kind))
            if worker is None or worker.result != Result.FAILURE:
                continue
            message = f"Container {c['name']} failed {kind.value} probe, will be restarted"
            grace = (c.get(f"{kind.value}Probe") or {}).get("terminationGracePeriodSeconds")
            if not isinstance(grace, int):
                grace = self._grace({"metadata": {}, "spec": pod.get("spec") or {}})
            self._probes.pop((latest.id, kind)).stop()
            await self._kill(pod, c, latest.id, grace, message)
            return

    # ---- termination ------------------------------------------------------------------------

    async def _stop_all(self, pod: Obj, grace: int, reason_message: str | None) -> None:
        for w in self._probes.values():
            w.stop()
        self._probes.clear()
        running = [c for c in await self._containers() if c.state == ContainerState.RUNNING]
        if not running:
            return
        spec_containers = {c["name"]: c for c in (pod.get("spec") or {}).get("containers") or []}
        spec_containers.update({c["name"]: c
                                for c in (pod.get("spec") or {}).get("initContainers") or []})
        await asyncio.gather(*(
            self._kill(pod, spec_containers.get(c.name, {"name": c.name}), c.id, grace,
                       reason_message or f"Stopping container {c.name}")
            for c in running))

    async def _kill(self, pod: Obj, c: Obj, container_id: str, grace: int,
                    message: str) -> None:
        """Upstream ``killContainer``: event, preStop hook within the grace period, then
        SIGTERM and SIGKILL after what is left of it."""
        field_path = self._field_path(pod, c)
        self.ctx.recorder.record(pod, "Killing", message, "Normal", field_path)
        hook = (c.get("lifecycle") or {}).get("preStop")
        left, error = await pre_stop(hook, c, container_id, self.ctx.node_ip, self.ctx.runtime,
                                     grace, self.ctx.clock)
        if error is not None and hook is not None:
            self.ctx.recorder.record(
                pod, "FailedPreStopHook",
                f'{describe(hook)} for Container "{c["name"]}" in Pod "{pod_ref(pod)}" failed - '
                f"error: {error}", "Warning", field_path)
        await self.ctx.runtime.stop_container(container_id, left)

    async def _terminate(self, pod: Obj) -> None:
        """The pod is being deleted: stop everything within the grace period, report the
        final status, then delete the pod for good (grace 0) so the API server removes it."""
        if not self._terminated:
            await self._stop_all(pod, self._grace(pod), None)
            if self._sandbox_id is None:
                self._sandbox_id = await self._find_sandbox()
            await self._write_status(pod, terminal=True)
            self._terminated = True
        meta = pod["metadata"]
        try:
            await self.ctx.client.delete(PODS, meta["namespace"], meta["name"],
                                         grace_period_seconds=0,
                                         preconditions={"uid": self.uid})
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise
        # The informer's DELETED event (update(None)) does the cleanup.

    async def _teardown(self) -> None:
        """The pod is gone from the API: kill what is left and remove every trace of it."""
        await self._stop_all(self.last_pod, grace=0 if self._terminated else 2,
                             reason_message=None)
        for sb in await self.ctx.runtime.list_pod_sandboxes():
            if sb.config.pod_uid == self.uid:
                await self.ctx.runtime.remove_pod_sandbox(sb.id)
        self.ctx.volumes.cleanup(self.uid)
        shutil.rmtree(self._log_dir(self.last_pod), ignore_errors=True)
        self.ctx.backoff.forget_prefix(self.uid)
        self.finished = True

    # ---- status -----------------------------------------------------------------------------

    # ---- termination messages ---------------------------------------------------------------

    def _termination_file(self, name: str, attempt: int) -> Path:
        return self.ctx.volumes.pod_dir(self.uid) / "containers" / name / str(attempt)

    def _termination_mount(self, c: Obj, attempt: int, mounts: list[Mount]) -> list[Mount]:
        """A host file at ``terminationMessagePath`` (upstream: under the pod's directory),
        where the container has a root filesystem of its own to put it in."""
        path = c.get("terminationMessagePath") or "/dev/termination-log"
        if not self.ctx.runtime.info().own_root_filesystem \
                or any(m.container_path.rstrip("/") == path.rstrip("/") for m in mounts):
            return []
        host = self._termination_file(c["name"], attempt)
        host.parent.mkdir(parents=True, exist_ok=True)
        host.touch()
        host.chmod(0o666)  # any user the container runs as may write it
        return [Mount(path, str(host))]

    def _with_termination_message(self, c: Obj, status: ContainerStatus | None
                                  ) -> ContainerStatus | None:
        """An exited container's message: what it wrote to its termination file (at most
        4096 bytes), else with ``FallbackToLogsOnError`` and a failure the end of its log
        (80 lines, 2048 bytes), as upstream."""
        if status is None or status.state != ContainerState.EXITED:
            return status
        cached = self._termination_messages.get(status.id)
        if cached is None:
            cached = ""
            with contextlib.suppress(OSError), \
                    self._termination_file(c["name"], status.attempt).open("rb") as f:
                cached = f.read(4096).decode(errors="replace")
            if not cached and status.exit_code != 0 and \
                    c.get("terminationMessagePolicy") == "FallbackToLogsOnError":
                with contextlib.suppress(OSError):
                    data, _ = read_log(Path(status.log_path), LogOptions(tail_lines=80))
                    cached = data[-2048:].decode(errors="replace")
            self._termination_messages[status.id] = cached
        return replace(status, message=cached) if cached else status

    def _views(self, pod: Obj, containers: list[ContainerStatus], key: str,
               default_waiting: str) -> list[Obj]:
        current = podstatus.latest_by_name(containers)
        out = []
        for c in (pod.get("spec") or {}).get(key) or []:
            latest, previous = current.get(c["name"], (None, None))
            latest = self._with_termination_message(c, latest)
            previous = self._with_termination_message(c, previous)
            waiting = self._waiting.get(c["name"])
            if latest is not None and latest.state == ContainerState.RUNNING:
                waiting = None
            view = podstatus.ContainerView(
                name=c["name"], image=c.get("image", ""), latest=latest, previous=previous,
                waiting=waiting,
                ready=latest is not None and self._ready(c, latest.id),
                started=latest is not None and self._started(c, latest.id),
                restart_count=latest.attempt if latest is not None else 0)
            out.append(podstatus.container_status(view, default_waiting,
                                                  self.ctx.runtime.info().name))
        return out

    async def compute_status(self, pod: Obj, terminal: bool) -> Obj:
        spec = pod.get("spec") or {}
        old = pod.get("status") or {}
        containers = await self._containers()
        init_done = all(
            (x := podstatus.latest_by_name(containers).get(c["name"])) is not None
            and x[0].state == ContainerState.EXITED and x[0].exit_code == 0
            for c in spec.get("initContainers") or [])
        init_statuses = self._views(pod, containers, "initContainers", "PodInitializing")
        statuses = self._views(pod, containers, "containers",
                               "ContainerCreating" if init_done else "PodInitializing")
        phase = podstatus.get_phase(spec, init_statuses, statuses, terminal)
        if old.get("phase") in TERMINAL:
            phase = old["phase"]  # terminal phases are final
        sandbox_ready = self._sandbox_id is not None and not terminal
        now = self.ctx.clock.now()
        conditions = podstatus.merge_conditions(
            old.get("conditions") or [],
            podstatus.pod_conditions(spec, phase, init_statuses, statuses, sandbox_ready), now)
        status: Obj = {"phase": phase, "conditions": conditions,
                       "hostIP": self.ctx.node_ip, "hostIPs": [{"ip": self.ctx.node_ip}],
                       "startTime": old.get("startTime") or rfc3339(now),
                       "containerStatuses": statuses}
        if init_statuses:
            status["initContainerStatuses"] = init_statuses
        if self._sandbox_id is not None:
            ip = self._pod_ip or self.ctx.node_ip
            status["podIP"] = ip
            status["podIPs"] = [{"ip": ip}]
        if old.get("qosClass"):
            status["qosClass"] = old["qosClass"]
        if self._deadline_exceeded:
            status.update(phase="Failed", reason="DeadlineExceeded",
                          message="Pod was active on the node longer than the specified deadline")
        return status

    async def _write_status(self, pod: Obj, terminal: bool) -> None:
        self.steady = False
        if (pod.get("status") or {}).get("phase") in TERMINAL and not await self._containers():
            return  # nothing left to report from (the runtime lost it): keep the last word
        status = await self.compute_status(pod, terminal)
        self.steady = _is_steady(pod, status)
        comparable = {k: v for k, v in status.items() if k != "startTime"}
        if self._last_status == comparable:
            return
        if self._last_status is None and _same_status(pod.get("status") or {}, status):
            self._last_status = comparable
            return
        meta = pod["metadata"]
        try:
            await self.ctx.client.patch(PODS, meta["namespace"], meta["name"], {"status": status},
                                        patch_type="merge", subresource="status")
        except ApiError as exc:
            if exc.code == 404:
                return
            raise
        self._last_status = comparable


def _is_steady(pod: Obj, status: Obj) -> bool:
    """Nothing will change without an outside cause: every container runs, nothing waits,
    no deadline or deletion is pending. Such a pod is re-synced rarely; the kubelet's
    relist of the runtime (a container exited), the API (a new version of the pod) and its
    probes (a result changed) wake it when something happens."""
    if pod["metadata"].get("deletionTimestamp") or \
            (pod.get("spec") or {}).get("activeDeadlineSeconds") is not None:
        return False
    statuses = status.get("containerStatuses") or []
    return status.get("phase") == "Running" and bool(statuses) and \
        all("running" in (cs.get("state") or {}) for cs in statuses)


def _same_status(old: Obj, new: Obj) -> bool:
    return all(old.get(k) == v for k, v in new.items())
