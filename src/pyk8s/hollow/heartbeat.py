"""Heartbeats of many nodes from one loop: Lease renewals and Ready-status rewrites.

A kubelet renews its Lease every 10 s; N hollow nodes must do the same N times without N
timers or N concurrent requests. Each (kind, node) is a key of one
:class:`~pyk8s.client.WorkQueue`, added again after its interval each time it is done (the
queue holds every waiting key on one timer), and a fixed pool of ``heartbeat_concurrency``
workers drains it (no task per renewal).
First due times are spread evenly over the interval, so the load is a steady N / interval
requests a second. A renewal is one merge patch (no read-modify-write); the Lease is created
when the node registers (``create_lease``), and one found missing later is created again. A
failure is retried after ``heartbeat_retry`` seconds.

Due times are rounded up to a grid of ``tick`` seconds (0.1 s), so what falls due within a
tick goes out together: 1,000 nodes are 10 small bursts a second rather than a request every
10 ms. A renewal is late by at most one tick, nothing against a 40 s Lease; the API server,
which handles a burst back to back, spends about half the CPU per renewal (measured) that it
spends on requests that each find it idle and its caches cold, and this process wakes 10
times a second instead of 100.

A node in ``stopped`` is silent: its keys are dropped when they come due, which is how a
node that dies is simulated; ``resume`` puts it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

from pyk8s.client import ApiClient, ApiError, WorkQueue
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
        # Keys "<kind>/<node>" (a node name has no "/").
        self.queue = WorkQueue(clock=clock)
        self.nodes = 0
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
        self.nodes += len(names)
        n = max(len(names), 1)
        for kind in (LEASE, STATUS):
            step = self._interval(kind) / n
            for i, name in enumerate(names):
                self._after(kind, name, i * step)

    def stop(self, name: str) -> None:
        self.stopped.add(name)

    def resume(self, name: str) -> None:
        if name in self.stopped:
            self.stopped.discard(name)
            self.ready_since[name] = self.clock.now()
            self._after(LEASE, name, 0.0)
            self._after(STATUS, name, 0.0)

    def _after(self, kind: str, name: str, seconds: float) -> None:
        """Beat ``seconds`` from now, on the tick grid."""
        now = self.clock.monotonic()
        self.queue.add_after(f"{kind}/{name}", self.settings.on_grid(now + seconds) - now)

    async def run(self) -> None:
        log.info("heartbeats started nodes=%d", self.nodes)
        workers = [asyncio.create_task(self._worker(), name=f"hollow-heartbeat-{i}")
                   for i in range(max(self.settings.heartbeat_concurrency, 1))]
        try:
            await asyncio.gather(*workers)
        finally:
            self.queue.shutdown()
            for task in workers:
                task.cancel()
            for task in workers:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            log.info("heartbeats stopped")

    async def _worker(self) -> None:
        while (key := await self.queue.get()) is not None:
            kind, _, name = key.partition("/")
            try:
                if name not in self.stopped:  # a stopped node's key is dropped
                    await self._beat(kind, name)
            finally:
                self.queue.done(key)

    async def _beat(self, kind: str, name: str) -> None:
        try:
            if kind == LEASE:
                await self.renew_lease(name)
                self.lease_renewals += 1
            else:
                await self.update_status(name)
                self.status_updates += 1
            after = self._interval(kind)
        except ApiError as exc:
            self.failures += 1
            log.warning("heartbeat failed node=%s kind=%s: %s", name, kind, exc.message[:200])
            after = self.settings.heartbeat_retry
        except Exception:  # a worker must survive anything: the node keeps its heartbeats
            self.failures += 1
            log.exception("heartbeat failed node=%s kind=%s", name, kind)
            after = self.settings.heartbeat_retry
        self._after(kind, name, after)

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
