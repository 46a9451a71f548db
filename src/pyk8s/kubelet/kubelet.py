"""The kubelet: the node agent that runs the pods the scheduler bound to this node.

``Kubelet(client, settings, runtime).run()`` does, concurrently and until cancelled:

* registers the Node (capacity from the machine, addresses, nodeInfo), then keeps its status
  fresh every ``node_status_update_frequency`` (written when something changed, and at least
  every ``node_status_report_frequency``) -- see :mod:`nodestatus`;
* renews the node Lease every ``lease duration / 4`` -- see :mod:`lease`;
* watches *only its own pods* (``fieldSelector=spec.nodeName=<node>``) and hands each pod UID
  to one :class:`~pyk8s.kubelet.podworker.PodWorker`;
* watches its own Node for ``spec.podCIDR`` (assigned by the controller manager) and hands
  it to the runtime, which gives pods addresses from it;
* removes what the runtime still has for pods that no longer exist (after a restart, or a
  force deletion while the kubelet was down);
* optionally serves container logs (:mod:`server`).

Cancelling ``run()`` stops the kubelet, not the pods: containers keep running under their
supervisors, and the next kubelet over the same root directory re-adopts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from pyk8s.client import ApiClient, ApiError, Informer
from pyk8s.client.clock import SYSTEM_CLOCK, Clock
from pyk8s.kubelet import nodestatus
from pyk8s.kubelet.backoff import Backoff
from pyk8s.kubelet.events import EventRecorder
from pyk8s.kubelet.lease import NodeLease
from pyk8s.kubelet.podworker import LABEL_POD_UID, PodWorker, WorkerContext
from pyk8s.kubelet.settings import KubeletSettings
from pyk8s.kubelet.volumes import VolumeManager
from pyk8s.machinery.resources import CATALOGUE
from pyk8s.runtime import Runtime, RuntimeOperationError

log = logging.getLogger("pyk8s.kubelet")
NODES = CATALOGUE.resource("v1", "nodes")
SERVICES = CATALOGUE.resource("v1", "services")
PODS = CATALOGUE.resource("v1", "pods")
Obj = dict[str, Any]
ORPHAN_SWEEP_SECONDS = 60.0


class Kubelet:
    def __init__(self, client: ApiClient, settings: KubeletSettings, runtime: Runtime, *,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.client = client
        self.settings = settings
        self.runtime = runtime
        self.clock = clock
        self.node_ip = settings.resolved_node_ip()
        self.workers: dict[str, PodWorker] = {}
        self.node_uid = ""
        self.informer: Informer | None = None
        self._machine: nodestatus.MachineInfo | None = None
        self._last_node_status: Obj | None = None
        self._last_report = -1e18
        self._ctx: WorkerContext | None = None
        self.registered = asyncio.Event()
        self.pod_cidr = ""
        self._cidr_task: asyncio.Task[None] | None = None

    # ---- node -------------------------------------------------------------------------------

    def _runtime_version(self) -> str:
        return self.runtime.info().version

    async def register_node(self) -> None:
        """Create the Node, or adopt the existing one (labels refreshed); retried until the
        API server answers."""
        assert self._machine is not None
        body = nodestatus.node_object(self._machine, self.settings, self.node_ip,
                                      self._runtime_version(), self.clock.now())
        delay = 0.2
        while True:
            try:
                try:
                    node = await self.client.create(NODES, body)
                except ApiError as exc:
                    if exc.code != 409:
                        raise
                    node = await self.client.patch(
                        NODES, None, self.settings.node_name,
                        {"metadata": {"labels": body["metadata"]["labels"]}})
                self.node_uid = node["metadata"].get("uid", "")
                await self.update_node_status(force=True)
                log.info("node registered node=%s ip=%s runtime=%s", self.settings.node_name,
                         self.node_ip, self.runtime.info().isolation)
                self.registered.set()
                return
            except ApiError as exc:
                log.warning("node registration failed node=%s: %s", self.settings.node_name, exc)
                await self.clock.sleep(delay)
                delay = min(delay * 2, 7.0)

    async def update_node_status(self, force: bool = False) -> None:
        assert self._machine is not None
        node = await self.client.get(NODES, None, self.settings.node_name)
        previous = (node.get("status") or {}).get("conditions") or []
        status = nodestatus.node_status(self._machine, self.settings, self.node_ip,
                                        self._runtime_version(), previous, self.clock.now())
        comparable = _without_heartbeats(status)
        due = self.clock.monotonic() - self._last_report >= \
            self.settings.node_status_report_frequency
        if not force and not due and comparable == self._last_node_status \
                and _without_heartbeats(node.get("status") or {}) == comparable:
            return
        await self.client.patch(NODES, None, self.settings.node_name, {"status": status},
                                subresource="status")
        self._last_node_status = comparable
        self._last_report = self.clock.monotonic()

    async def _node_status_loop(self) -> None:
        while True:
            await self.clock.sleep(self.settings.node_status_update_frequency)
            try:
                await self.update_node_status()
            except ApiError as exc:
                if exc.code == 404:  # someone deleted our Node: register again
                    await self.register_node()
                else:
                    log.warning("node status update failed: %s", exc)

    def _on_node(self, node: Obj) -> None:
        cidr = (node.get("spec") or {}).get("podCIDR") or self.settings.pod_cidr
        if cidr and cidr != self.pod_cidr:
            self.pod_cidr = cidr
            self._cidr_task = asyncio.create_task(self._apply_pod_cidr(cidr),
                                                  name="pod-cidr")

    async def _apply_pod_cidr(self, cidr: str) -> None:
        """Pods waiting for the network (``NetworkNotReady``) go on at once."""
        try:
            await self.runtime.update_pod_cidr(cidr)
        except Exception:
            log.exception("the runtime refused the pod CIDR %s", cidr)
            return
        log.info("pod CIDR node=%s cidr=%s", self.settings.node_name, cidr)
        for worker in self.workers.values():
            worker.wake()

    # ---- pods -------------------------------------------------------------------------------

    def _on_pod(self, pod: Obj) -> None:
        uid = pod["metadata"].get("uid")
        if not uid or self._ctx is None:
            return
        worker = self.workers.get(uid)
        if worker is None or worker.finished:
            worker = PodWorker(self._ctx, pod)
            self.workers[uid] = worker
            worker.start()
        else:
            worker.update(pod)

    def _on_pod_deleted(self, pod: Obj) -> None:
        worker = self.workers.get(pod["metadata"].get("uid", ""))
        if worker is not None:
            worker.update(None)

    async def _relist(self) -> None:
        """Upstream's PLEG: one listing of every container per period; a pod whose
        containers changed (started, exited, restarted, removed) gets its worker woken."""
        previous: dict[str, list[tuple[Any, ...]]] = {}
        while True:
            await self.clock.sleep(self.settings.pleg_relist_period)
            try:
                containers = await self.runtime.list_containers()
            except Exception:
                log.exception("relisting the runtime's containers failed")
                continue
            current: dict[str, list[tuple[Any, ...]]] = {}
            for c in containers:
                current.setdefault(c.labels.get(LABEL_POD_UID, ""), []).append(
                    (c.id, c.state.value, c.exit_code, c.attempt, c.finished_at))
            for uid in current.keys() | previous.keys():
                if sorted(current.get(uid, ())) != sorted(previous.get(uid, ())):
                    worker = self.workers.get(uid)
                    if worker is not None:
                        worker.wake()
            previous = current

    async def _reap_workers(self) -> None:
        for uid, worker in list(self.workers.items()):
            if worker.finished:
                del self.workers[uid]

    async def cleanup_orphans(self) -> None:
        """Remove sandboxes (and their containers, volumes) of pods the API no longer has."""
        assert self.informer is not None and self._ctx is not None
        known = {p["metadata"].get("uid") for p in self.informer.list()}
        known.update(self.workers)
        for sb in await self.runtime.list_pod_sandboxes():
            if sb.config.pod_uid not in known:
                log.info("removing orphaned sandbox pod=%s/%s uid=%s", sb.config.namespace,
                         sb.config.name, sb.config.pod_uid)
                await self.runtime.remove_pod_sandbox(sb.id)
                self._ctx.volumes.cleanup(sb.config.pod_uid)

    async def garbage_collect_images(self) -> None:
        """Unused images go when the image disk fills up; a shortfall is a Warning on the
        Node (``FreeDiskSpaceFailed``), as upstream reports it."""
        assert self._ctx is not None
        s = self.settings
        try:
            removed = await self.runtime.garbage_collect_images(
                s.image_gc_high_threshold_percent, s.image_gc_low_threshold_percent,
                s.image_minimum_gc_age)
        except RuntimeOperationError as exc:
            node = {"apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": s.node_name, "uid": s.node_name}}
            self._ctx.recorder.record(node, "FreeDiskSpaceFailed", exc.message, "Warning")
            return
        if removed:
            log.info("image garbage collection removed %s", ", ".join(removed))

    async def _housekeeping(self) -> None:
        assert self.informer is not None
        await self.informer.wait_synced()
        while True:
            try:
                await self._reap_workers()
                await self.cleanup_orphans()
                await self.garbage_collect_images()
            except Exception:
                log.exception("housekeeping")
            await self.clock.sleep(ORPHAN_SWEEP_SECONDS)

    # ---- run --------------------------------------------------------------------------------

    async def run(self) -> None:
        settings = self.settings
        settings.root_dir.mkdir(parents=True, exist_ok=True)
        log.info("kubelet starting node=%s root=%s", settings.node_name, settings.root_dir)
        self._machine = nodestatus.machine_info(settings.root_dir)
        _, allocatable = nodestatus.capacity(self._machine, settings)
        recorder = EventRecorder(self.client, settings.node_name, self.clock)
        self._ctx = WorkerContext(
            client=self.client, runtime=self.runtime, settings=settings, clock=self.clock,
            recorder=recorder, backoff=Backoff(self.clock),
            volumes=VolumeManager(settings.root_dir, self.client.get, allocatable),
            node_ip=self.node_ip, allocatable=allocatable)
        tasks: list[asyncio.Task[Any]] = [asyncio.create_task(recorder.run(), name="events")]
        try:
            if settings.register_node:
                await self.register_node()
            lease = NodeLease(self.client, settings.node_name,
                              settings.node_lease_duration_seconds, self.clock, self.node_uid)
            self.informer = Informer(self.client, PODS,
                                     field_selector=f"spec.nodeName={settings.node_name}")
            self.informer.add_handlers(on_add=self._on_pod,
                                       on_update=lambda _old, new: self._on_pod(new),
                                       on_delete=self._on_pod_deleted)
            if settings.pod_cidr:
                await self._apply_pod_cidr(settings.pod_cidr)
                self.pod_cidr = settings.pod_cidr
            services = Informer(self.client, SERVICES)
            services.add_index("namespace", lambda o: [o["metadata"].get("namespace", "")])
            self._ctx.services = services
            node_informer = Informer(self.client, NODES,
                                     field_selector=f"metadata.name={settings.node_name}")
            node_informer.add_handlers(on_add=self._on_node,
                                       on_update=lambda _old, new: self._on_node(new))
            tasks += [asyncio.create_task(lease.run(), name="lease"),
                      asyncio.create_task(self._node_status_loop(), name="node-status"),
                      asyncio.create_task(self.informer.run(), name="pod-informer"),
                      asyncio.create_task(node_informer.run(), name="node-informer"),
                      asyncio.create_task(services.run(), name="service-informer"),
                      asyncio.create_task(self._housekeeping(), name="housekeeping"),
                      asyncio.create_task(self._relist(), name="pleg")]
            if settings.server_address:
                from pyk8s.kubelet.server import serve

                tasks.append(asyncio.create_task(
                    serve(self, settings.server_address, settings.server_port),
                    name="node-server"))
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                if t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            await asyncio.gather(*(w.stop() for w in self.workers.values()),
                                 return_exceptions=True)
            with contextlib.suppress(Exception):
                await recorder.flush(1.0)
            log.info("kubelet stopped node=%s", settings.node_name)


def _without_heartbeats(status: Obj) -> Obj:
    out = dict(status)
    out["conditions"] = [{k: v for k, v in c.items() if k != "lastHeartbeatTime"}
                         for c in status.get("conditions") or []]
    return out
