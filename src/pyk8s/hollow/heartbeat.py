"""Heartbeats of many nodes from one loop: Lease renewals and Ready-status rewrites.

A kubelet renews its Lease every 10 s; N hollow nodes must do the same N times without N
timers or N concurrent requests. One heap holds every (due time, kind, node); the loop pops
what is due and hands it to a fixed pool of ``heartbeat_concurrency`` workers (no task per
renewal).
First due times are spread evenly over the interval, so the load is a steady N / interval
requests a second. A renewal is one merge patch (no read-modify-write); the Lease is created
when the node registers (``create_lease``), and one found missing later is created again. A
failure is retried after ``heartbeat_retry`` seconds.

The loop wakes on a grid of ``tick`` seconds (0.1 s) and sends what fell due
since, so 1,000 nodes are 10 small bursts a second rather than a request every 10 ms. A
renewal is late by at most one tick, nothing against a 40 s Lease; the API server, which
handles a burst back to back, spends about half the CPU per renewal (measured) that it spends
on requests that each find it idle and its caches cold, and this process wakes 10 times a
second instead of 100.

A node in ``stopped`` is silent: its entries are dropped when they come due, which is how a
node that dies is simulated; ``resume`` puts it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import math
from collections.abc import Callable
from datetime import datetime

from pyk8s.client import ApiClient, ApiError
from pyk8s.client.clock import Clock
from pyk8s.hollow import objects
from pyk8s.hollow.settings import HollowNodeSettings
from pyk8s.machinery.resources import CATALOGUE

log = logging.getLogger("pyk8s.hollow.heartbeat")

NODES = CATALOGUE.resource("v1", "nodes")
LEASES = CATALOGUE.resource("coordination.k8s.io/v1", "leases")
LEASE = "lease"
STATUS = "status"


class Heartbeats:
    def __init__(self, client: ApiClient, settings: HollowNodeSettings, clock: Clock,
                 node_uid: Callable[[str], str]) -> None:
        self.client = client
        self.settings = settings
        self.clock = clock
        self._node_uid = node_uid
        self._heap: list[tuple[float, str, str, int]] = []
        # A node's entries carry its generation; resume() bumps it, orphaning old entries.
        self._generation: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._due: asyncio.Queue[tuple[str, str, int]] = asyncio.Queue()
        self.stopped: set[str] = set()
        # When each node last became Ready (lastTransitionTime of its conditions).
        self.ready_since: dict[str, datetime] = {}
        self.lease_renewals = 0
        self.status_updates = 0
        self.failures = 0

    def _interval(self, kind: str) -> float:
        return self.settings.lease_interval if kind == LEASE else self.settings.status_update_interval

    def add(self, names: list[str]) -> None:
        """Schedule every node's heartbeats, first due times spread over each interval."""
        now = self.clock.monotonic()
        n = max(len(names), 1)
        for kind in (LEASE, STATUS):
            step = self._interval(kind) / n
            for i, name in enumerate(names):
                gen = self._generation.setdefault(name, 0)
                heapq.heappush(self._heap, (now + i * step, kind, name, gen))
        self._wake.set()

    def stop(self, name: str) -> None:
        self.stopped.add(name)

    def resume(self, name: str) -> None:
        if name in self.stopped:
            self.stopped.discard(name)
            self.ready_since[name] = self.clock.now()
            now = self.clock.monotonic()
            gen = self._generation[name] = self._generation.get(name, 0) + 1
            heapq.heappush(self._heap, (now, LEASE, name, gen))
            heapq.heappush(self._heap, (now, STATUS, name, gen))
            self._wake.set()

    async def run(self) -> None:
        log.info("heartbeats started nodes=%d", len(self._generation))
        workers = [asyncio.create_task(self._worker(), name=f"hollow-heartbeat-{i}")
                   for i in range(max(self.settings.heartbeat_concurrency, 1))]
        try:
            while True:
                now = self.clock.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    _, kind, name, gen = heapq.heappop(self._heap)
                    if name in self.stopped or gen != self._generation.get(name):
                        continue
                    self._due.put_nowait((kind, name, gen))
                self._wake.clear()
                delay = self._next_wake() - self.clock.monotonic() if self._heap else 1.0
                if delay > 0:
                    sleeper = asyncio.ensure_future(self.clock.sleep(min(delay, 1.0)))
                    waker = asyncio.ensure_future(self._wake.wait())
                    try:
                        await asyncio.wait([sleeper, waker], return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        sleeper.cancel()
                        waker.cancel()
        finally:
            for task in workers:
                task.cancel()
            for task in workers:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            log.info("heartbeats stopped")

    def _next_wake(self) -> float:
        """The first due time, rounded up to the tick grid."""
        due = self._heap[0][0]
        tick = self.settings.tick
        return math.ceil(due / tick) * tick if tick > 0 else due

    async def _worker(self) -> None:
        while True:
            await self._beat(*await self._due.get())

    async def _beat(self, kind: str, name: str, gen: int) -> None:
        try:
            if kind == LEASE:
                await self.renew_lease(name)
                self.lease_renewals += 1
            else:
                await self.update_status(name)
                self.status_updates += 1
            due = self.clock.monotonic() + self._interval(kind)
        except ApiError as exc:
            self.failures += 1
            log.warning("heartbeat failed node=%s kind=%s: %s", name, kind, exc.message[:200])
            due = self.clock.monotonic() + self.settings.heartbeat_retry
        except Exception:  # a worker must survive anything: the node keeps its heartbeats
            self.failures += 1
            log.exception("heartbeat failed node=%s kind=%s", name, kind)
            due = self.clock.monotonic() + self.settings.heartbeat_retry
        heapq.heappush(self._heap, (due, kind, name, gen))

    async def renew_lease(self, name: str) -> None:
        now = self.clock.now()
        duration = self.settings.lease_duration
        try:
            await self.client.patch(LEASES, "kube-node-lease", name,
                                    {"spec": objects.lease_spec(name, duration, now)})
        except ApiError as exc:
            if exc.code != 404:
                raise
            await self.create_lease(name)

    async def create_lease(self, name: str) -> None:
        """A new Lease owned by its Node; one that exists already (a restart) is kept, and
        renewed by the next patch."""
        lease = objects.lease_object(name, self.settings.lease_duration, self.clock.now(),
                                     self._node_uid(name))
        try:
            await self.client.create(LEASES, lease, namespace="kube-node-lease")
        except ApiError as exc:
            if exc.code != 409:
                raise

    async def update_status(self, name: str) -> None:
        now = self.clock.now()
        since = self.ready_since.setdefault(name, now)
        await self.client.patch(NODES, None, name,
                                {"status": {"conditions": objects.node_conditions(now, since)}},
                                subresource="status")
