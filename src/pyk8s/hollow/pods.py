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

Waiting costs no task or timer per pod: a pod that is not due yet waits in the bucket of
its grid slot, and one loop hands each slot's pods, as it falls due, to a fixed pool of
``pod_workers`` workers, so the starts of one tick reach the API server as one burst. A
worker looks at the cached pod again before acting (level-triggered), and a key is never
handled by two workers at once. A failed request is retried with per-pod back-off.

Pods that finished are not simulated: every pod runs until deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import math
import random
from collections.abc import Callable
from typing import Any

from pyk8s.client import ApiClient, ApiError, Informer, object_key, strip_managed_fields
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
        # Waiting pods: slot time → keys, a heap of slot times, key → the slot it waits in.
        self._buckets: dict[float, list[str]] = {}
        self._slots: list[float] = []
        self._waiting: dict[str, float] = {}
        self._wake = asyncio.Event()
        # Keys handed to the workers (queued or being synced); ``_again``: due once more
        # meanwhile, looked at again when the worker is done.
        self._ready: asyncio.Queue[str] = asyncio.Queue()
        self._active: set[str] = set()
        self._again: set[str] = set()
        self._failures: dict[str, int] = {}
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
        self._failures.pop(object_key(pod), None)
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
            tick = self.settings.tick
            if tick > 0:  # on the tick grid: pods that start together report together
                due = math.ceil(due / tick) * tick
            self._start_due[uid] = due
        return due

    def requeue_node(self, node: str) -> None:
        """Look at a node's pods again (after it comes back)."""
        for pod in self.informer.list():
            if (pod.get("spec") or {}).get("nodeName") == node:
                self._enqueue(object_key(pod))

    # -- waiting on the grid ---------------------------------------------------------------

    def _schedule(self, key: str, due: float) -> None:
        if due <= self.clock.monotonic() + EPSILON:
            self._enqueue(key)
            return
        tick = self.settings.tick
        slot = math.ceil(due / tick - EPSILON) * tick if tick > 0 else due
        waiting = self._waiting.get(key)
        if waiting is not None and waiting <= slot:
            return  # it is looked at by then anyway
        self._waiting[key] = slot
        bucket = self._buckets.get(slot)
        if bucket is None:
            bucket = self._buckets[slot] = []
            heapq.heappush(self._slots, slot)
            self._wake.set()
        bucket.append(key)

    async def _tick(self) -> None:
        """Hand each slot's keys to the workers as it falls due; sleep at most a tick, so a
        slot added while sleeping is late by at most that."""
        cap = self.settings.tick if self.settings.tick > 0 else 0.05
        while True:
            if not self._slots:
                self._wake.clear()
                await self._wake.wait()
                continue
            now = self.clock.monotonic()
            delay = self._slots[0] - now
            if delay > EPSILON:  # a slot is a float sum: a microsecond early is on time
                await self.clock.sleep(min(delay, cap) - EPSILON)
                continue
            while self._slots and self._slots[0] <= now + EPSILON:
                slot = heapq.heappop(self._slots)
                for key in self._buckets.pop(slot):
                    if self._waiting.get(key) == slot:
                        del self._waiting[key]
                        self._enqueue(key)

    def _enqueue(self, key: str) -> None:
        if key in self._active:
            self._again.add(key)
            return
        self._active.add(key)
        self._ready.put_nowait(key)

    # -- workers ---------------------------------------------------------------------------

    async def run(self) -> None:
        tasks = [asyncio.create_task(self.informer.run(), name="hollow-pods-informer"),
                 asyncio.create_task(self._tick(), name="hollow-pods-tick")]
        tasks += [asyncio.create_task(self._worker(), name=f"hollow-pods-{i}")
                  for i in range(max(self.settings.pod_workers, 1))]
        log.info("pod simulator started workers=%d", len(tasks) - 2)
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            log.info("pod simulator stopped")

    async def _worker(self) -> None:
        while True:
            key = await self._ready.get()
            try:
                await self.sync(key)
                self._failures.pop(key, None)
            except ApiError as exc:
                log.warning("pod sync failed pod=%s: %s", key, exc.message[:200])
                self._retry(key)
            except Exception:
                log.exception("pod sync failed pod=%s", key)
                self._retry(key)
            finally:
                self._active.discard(key)
                if key in self._again:
                    self._again.discard(key)
                    self._enqueue(key)

    def _retry(self, key: str) -> None:
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        self._schedule(key, self.clock.monotonic() + min(RETRY_BASE * 2 ** failures, RETRY_MAX))

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
