"""``HollowNodes``: register the nodes, then run their heartbeats and their pods.

Registration creates every Node (capacity, Ready, addresses, nodeInfo, ``type=hollow``) and
its Lease with at most ``register_concurrency`` nodes in flight; a Node that already exists
(a restart) is taken over: its labels and status are rewritten, its spec (cordon, taints)
kept. Then two parts run side by side until cancelled:
:class:`~pyk8s.hollow.heartbeat.Heartbeats` (Leases and Ready) and
:class:`~pyk8s.hollow.pods.PodSimulator` (the pods bound to these nodes).

Cancelling stops everything and deletes nothing: the nodes fall silent, and the node
lifecycle controller marks them Unknown after its grace period, as for machines that
died. ``stop_node(name)`` does that to one node while the rest go on; ``resume_node(name)``
brings it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from pyk8s.client import ApiClient, ApiError
from pyk8s.client.clock import SYSTEM_CLOCK, Clock
from pyk8s.hollow import objects
from pyk8s.hollow.heartbeat import NODES, Heartbeats
from pyk8s.hollow.pods import PodSimulator
from pyk8s.hollow.settings import HollowNodeSettings

log = logging.getLogger("pyk8s.hollow")


class HollowNodes:
    def __init__(self, client: ApiClient, settings: HollowNodeSettings | None = None, *,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.client = client
        self.settings = settings or HollowNodeSettings()
        if self.settings.count > objects.MAX_NODES:
            raise ValueError(f"at most {objects.MAX_NODES} hollow nodes")
        self.clock = clock
        self.names = [self.settings.node_name(i) for i in range(self.settings.count)]
        self._index = {name: i for i, name in enumerate(self.names)}
        self._uids: dict[str, str] = {}
        self.heartbeats = Heartbeats(client, self.settings, clock, lambda n: self._uids.get(n, ""))
        self.pods = PodSimulator(client, self.settings, clock, self._index.get,
                                 lambda n: n in self.heartbeats.stopped)
        self.registered = asyncio.Event()

    # -- for tests and benchmarks ----------------------------------------------------------

    def stop_node(self, name: str) -> None:
        """The node falls silent: no Lease, no status, its pods left as they are."""
        if name not in self._index:
            raise KeyError(name)
        self.heartbeats.stop(name)
        log.info("hollow node stopped node=%s", name)

    def resume_node(self, name: str) -> None:
        if name not in self._index:
            raise KeyError(name)
        self.heartbeats.resume(name)
        self.pods.requeue_node(name)
        log.info("hollow node resumed node=%s", name)

    def stats(self) -> dict[str, int]:
        return {"nodes": len(self.names), "stopped": len(self.heartbeats.stopped),
                "lease_renewals": self.heartbeats.lease_renewals,
                "status_updates": self.heartbeats.status_updates,
                "heartbeat_failures": self.heartbeats.failures,
                "pods_started": self.pods.started, "pods_deleted": self.pods.deleted}

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        log.info("hollow nodes starting count=%d prefix=%s", len(self.names), self.settings.prefix)
        pods = asyncio.create_task(self.pods.run(), name="hollow-pods")
        heartbeats: asyncio.Task[None] | None = None
        try:
            await self.register()
            self.heartbeats.add(self.names)
            heartbeats = asyncio.create_task(self.heartbeats.run(), name="hollow-heartbeats")
            self.registered.set()
            log.info("hollow nodes registered count=%d", len(self.names))
            await asyncio.gather(pods, heartbeats)
        finally:
            for task in (pods, heartbeats):
                if task is not None:
                    task.cancel()
            for task in (pods, heartbeats):
                if task is not None:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            log.info("hollow nodes stopped count=%d", len(self.names))

    async def register(self) -> None:
        slots = asyncio.Semaphore(max(self.settings.register_concurrency, 1))

        async def one(index: int) -> None:
            async with slots:
                await self._register_node(index)

        await asyncio.gather(*(one(i) for i in range(len(self.names))))

    async def _register_node(self, index: int) -> None:
        delay = 0.2
        while True:
            try:
                self._uids[self.names[index]] = await self._create_or_adopt(index)
                break
            except ApiError as exc:
                log.warning("registering node=%s failed: %s; retrying", self.names[index],
                            exc.message[:200])
                await self.clock.sleep(delay)
                delay = min(delay * 2, 5.0)
        # As a kubelet's lease controller does at start; a failure is left to the first
        # renewal, which creates a missing Lease.
        try:
            await self.heartbeats.create_lease(self.names[index])
        except ApiError as exc:
            log.warning("creating the Lease of node=%s failed: %s", self.names[index],
                        exc.message[:200])

    async def _create_or_adopt(self, index: int) -> str:
        now = self.clock.now()
        body = objects.node_object(self.settings, index, now)
        name = self.names[index]
        self.heartbeats.ready_since[name] = now
        try:
            node = await self.client.create(NODES, body)
        except ApiError as exc:
            if exc.code != 409:
                raise
            # As a kubelet re-registering: labels reconciled, spec (cordon, taints) left alone.
            node = await self.client.patch(NODES, None, name, {
                "metadata": {"labels": body["metadata"]["labels"]}})
            await self.client.patch(NODES, None, name, {"status": body["status"]},
                                    subresource="status")
        else:
            if not (node.get("status") or {}).get("conditions"):
                # A server that drops status on create: write it through /status.
                await self.client.patch(NODES, None, name, {"status": body["status"]},
                                        subresource="status")
        return str(node["metadata"].get("uid", ""))
