"""The pods of the hollow nodes: reported Running and Ready, and removed when deleted.

One informer watches every bound pod (``spec.nodeName!=``) and keeps those whose node is
one of ours; 5,000 nodes share that one watch. Its handlers only enqueue keys; a few workers
run a level-triggered ``sync(key)`` on the cached pod:

* bound, not yet Running and Ready → after a simulated start (``pod_start_delay``, counted
  from when the pod was first seen and rounded up to the ``tick`` grid, so the starts of one
  tick reach the API server as one burst; waited with ``add_after`` so no worker sleeps) patch
  ``/status`` with what a kubelet reports: phase Running, every condition True, running
  containers with ``hollow://`` IDs, a pod IP from the node's range;
* deleting (``deletionTimestamp``) → after ``min(pod_termination_delay, grace)`` delete it
  for good (grace 0, uid precondition), as the kubelet does once its containers stopped;
* on a stopped node → nothing at all: a dead node neither reports nor finishes deletions.

Pods that finished are not simulated: every pod runs until deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections.abc import Callable
from typing import Any

from pyk8s.client import ApiClient, ApiError, Informer, WorkQueue, object_key
from pyk8s.client.clock import Clock
from pyk8s.hollow import objects
from pyk8s.hollow.settings import HollowNodeSettings
from pyk8s.machinery.resources import CATALOGUE

log = logging.getLogger("pyk8s.hollow.pods")

PODS = CATALOGUE.resource("v1", "pods")
Obj = dict[str, Any]


class PodSimulator:
    def __init__(self, client: ApiClient, settings: HollowNodeSettings, clock: Clock,
                 node_index: Callable[[str], int | None], is_stopped: Callable[[str], bool],
                 informer: Informer | None = None) -> None:
        self.client = client
        self.settings = settings
        self.clock = clock
        self._node_index = node_index
        self._is_stopped = is_stopped
        self.informer = informer or Informer(client, PODS, field_selector="spec.nodeName!=")
        self.queue = WorkQueue(base_delay=0.05, max_delay=10.0, clock=clock)
        self._random = random.Random(settings.seed)
        # uid → when it is due to start / to be removed (monotonic), drawn once per pod.
        self._start_due: dict[str, float] = {}
        self._delete_due: dict[str, float] = {}
        self._addresses: dict[int, objects.PodAddresses] = {}
        self.started = 0
        self.deleted = 0
        self.informer.add_index("byNode", lambda pod: [(pod.get("spec") or {}).get("nodeName", "")])
        self.informer.add_handlers(on_add=self._on_event, on_update=lambda _, new: self._on_event(new),
                                   on_delete=self._on_delete)

    # -- handlers: enqueue only ------------------------------------------------------------

    def _ours(self, pod: Obj) -> bool:
        return self._node_index((pod.get("spec") or {}).get("nodeName", "")) is not None

    def _on_event(self, pod: Obj) -> None:
        if self._ours(pod):
            self.queue.add(object_key(pod))

    def _on_delete(self, pod: Obj) -> None:
        if not self._ours(pod):
            return
        uid = pod["metadata"].get("uid", "")
        self._start_due.pop(uid, None)
        self._delete_due.pop(uid, None)
        index = self._node_index(pod["spec"]["nodeName"])
        if index is not None and index in self._addresses:
            self._addresses[index].release(uid)

    def requeue_node(self, node: str) -> None:
        """Look at a node's pods again (after it comes back)."""
        for pod in self.informer.by_index("byNode", node):
            self.queue.add(object_key(pod))

    # -- workers ---------------------------------------------------------------------------

    async def run(self) -> None:
        informer = asyncio.create_task(self.informer.run(), name="hollow-pods-informer")
        workers = [asyncio.create_task(self._worker(), name=f"hollow-pods-{i}")
                   for i in range(max(self.settings.pod_workers, 1))]
        log.info("pod simulator started workers=%d", len(workers))
        try:
            await asyncio.gather(informer, *workers)
        finally:
            self.queue.shutdown()
            for task in (informer, *workers):
                task.cancel()
            for task in (informer, *workers):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            log.info("pod simulator stopped")

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            if key is None:
                return
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
        pod = self.informer.get(key)
        if pod is None:
            return
        node = (pod.get("spec") or {}).get("nodeName", "")
        index = self._node_index(node)
        if index is None or self._is_stopped(node):
            return
        meta = pod["metadata"]
        uid = meta.get("uid", "")
        if meta.get("deletionTimestamp"):
            await self._finish_deletion(key, pod)
            return
        if objects.is_running_and_ready(pod):
            return
        due = self._start_due.get(uid)
        if due is None:
            low, high = self.settings.pod_start_delay
            due = self.clock.monotonic() + self._random.uniform(low, high)
            tick = self.settings.tick
            if tick > 0:  # on the tick grid: pods that start together report together
                due = math.ceil(due / tick) * tick
            self._start_due[uid] = due
        left = due - self.clock.monotonic()
        if left > 0:
            self.queue.add_after(key, left)
            return
        addresses = self._addresses.get(index)
        if addresses is None:
            addresses = self._addresses[index] = objects.PodAddresses(index)
        status = objects.running_status(pod, objects.node_ip(index), addresses.take(uid),
                                        self.clock.now())
        try:
            await self.client.patch(PODS, meta["namespace"], meta["name"], {"status": status},
                                    subresource="status")
        except ApiError as exc:
            if exc.code != 404:
                raise
            return
        self.started += 1

    async def _finish_deletion(self, key: str, pod: Obj) -> None:
        """Counted from when we notice the deletion, as a kubelet starts stopping then."""
        meta = pod["metadata"]
        uid = meta.get("uid", "")
        due = self._delete_due.get(uid)
        if due is None:
            delay = self.settings.pod_termination_delay
            grace = meta.get("deletionGracePeriodSeconds")
            if grace is not None:
                delay = min(delay, float(grace))
            due = self._delete_due[uid] = self.clock.monotonic() + delay
        left = due - self.clock.monotonic()
        if left > 0:
            self.queue.add_after(key, left)
            return
        try:
            await self.client.delete(PODS, meta["namespace"], meta["name"], grace_period_seconds=0,
                                     preconditions={"uid": uid})
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise
        self.deleted += 1
