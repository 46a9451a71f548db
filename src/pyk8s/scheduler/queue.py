"""The scheduling queue: which pending pod to try next, and when to try a failed one again.

Three sub-queues, as upstream's ``PriorityQueue`` (``internal/queue/scheduling_queue.go``):

- **activeQ**: pods ready to be tried, highest ``spec.priority`` first, then the earliest
  to enter the queue (upstream's ``PrioritySort``);
- **backoffQ**: pods that failed and wait out a per-pod exponential backoff (1 s doubling to
  10 s by default, by attempt count) before going back to activeQ;
- **unschedulable**: pods no node could take. They stay there until a cluster event that
  could help them (a node added or changed, a bound pod deleted, ... as declared by the
  plugins that rejected them, ``EnqueueExtensions``) moves them to backoffQ or activeQ, or
  until they have waited ``max_unschedulable_seconds`` (5 min) without one.

A pod that fails while an event arrived *during* its cycle goes to backoffQ instead of
unschedulable (upstream's ``moveRequestCycle``), so a node added mid-cycle is never missed.
A pod that failed with an ``Error`` (a broken plugin, an API failure) always goes to backoffQ.

The queue also keeps the *nominator*: pods a preemption promised a node to, so that filters
count them on that node (``Framework.run_filter_with_nominated_pods``).

Concurrency: one event loop. :meth:`pop` awaits; :meth:`run` moves pods on a 1 s tick (30 s for
the unschedulable leftovers), on the injected clock, so tests drive time with ``FakeClock``
and call :meth:`flush_backoff_completed` / :meth:`flush_unschedulable_leftover` directly.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pyk8s.client.clock import SYSTEM_CLOCK, Clock
from pyk8s.scheduler.framework import ClusterEvent, EnqueueExtensions
from pyk8s.scheduler.nodeinfo import PodInfo

__all__ = ["QueuedPodInfo", "SchedulingQueue", "plugin_events_of"]

Obj = Mapping[str, Any]

UNSCHEDULABLE_FLUSH_PERIOD = 30.0
BACKOFF_FLUSH_PERIOD = 1.0


@dataclass(eq=False)
class QueuedPodInfo:
    """A pending pod and its history in the queue."""

    pod_info: PodInfo
    timestamp: float  # when it last entered the queue
    initial_attempt_timestamp: float | None = None
    attempts: int = 0
    unschedulable_plugins: set[str] = field(default_factory=set)
    seq: int = 0

    @property
    def uid(self) -> str:
        return self.pod_info.uid

    @property
    def pod(self) -> Obj:
        return self.pod_info.pod


def _spec_changed(old: Obj, new: Obj) -> bool:
    """An update worth retrying for: anything but status and bookkeeping metadata."""
    old_meta, new_meta = old.get("metadata") or {}, new.get("metadata") or {}
    return (old.get("spec") != new.get("spec")
            or old_meta.get("labels") != new_meta.get("labels")
            or old_meta.get("annotations") != new_meta.get("annotations"))


class SchedulingQueue:
    """activeQ + backoffQ + unschedulable pods, keyed by pod UID."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK, *, initial_backoff: float = 1.0,
                 max_backoff: float = 10.0, max_unschedulable: float = 300.0,
                 plugin_events: Mapping[str, Iterable[ClusterEvent] | None] | None = None) -> None:
        self.clock = clock
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.max_unschedulable = max_unschedulable
        # plugin name -> events that may help pods it rejected (None: every event).
        self.plugin_events: dict[str, frozenset[ClusterEvent] | None] = {
            name: None if events is None else frozenset(events)
            for name, events in (plugin_events or {}).items()}
        self._seq = itertools.count()
        self._active_heap: list[tuple[int, float, int, str]] = []
        self._active: dict[str, QueuedPodInfo] = {}
        self._backoff_heap: list[tuple[float, int, str]] = []
        self._backoff: dict[str, QueuedPodInfo] = {}
        self._unschedulable: dict[str, QueuedPodInfo] = {}
        self._in_flight: dict[str, QueuedPodInfo] = {}
        self._nominated: dict[str, dict[str, PodInfo]] = {}  # node -> uid -> pod
        self._nominated_node: dict[str, str] = {}  # uid -> node
        self.scheduling_cycle = 0
        self.move_request_cycle = -1
        self._wakeup = asyncio.Event()
        self._closed = False

    # --- sizes, for tests, metrics and the benchmark -----------------------------------

    def counts(self) -> dict[str, int]:
        return {"active": len(self._active), "backoff": len(self._backoff),
                "unschedulable": len(self._unschedulable), "in_flight": len(self._in_flight)}

    def __len__(self) -> int:
        return len(self._active) + len(self._backoff) + len(self._unschedulable)

    def where(self, uid: str) -> str:
        """Which sub-queue holds the pod ("" if none); for tests and debugging."""
        for name, queue in (("active", self._active), ("backoff", self._backoff),
                            ("unschedulable", self._unschedulable),
                            ("in_flight", self._in_flight)):
            if uid in queue:
                return name
        return ""

    # --- informer events ---------------------------------------------------------------

    def add(self, pod: Obj) -> None:
        """A new pending pod."""
        info = PodInfo(pod)
        self._update_nomination(info)
        if info.uid in self._in_flight:
            self._in_flight[info.uid].pod_info = info
            return
        self._remove(info.uid)
        self._push_active(QueuedPodInfo(info, self.clock.monotonic()))

    def update(self, old: Obj, new: Obj) -> None:
        """A pending pod changed; a real change to an unschedulable pod earns a retry."""
        info = PodInfo(new)
        uid = info.uid
        if uid in self._in_flight:
            self._in_flight[uid].pod_info = info
        elif uid in self._active:
            self._active[uid].pod_info = info
        elif uid in self._backoff:
            self._backoff[uid].pod_info = info
        elif uid in self._unschedulable:
            qinfo = self._unschedulable[uid]
            qinfo.pod_info = info
            if _spec_changed(old, new):
                del self._unschedulable[uid]
                self._requeue(qinfo)
        else:
            self.add(new)
            return
        self._update_nomination(info)

    def delete(self, pod: Obj) -> None:
        """The pod is gone, or is no longer ours to schedule (it was bound)."""
        uid = PodInfo(pod).uid
        self._remove(uid)
        self._in_flight.pop(uid, None)
        self.delete_nominated(uid)

    def _remove(self, uid: str) -> None:
        self._active.pop(uid, None)
        self._backoff.pop(uid, None)
        self._unschedulable.pop(uid, None)

    # --- the scheduling loop's side ----------------------------------------------------

    async def pop(self) -> QueuedPodInfo | None:
        """The next pod to schedule (waits for one); None once the queue is closed."""
        while not self._closed:
            while self._active_heap:
                _, _, seq, uid = heapq.heappop(self._active_heap)
                qinfo = self._active.get(uid)
                if qinfo is None or qinfo.seq != seq:
                    continue  # superseded entry
                del self._active[uid]
                self.scheduling_cycle += 1
                qinfo.attempts += 1
                if qinfo.initial_attempt_timestamp is None:
                    qinfo.initial_attempt_timestamp = self.clock.monotonic()
                self._in_flight[uid] = qinfo
                return qinfo
            self._wakeup.clear()
            await self._wakeup.wait()
        return None

    def done(self, uid: str) -> None:
        """The pod's cycle ended (it was assumed and is binding, or requeued)."""
        self._in_flight.pop(uid, None)

    def add_unschedulable(self, qinfo: QueuedPodInfo, pod_scheduling_cycle: int,
                          *, error: bool = False) -> None:
        """Requeue a pod whose cycle failed: backoffQ or the unschedulable pods."""
        if self._in_flight.pop(qinfo.uid, None) is None:
            return  # deleted (or bound) while it was being scheduled
        if qinfo.uid in self._active or qinfo.uid in self._backoff:
            return
        qinfo.timestamp = self.clock.monotonic()
        if error or not qinfo.unschedulable_plugins or \
                self.move_request_cycle >= pod_scheduling_cycle:
            self._push_backoff(qinfo)
        else:
            self._unschedulable[qinfo.uid] = qinfo

    # --- cluster events ----------------------------------------------------------------

    def move_all_to_active_or_backoff(self, event: ClusterEvent) -> int:
        """An event that may help unschedulable pods: retry those it is relevant to."""
        moved = 0
        for uid, qinfo in list(self._unschedulable.items()):
            if self._interested(qinfo, event):
                del self._unschedulable[uid]
                self._requeue(qinfo)
                moved += 1
        self.move_request_cycle = self.scheduling_cycle
        return moved

    def _interested(self, qinfo: QueuedPodInfo, event: ClusterEvent) -> bool:
        if not qinfo.unschedulable_plugins:
            return True
        for plugin in qinfo.unschedulable_plugins:
            events = self.plugin_events.get(plugin)
            if events is None or event in events:
                return True
        return False

    # --- time ----------------------------------------------------------------------------

    def backoff_duration(self, attempts: int) -> float:
        duration = self.initial_backoff
        for _ in range(1, attempts):
            if duration > self.max_backoff - duration:
                return self.max_backoff
            duration += duration
        return duration

    def backoff_expiry(self, qinfo: QueuedPodInfo) -> float:
        return qinfo.timestamp + self.backoff_duration(qinfo.attempts)

    def flush_backoff_completed(self) -> int:
        now = self.clock.monotonic()
        moved = 0
        while self._backoff_heap and self._backoff_heap[0][0] <= now:
            _, seq, uid = heapq.heappop(self._backoff_heap)
            qinfo = self._backoff.get(uid)
            if qinfo is None or qinfo.seq != seq:
                continue
            del self._backoff[uid]
            self._push_active(qinfo)
            moved += 1
        return moved

    def flush_unschedulable_leftover(self) -> int:
        now = self.clock.monotonic()
        stale = [q for q in self._unschedulable.values()
                 if now - q.timestamp > self.max_unschedulable]
        for qinfo in stale:
            del self._unschedulable[qinfo.uid]
            self._requeue(qinfo)
        return len(stale)

    async def run(self) -> None:
        """Move pods whose time has come, until :meth:`close`."""
        since_leftover = 0.0
        while not self._closed:
            await self.clock.sleep(BACKOFF_FLUSH_PERIOD)
            self.flush_backoff_completed()
            since_leftover += BACKOFF_FLUSH_PERIOD
            if since_leftover >= UNSCHEDULABLE_FLUSH_PERIOD:
                since_leftover = 0.0
                self.flush_unschedulable_leftover()

    def close(self) -> None:
        self._closed = True
        self._wakeup.set()

    # --- nominator -----------------------------------------------------------------------

    def add_nominated(self, info: PodInfo, node: str) -> None:
        self.delete_nominated(info.uid)
        if node:
            self._nominated.setdefault(node, {})[info.uid] = info
            self._nominated_node[info.uid] = node

    def delete_nominated(self, uid: str) -> None:
        node = self._nominated_node.pop(uid, None)
        if node is not None:
            pods = self._nominated.get(node, {})
            pods.pop(uid, None)
            if not pods:
                self._nominated.pop(node, None)

    def nominated_nodes(self) -> Collection[str]:
        """The nodes some pod is nominated to (a live view)."""
        return self._nominated.keys()

    def nominated_pods_for_node(self, node: str) -> list[PodInfo]:
        pods = self._nominated.get(node)
        return list(pods.values()) if pods else []

    def _update_nomination(self, info: PodInfo) -> None:
        node = (info.pod.get("status") or {}).get("nominatedNodeName") or ""
        if node:
            self.add_nominated(info, node)
        elif info.uid in self._nominated_node:
            self.delete_nominated(info.uid)

    # --- internals -----------------------------------------------------------------------

    def _requeue(self, qinfo: QueuedPodInfo) -> None:
        if self.backoff_expiry(qinfo) > self.clock.monotonic():
            self._push_backoff(qinfo)
        else:
            self._push_active(qinfo)

    def _push_active(self, qinfo: QueuedPodInfo) -> None:
        qinfo.seq = next(self._seq)
        self._active[qinfo.uid] = qinfo
        heapq.heappush(self._active_heap,
                       (-qinfo.pod_info.priority, qinfo.timestamp, qinfo.seq, qinfo.uid))
        self._wakeup.set()

    def _push_backoff(self, qinfo: QueuedPodInfo) -> None:
        qinfo.seq = next(self._seq)
        self._backoff[qinfo.uid] = qinfo
        heapq.heappush(self._backoff_heap, (self.backoff_expiry(qinfo), qinfo.seq, qinfo.uid))


def plugin_events_of(plugins: Iterable[Any]) -> dict[str, Iterable[ClusterEvent] | None]:
    """The ``plugin_events`` map for :class:`SchedulingQueue` from a framework's plugins."""
    return {p.name: (p.events_to_register() if isinstance(p, EnqueueExtensions) else None)
            for p in plugins}
