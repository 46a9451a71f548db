"""The scheduler: watch pending pods, place each one, bind it, or say why not.

Wiring (upstream ``scheduler.go``, ``eventhandlers.go``, ``schedule_one.go``):

- two informers, on all nodes and all pods. Bound pods feed the :class:`~.cache.Cache` (what
  each node already carries); pending pods whose ``spec.schedulerName`` names one of our
  profiles go to the :class:`~.queue.SchedulingQueue`. Node changes and bound-pod deletions
  are *cluster events* that move unschedulable pods back for another try;
- one loop pops a pod and runs a **scheduling cycle**: snapshot the cache, filter and score
  (:mod:`.algorithm`), and on success *assume* the pod on the chosen node (so the next cycle
  already sees the resources taken) and run Reserve. The loop does not wait for the API: the
  **binding cycle** (Bind, through ``pods/<name>/binding``) runs as a task, and a failed
  binding forgets the assumption and requeues the pod with backoff;
- a pod that fits nowhere gets PostFilter (preemption), then a ``FailedScheduling`` Warning
  Event and a ``PodScheduled=False`` condition (reason ``Unschedulable``, or
  ``SchedulerError`` for errors) whose message is upstream's ``0/N nodes are available: ...``,
  and waits in the queue. Events repeating the same message for a pod are aggregated
  (``count`` goes up) rather than piling up.

Everything runs on one event loop; filter and score are synchronous, so a cycle sees a
consistent cache. API writes other than binding (events, status patches) are fire-and-forget
so a slow API server does not stall the loop. Events go through one recorder task that sends
them in order, one at a time (upstream's event broadcaster): a burst of ``Scheduled`` events
neither costs a task each nor takes the client's connections from bindings.

With ``leader_elect`` the scheduler works only while holding the ``kube-system/kube-scheduler``
Lease, and starts from scratch (fresh informers, cache and queue) each time it wins it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import uuid
from collections import deque
from collections.abc import Coroutine, Mapping
from typing import Any

from pyk8s.client import (
    SYSTEM_CLOCK,
    ApiClient,
    ApiError,
    Clock,
    Informer,
    LeaderElector,
    strip_managed_fields,
)
from pyk8s.machinery.meta import rfc3339
from pyk8s.machinery.resources import CATALOGUE
from pyk8s.scheduler.algorithm import GenericScheduler
from pyk8s.scheduler.cache import Cache, is_terminal
from pyk8s.scheduler.framework import (
    ASSIGNED_POD_ADD,
    ASSIGNED_POD_DELETE,
    ASSIGNED_POD_UPDATE,
    NODE_ADD,
    NODE_DELETE,
    NODE_UPDATE,
    Code,
    CycleState,
    Factory,
    Framework,
    Handle,
    Status,
)
from pyk8s.scheduler.nodeinfo import PodInfo
from pyk8s.scheduler.plugins.registry import in_tree_registry
from pyk8s.scheduler.queue import QueuedPodInfo, SchedulingQueue, plugin_events_of
from pyk8s.scheduler.settings import DEFAULT_SCHEDULER_NAME, SchedulerSettings

__all__ = ["Scheduler"]

log = logging.getLogger("pyk8s.scheduler")

NODES = CATALOGUE.resource("v1", "nodes")
PODS = CATALOGUE.resource("v1", "pods")
EVENTS = CATALOGUE.resource("v1", "events")
COMPONENT = "default-scheduler"
HOUSEKEEPING_PERIOD = 1.0

Obj = Mapping[str, Any]


def _assigned(pod: Obj) -> bool:
    return bool((pod.get("spec") or {}).get("nodeName"))


def _gated(pod: Obj) -> bool:
    """``spec.schedulingGates`` hold a pod back until every gate is removed (upstream's
    SchedulingGates PreEnqueue plugin)."""
    return bool((pod.get("spec") or {}).get("schedulingGates"))


def _node_changed(old: Obj, new: Obj) -> bool:
    """Node updates that can change a scheduling verdict (not heartbeats)."""
    old_status, new_status = old.get("status") or {}, new.get("status") or {}
    return (old.get("spec") != new.get("spec")
            or (old.get("metadata") or {}).get("labels") != (new.get("metadata") or {}).get("labels")
            or old_status.get("allocatable") != new_status.get("allocatable")
            or old_status.get("capacity") != new_status.get("capacity"))


EVENT_SENDERS = 4  # events in flight at once
YIELD_EVERY = 0.01  # seconds of scheduling between yields to the event loop


class Scheduler:
    """``Scheduler(client, settings)``; ``await run()`` schedules until cancelled."""

    def __init__(self, client: ApiClient, settings: SchedulerSettings | None = None, *,
                 clock: Clock = SYSTEM_CLOCK, registry: Mapping[str, Factory] | None = None,
                 rng: random.Random | None = None) -> None:
        self.client = client
        self.settings = settings or SchedulerSettings()
        self.clock = clock
        self.registry: dict[str, Factory] = {**in_tree_registry(), **(registry or {})}
        self.rng = rng or random.Random()
        self.identity = self.settings.identity or f"{socket.gethostname()}_{uuid.uuid4()}"
        self.scheduled = 0
        self.failed = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._build()

    def _build(self) -> None:
        """Fresh cache, queue and frameworks (at construction and on each leadership win)."""
        s = self.settings
        self.cache = Cache(self.clock, s.assumed_pod_ttl_seconds)
        self.frameworks: dict[str, Framework] = {}
        for profile in s.profiles:
            handle = Handle(client=self.client, clock=self.clock)
            self.frameworks[profile.scheduler_name] = Framework(profile, self.registry, handle)
        events: dict[str, Any] = {}
        for fwk in self.frameworks.values():
            events.update(plugin_events_of(fwk.plugins.values()))
        self.queue = SchedulingQueue(
            self.clock, initial_backoff=s.pod_initial_backoff_seconds,
            max_backoff=s.pod_max_backoff_seconds, max_unschedulable=s.max_unschedulable_seconds,
            plugin_events=events)
        for fwk in self.frameworks.values():
            fwk.handle.nominated_pods = self.queue.nominated_pods_for_node
            fwk.handle.nominated_nodes = self.queue.nominated_nodes
            fwk.handle.record_event = self._event_soon
        self.algorithm = GenericScheduler(s.percentage_of_nodes_to_score, self.rng)
        self._live_pods: dict[str, Obj] = {}  # uid -> latest pending pod, for failure reports
        self._last_event: dict[str, tuple[str, str, int]] = {}  # uid -> (name, message, count)
        self._events: deque[tuple[Obj, str, str, str]] = deque()  # waiting for the recorder
        self._recorders = 0  # recorder tasks running

    # --- lifecycle -----------------------------------------------------------------------

    async def run(self) -> None:
        if not self.settings.leader_elect:
            await self._run()
            return
        elector = LeaderElector(
            self.client, name=self.settings.lease_name, namespace=self.settings.lease_namespace,
            identity=self.identity, lease_duration=self.settings.lease_duration_seconds,
            renew_deadline=self.settings.renew_deadline_seconds,
            retry_period=self.settings.retry_period_seconds, clock=self.clock)
        await elector.run(self._run)

    async def _run(self) -> None:
        self._build()
        nodes = Informer(self.client, NODES)
        pods = Informer(self.client, PODS)
        # As upstream's scheduler: nothing here reads managedFields, so they are not cached.
        nodes.set_transform(strip_managed_fields)
        pods.set_transform(strip_managed_fields)
        nodes.add_handlers(self.on_node_add, self.on_node_update, self.on_node_delete)
        pods.add_handlers(self.on_pod_add, self.on_pod_update, self.on_pod_delete)
        background = [asyncio.create_task(nodes.run()), asyncio.create_task(pods.run())]
        log.info("scheduler starting profiles=%s", ",".join(self.frameworks))
        try:
            await nodes.wait_synced()
            await pods.wait_synced()
            background.append(asyncio.create_task(self.queue.run()))
            background.append(asyncio.create_task(self._housekeeping()))
            log.info("scheduler started nodes=%d pending=%d", len(self.cache.snapshot()),
                     len(self.queue))
            loop = asyncio.get_running_loop()
            last_yield = loop.time()
            while True:
                qinfo = await self.queue.pop()
                if qinfo is None:
                    break
                await self.schedule_one(qinfo)
                # A backlog is scheduled without awaiting anything: every few milliseconds
                # let bindings, watch events, lease renewals and signals run. Yielding after
                # every pod instead hands the loop to every other task once per pod.
                if loop.time() - last_yield > YIELD_EVERY:
                    await asyncio.sleep(0)
                    last_yield = loop.time()
        finally:
            self.queue.close()
            for task in [*background, *self._tasks]:
                task.cancel()
            for task in [*background, *self._tasks]:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            log.info("scheduler stopped scheduled=%d failed=%d", self.scheduled, self.failed)

    async def _housekeeping(self) -> None:
        while True:
            await self.clock.sleep(HOUSEKEEPING_PERIOD)
            self.cache.cleanup_expired()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def wait_idle(self) -> None:
        """Wait for in-flight bindings and API writes (tests and the benchmark)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # --- informer handlers (sync: they only update the cache and queue) --------------

    def responsible_for(self, pod: Obj) -> bool:
        name = (pod.get("spec") or {}).get("schedulerName") or DEFAULT_SCHEDULER_NAME
        return name in self.frameworks

    def on_node_add(self, node: Obj) -> None:
        self.cache.add_node(node)
        self.queue.move_all_to_active_or_backoff(NODE_ADD)

    def on_node_update(self, old: Obj, new: Obj) -> None:
        self.cache.update_node(old, new)
        if _node_changed(old, new):
            self.queue.move_all_to_active_or_backoff(NODE_UPDATE)

    def on_node_delete(self, node: Obj) -> None:
        self.cache.remove_node(node)
        self.queue.move_all_to_active_or_backoff(NODE_DELETE)

    def on_pod_add(self, pod: Obj) -> None:
        if _assigned(pod):
            self.cache.add_pod(pod)
            self.queue.move_all_to_active_or_backoff(ASSIGNED_POD_ADD)
        elif self.responsible_for(pod) and not is_terminal(pod):
            self._live_pods[PodInfo(pod).uid] = pod
            if _gated(pod):
                self._report_gated(pod)
            else:
                self.queue.add(pod)

    def on_pod_update(self, old: Obj, new: Obj) -> None:
        if _assigned(new):
            uid = PodInfo(new).uid
            if not _assigned(old):
                self.queue.delete(new)
                self._live_pods.pop(uid, None)
                self._last_event.pop(uid, None)
            self.cache.update_pod(old, new)
            if is_terminal(new) and not is_terminal(old):
                self.queue.move_all_to_active_or_backoff(ASSIGNED_POD_DELETE)
            elif (old.get("metadata") or {}).get("labels") != (new.get("metadata") or {}).get("labels"):
                self.queue.move_all_to_active_or_backoff(ASSIGNED_POD_UPDATE)
        elif self.responsible_for(new):
            self._live_pods[PodInfo(new).uid] = new
            if is_terminal(new):
                self.queue.delete(new)
            elif _gated(new):
                self.queue.delete(new)
                self._report_gated(new)
            else:
                self.queue.update(old, new)

    def on_pod_delete(self, pod: Obj) -> None:
        uid = PodInfo(pod).uid
        if _assigned(pod):
            self.cache.remove_pod(pod)
            self.queue.move_all_to_active_or_backoff(ASSIGNED_POD_DELETE)
        else:
            self.queue.delete(pod)
        self._live_pods.pop(uid, None)
        self._last_event.pop(uid, None)

    def _report_gated(self, pod: Obj) -> None:
        self._spawn(self._update_status(pod, "SchedulingGated",
                                        "Scheduling is blocked due to non-empty scheduling gates",
                                        "", False))

    # --- the scheduling cycle ------------------------------------------------------------

    async def schedule_one(self, qinfo: QueuedPodInfo) -> None:
        info = qinfo.pod_info
        pod = info.pod
        fwk = self.frameworks.get((pod.get("spec") or {}).get("schedulerName")
                                  or DEFAULT_SCHEDULER_NAME)
        if fwk is None or (pod.get("metadata") or {}).get("deletionTimestamp"):
            self.queue.done(info.uid)
            return
        cycle = self.queue.scheduling_cycle
        state = CycleState()
        snapshot = self.cache.snapshot()
        fwk.handle.snapshot = snapshot
        result = self.algorithm.schedule(fwk, state, info, snapshot)
        if not result.node:
            fit = result.fit_error
            if fit is None:
                self._fail(qinfo, cycle, result.status, clear_nomination=True)
                return
            qinfo.unschedulable_plugins = set(fit.diagnosis.unschedulable_plugins) - {""}
            nominated = ""
            if fwk.post_filter_plugins:
                pf_result, pf_status = await fwk.run_post_filter(
                    state, info, fit.diagnosis.node_statuses)
                if pf_status.is_success and pf_result is not None:
                    nominated = pf_result.nominated_node_name
                elif pf_status.code == Code.ERROR:
                    log.warning("preemption failed pod=%s: %s", info.key, pf_status.message)
                else:
                    fit.diagnosis.post_filter_msg = pf_status.message
            self._fail(qinfo, cycle, Status.unschedulable(fit.message), nominated=nominated)
            return

        node = result.node
        try:
            assumed = self.cache.assume_pod(info, node)
        except ValueError as exc:
            self._fail(qinfo, cycle, Status.error(str(exc)))
            return
        status = fwk.run_reserve(state, assumed, node)
        if not status.is_success:
            fwk.run_unreserve(state, assumed, node)
            self.cache.forget_pod(info.uid)
            self._fail(qinfo, cycle, status)
            return
        self.queue.delete_nominated(info.uid)
        self._spawn(self._bind(fwk, state, qinfo, cycle, node))

    async def _bind(self, fwk: Framework, state: CycleState, qinfo: QueuedPodInfo,
                    cycle: int, node: str) -> None:
        info = qinfo.pod_info
        status = await fwk.run_bind(state, info, node)
        if status.is_success:
            self.cache.finish_binding(info.uid)
            self.queue.done(info.uid)
            self.scheduled += 1
            log.debug("bound pod=%s node=%s", info.key, node)
            self._event_soon(info.pod, "Normal", "Scheduled",
                             f"Successfully assigned {info.key} to {node}")
            return
        fwk.run_unreserve(state, info, node)
        self.cache.forget_pod(info.uid)
        if status.is_skip:
            status = Status.error("no bind plugin bound the pod")
        self._fail(qinfo, cycle, status, clear_nomination=True)

    def _fail(self, qinfo: QueuedPodInfo, cycle: int, status: Status, *, nominated: str = "",
              clear_nomination: bool = False) -> None:
        """Requeue the pod, then tell users why (event + condition), upstream's
        ``handleSchedulingFailure``."""
        info = qinfo.pod_info
        self.failed += 1
        rejected = status.is_rejected
        self.queue.add_unschedulable(qinfo, cycle, error=not rejected)
        if nominated:
            self.queue.add_nominated(info, nominated)
        latest = self._live_pods.get(info.uid)
        if latest is None:
            return  # deleted or bound meanwhile: nothing to report
        message = status.message
        log.info("unable to schedule pod=%s reason=%s: %s", info.key,
                 "Unschedulable" if rejected else "SchedulerError", message[:500])
        self._event_soon(latest, "Warning", "FailedScheduling", message)
        self._spawn(self._update_status(latest, "Unschedulable" if rejected else "SchedulerError",
                                        message, nominated, clear_nomination))

    # --- reporting -----------------------------------------------------------------------

    def _event_soon(self, pod: Obj, type_: str, reason: str, message: str) -> None:
        """Queue an event for the recorder task (started when there is none)."""
        self._events.append((pod, type_, reason, message))
        if self._recorders < EVENT_SENDERS:
            self._recorders += 1
            self._spawn(self._send_events())

    async def _send_events(self) -> None:
        """The recorder: send queued events in order until none is left."""
        events = self._events
        try:
            while events:
                pod, type_, reason, message = events.popleft()
                try:
                    await self._record_event(pod, type_, reason, message)
                except Exception:  # a broken event must not stop the ones after it
                    log.exception("recording event %s for pod=%s", reason,
                                  (pod.get("metadata") or {}).get("name"))
        finally:
            self._recorders -= 1

    async def _update_status(self, pod: Obj, reason: str, message: str, nominated: str,
                             clear_nomination: bool) -> None:
        meta = pod.get("metadata") or {}
        pod_status = pod.get("status") or {}
        conditions = list(pod_status.get("conditions") or [])
        current = next((c for c in conditions if c.get("type") == "PodScheduled"), None)
        patch: dict[str, Any] = {}
        if (current is None or current.get("status") != "False" or current.get("reason") != reason
                or current.get("message") != message):
            transition = (current or {}).get("lastTransitionTime") \
                if (current or {}).get("status") == "False" else rfc3339(self.clock.now())
            condition = {"type": "PodScheduled", "status": "False", "lastProbeTime": None,
                         "lastTransitionTime": transition, "reason": reason, "message": message}
            patch["conditions"] = [condition if c is current else c for c in conditions] \
                if current is not None else [*conditions, condition]
        old_nomination = pod_status.get("nominatedNodeName") or ""
        if nominated and nominated != old_nomination:
            patch["nominatedNodeName"] = nominated
        elif clear_nomination and old_nomination:
            patch["nominatedNodeName"] = None
        if not patch:
            return
        try:
            await self.client.patch(PODS, meta.get("namespace"), meta.get("name"),
                                    {"status": patch}, patch_type="merge", subresource="status")
        except ApiError as exc:
            if exc.code != 404:
                log.warning("updating PodScheduled of pod=%s/%s: %s", meta.get("namespace"),
                            meta.get("name"), exc.message[:200])

    async def _record_event(self, pod: Obj, type_: str, reason: str, message: str) -> None:
        meta = pod.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        uid = meta.get("uid") or ""
        now = rfc3339(self.clock.now())
        last = self._last_event.get(uid)
        try:
            if last is not None and last[1] == message and reason == "FailedScheduling":
                name, _, count = last
                self._last_event[uid] = (name, message, count + 1)
                await self.client.patch(EVENTS, namespace, name,
                                        {"count": count + 1, "lastTimestamp": now})
                return
            name = f"{meta.get('name')}.{uuid.uuid4().hex[:16]}"
            if reason == "FailedScheduling":
                self._last_event[uid] = (name, message, 1)
            await self.client.create(EVENTS, {
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": name, "namespace": namespace},
                "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": namespace,
                                   "name": meta.get("name"), "uid": uid,
                                   "resourceVersion": meta.get("resourceVersion")},
                "reason": reason, "message": message[:1024], "type": type_,
                "source": {"component": COMPONENT},
                "reportingComponent": COMPONENT, "reportingInstance": self.identity,
                "action": "Scheduling" if reason == "FailedScheduling" else "Binding",
                "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            }, namespace=namespace)
        except ApiError as exc:
            if exc.code == 404:  # the aggregated event was deleted (or the namespace is gone)
                self._last_event.pop(uid, None)
                return
            log.warning("recording event for pod=%s/%s: %s", namespace, meta.get("name"),
                        exc.message[:200])
