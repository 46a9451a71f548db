"""The pods of the hollow nodes: reported Running and Ready, and removed when deleted.

One informer watches every bound pod (``spec.nodeName!=``) and keeps those whose node is
one of ours; 5,000 nodes share that one watch. Its handlers decide from the event alone
whether the pod needs anything, so the events that change nothing for us (above all the
echo of our own status patch) cost a few dict lookups and nothing more:

* bound, not yet Running and Ready → after a simulated start (``pod_start_delay``, counted
  from when the pod was first seen and rounded up to the ``tick`` grid) patch ``/status``
  with what a kubelet reports: phase Running, every condition True, running containers
  with ``hollow://`` IDs, a pod IP from the node's range, in one small merge patch;
* deleting (``deletionTimestamp``) → after ``min(pod_termination_delay, grace)`` delete it
  for good (grace 0, uid precondition), as the kubelet does once its containers stopped;
* on a stopped node → nothing at all: a dead node neither reports nor finishes deletions.

Pods wait in a :class:`~pyk8s.client.WorkQueue`, as any controller's keys do: a pod not due
yet is added after its delay (one timer for them all, not one each), rounded up to the
``tick`` grid so that the starts of one tick reach the API server as one burst, and a fixed
pool of ``pod_workers`` workers drains the queue. A worker looks at the cached pod again
before acting (level-triggered), and a key is never handled by two workers at once. A failed
request is retried with the queue's per-pod back-off.

Pods that finished are not simulated: every pod runs until deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import Any

from pyk8s.client import ApiClient, ApiError, Informer, WorkQueue, object_key, strip_managed_fields
from pyk8s.client.clock import Clock
from pyk8s.hollow import objects
from pyk8s.hollow.settings import HollowNodeSettings
from pyk8s.machinery.resources import CATALOGUE

log = logging.getLogger("pyk8s.hollow.pods")

PODS = CATALOGUE.resource("v1", "pods")
Obj = dict[str, Any]

RETRY_BASE = 0.05
RETRY_MAX = 10.0
EPSILON = 1e-6


def _rv(obj: Obj) -> int:
    try:
        return int(obj["metadata"].get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


class PodSimulator:
    def __init__(self, client: ApiClient, settings: HollowNodeSettings, clock: Clock,
                 node_index: Callable[[str], int | None], is_stopped: Callable[[str], bool],
                 informer: Informer | None = None) -> None:
        self.client = client
        self.settings = settings
        self.clock = clock
        self._node_index = node_index
        self._is_stopped = is_stopped
        if informer is None:
            informer = Informer(client, PODS, field_selector="spec.nodeName!=")
            # Status patches never read managedFields: do not cache them (a kubelet's do not).
            informer.set_transform(strip_managed_fields)
        self.informer = informer
        self._random = random.Random(settings.seed)
        # uid → when it is due to start / to be removed (monotonic), drawn once per pod.
        self._start_due: dict[str, float] = {}
        self._delete_due: dict[str, float] = {}
        # uid → resourceVersion our status patch produced: until the watch delivers it, the
        # cached pod is older than what we reported and must not be reported again.
        self._reported: dict[str, int] = {}
        # uids whose final delete was sent: their later events need nothing.
        self._finished: set[str] = set()
        self._addresses: dict[int, objects.PodAddresses] = {}
        self.queue = WorkQueue(base_delay=RETRY_BASE, max_delay=RETRY_MAX, clock=clock)
        self.started = 0
        self.deleted = 0
        self.informer.add_handlers(on_add=self._on_event,
                                   on_update=lambda _, new: self._on_event(new),
                                   on_delete=self._on_delete)

    # -- handlers: decide cheaply, never wait ----------------------------------------------

    def _on_event(self, pod: Obj) -> None:
        node = (pod.get("spec") or {}).get("nodeName", "")
        if self._node_index(node) is None or self._is_stopped(node):
            return
        due = self._due(pod)
        if due is not None:
            self._schedule(object_key(pod), due)

    def _on_delete(self, pod: Obj) -> None:
        node = (pod.get("spec") or {}).get("nodeName", "")
        index = self._node_index(node)
        if index is None:
            return
        uid = pod["metadata"].get("uid", "")
        self._start_due.pop(uid, None)
        self._delete_due.pop(uid, None)
        self._reported.pop(uid, None)
        self._finished.discard(uid)
        self.queue.forget(object_key(pod))
        if index in self._addresses:
            self._addresses[index].release(uid)

    def _due(self, pod: Obj) -> float | None:
        """When the pod needs us next (monotonic), or None if it needs nothing."""
        meta = pod["metadata"]
        uid = meta.get("uid", "")
        if meta.get("deletionTimestamp"):
            if uid in self._finished:
                return None
            due = self._delete_due.get(uid)
            if due is None:  # counted from when we notice, as a kubelet starts stopping then
                delay = self.settings.pod_termination_delay
                grace = meta.get("deletionGracePeriodSeconds")
                if grace is not None:
                    delay = min(delay, float(grace))
                due = self._delete_due[uid] = self.clock.monotonic() + delay
            return due
        if objects.is_running_and_ready(pod):
            self._reported.pop(uid, None)
            return None
        reported = self._reported.get(uid)
        if reported is not None:
            if _rv(pod) < reported:
                return None  # our report is on its way
            del self._reported[uid]  # someone changed it back since: report again
        due = self._start_due.get(uid)
        if due is None:
            low, high = self.settings.pod_start_delay
            due = self.clock.monotonic() + self._random.uniform(low, high)
            # On the tick grid: pods that start together report together.
            due = self._start_due[uid] = self.settings.on_grid(due)
        return due

    def requeue_node(self, node: str) -> None:
        """Look at a node's pods again (after it comes back)."""
        for pod in self.informer.list():
            if (pod.get("spec") or {}).get("nodeName") == node:
                self.queue.add(object_key(pod))

    # -- waiting on the grid ---------------------------------------------------------------

    def _schedule(self, key: str, due: float) -> None:
        """Queue the key now if due, else once due, rounded up to the tick grid: pods that
        fall due within one tick are handled together, as one burst of requests."""
        now = self.clock.monotonic()
        if due <= now + EPSILON:
            self.queue.add(key)
        else:
            self.queue.add_after(key, self.settings.on_grid(due) - now)

    # -- workers ---------------------------------------------------------------------------

    async def run(self) -> None:
        tasks = [asyncio.create_task(self.informer.run(), name="hollow-pods-informer")]
        tasks += [asyncio.create_task(self._worker(), name=f"hollow-pods-{i}")
                  for i in range(max(self.settings.pod_workers, 1))]
        log.info("pod simulator started workers=%d", len(tasks) - 1)
        try:
            await asyncio.gather(*tasks)
        finally:
            self.queue.shutdown()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            log.info("pod simulator stopped")

    async def _worker(self) -> None:
        while (key := await self.queue.get()) is not None:
            try:
                await self.sync(key)
                self.queue.forget(key)
            except ApiError as exc:
                log.warning("pod sync failed pod=%s: %s", key, exc.message[:200])
                self.queue.add_rate_limited(key)
            except Exception:
                log.exception("pod sync failed pod=%s", key)
                self.queue.add_rate_limited(key)
            finally:
                self.queue.done(key)

    async def sync(self, key: str) -> None:
        """Act on the cached pod if it is due, else wait for its slot."""
        pod = self.informer.get(key)
        if pod is None:
            return
        node = (pod.get("spec") or {}).get("nodeName", "")
        index = self._node_index(node)
        if index is None or self._is_stopped(node):
            return
        due = self._due(pod)
        if due is None:
            return
        if due > self.clock.monotonic() + EPSILON:
            self._schedule(key, due)
            return
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            await self._delete(meta)
        else:
            await self._report_running(pod, index)

    async def _report_running(self, pod: Obj, index: int) -> None:
        meta = pod["metadata"]
        uid = meta.get("uid", "")
        addresses = self._addresses.get(index)
        if addresses is None:
            addresses = self._addresses[index] = objects.PodAddresses(index)
        status = objects.running_status(pod, objects.node_ip(index), addresses.take(uid),
                                        self.clock.now())
        try:
            result = await self.client.patch(PODS, meta["namespace"], meta["name"],
                                             {"status": status}, subresource="status")
        except ApiError as exc:
            if exc.code != 404:
                raise
            return
        self._reported[uid] = _rv(result) if isinstance(result, dict) and "metadata" in result \
            else 0
        self.started += 1

    async def _delete(self, meta: Obj) -> None:
        uid = meta.get("uid", "")
        try:
            await self.client.delete(PODS, meta["namespace"], meta["name"], grace_period_seconds=0,
                                     preconditions={"uid": uid})
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise
        self._finished.add(uid)
        self.deleted += 1
