"""The node IPAM controller: give every Node a pod CIDR carved out of the cluster CIDR.

Upstream ``pkg/controller/nodeipam`` with its range allocator. The cluster CIDR
(``10.244.0.0/16``) is cut into blocks of ``node_cidr_mask_size`` (``/24``); a Node whose
``spec.podCIDR`` is empty gets the lowest free block, written to ``spec.podCIDR`` and
``spec.podCIDRs`` in one merge patch. The kubelet (and its CNI configuration) reads it from
there. The API server lets ``podCIDR`` go from "" to a value once and never change after,
so a block handed out stays with its node until the node is deleted; then it is free again.

Bookkeeping (which blocks are used, by whom) lives only in this process. It is rebuilt from
the informer's initial list before any worker runs, so a restarted controller manager sees
every block already handed out before it hands out another. Nodes that registered with a
pod CIDR of their own inside the cluster CIDR have it marked used the same way; a pod CIDR
outside the cluster CIDR (hollow nodes bring their own, from ``10.64.0.0/24`` up) is
logged once and left alone.
Between a patch and its watch event the block is held for the node under the node's uid,
so a retried sync re-sends the same block rather than taking a second one.

When the range is exhausted the node gets a Warning Event ``CIDRNotAvailable`` (upstream's
reason and wording) and waits; the next deletion that frees a block re-queues every waiting
node. Write failures (a 409, the server away) retry through the work queue with back-off.

Deliberate differences: IPv4 only (no dual-stack, no IPv6 cluster CIDR); the lowest free block
is taken rather than upstream's rotating cursor (deterministic, and a freed block is reused
first); the service CIDR is not carved out of the cluster CIDR (this controller manager does
not know it; the defaults do not overlap).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from pyk8s.client import ApiClient, InformerFactory
from pyk8s.client.clock import SYSTEM_CLOCK, Clock
from pyk8s.controllers.base import Obj, QueueController, is_deleting, meta
from pyk8s.controllers.events import EventRecorder
from pyk8s.machinery.errors import ApiError
from pyk8s.machinery.resources import CATALOGUE

NODES = CATALOGUE.resource("v1", "nodes")
CIDR_NOT_AVAILABLE = "CIDRNotAvailable"


def parse_cidr(value: object) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """``addr/len`` as Go's ParseCIDR reads it (host bits allowed), else None."""
    if not isinstance(value, str) or value.count("/") != 1 or not value.split("/")[1].isdigit():
        return None
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None


def node_pod_cidr(node: Obj) -> str:
    spec = node.get("spec") or {}
    cidr = spec.get("podCIDR") or next(iter(spec.get("podCIDRs") or []), "")
    return str(cidr or "")


class CidrSet:
    """The blocks of one cluster CIDR, numbered from 0, each used by zero or more holders.

    Counts rather than flags, so two nodes that were (wrongly) given overlapping ranges by
    someone else do not free each other's block when one of them goes.
    """

    def __init__(self, cluster_cidr: str, mask_size: int) -> None:
        net = parse_cidr(cluster_cidr)
        if net is None:
            raise ValueError(f"invalid cluster CIDR {cluster_cidr!r}")
        if not isinstance(net, ipaddress.IPv4Network):
            raise ValueError(f"cluster CIDR {cluster_cidr}: only IPv4 is supported")
        if not net.prefixlen <= mask_size <= 32:
            raise ValueError(f"node CIDR mask size /{mask_size} must be between the cluster "
                             f"CIDR's /{net.prefixlen} and /32")
        self.cluster = net
        self.mask_size = mask_size
        self.size = 1 << (mask_size - net.prefixlen)
        self._base = int(net.network_address)
        self._shift = 32 - mask_size
        self._count: dict[int, int] = {}
        self._lowest_free = 0

    def cidr(self, index: int) -> str:
        return f"{ipaddress.IPv4Address(self._base + (index << self._shift))}/{self.mask_size}"

    def span(self, cidr: str) -> range | None:
        """The blocks ``cidr`` overlaps (all of them for a larger range); None when it is not
        a CIDR or does not overlap the cluster CIDR."""
        net = parse_cidr(cidr)
        if not isinstance(net, ipaddress.IPv4Network):
            return None
        low = max(int(net.network_address), self._base)
        high = min(int(net.broadcast_address), int(self.cluster.broadcast_address))
        if low > high:
            return None
        return range((low - self._base) >> self._shift, ((high - self._base) >> self._shift) + 1)

    def occupy(self, blocks: range) -> bool:
        """Mark ``blocks`` used; False when some were used already."""
        clean = True
        for i in blocks:
            clean = clean and i not in self._count
            self._count[i] = self._count.get(i, 0) + 1
        return clean

    def release(self, blocks: range) -> None:
        for i in blocks:
            left = self._count.get(i, 0) - 1
            if left > 0:
                self._count[i] = left
            else:
                self._count.pop(i, None)
                self._lowest_free = min(self._lowest_free, i)

    def allocate(self) -> int | None:
        """The lowest free block, now used; None when every block is."""
        i = self._lowest_free
        while i < self.size and i in self._count:
            i += 1
        self._lowest_free = i
        if i >= self.size:
            return None
        self._count[i] = 1
        return i

    @property
    def used(self) -> int:
        return len(self._count)


@dataclass
class _Held:
    uid: str
    cidr: str
    blocks: range


class NodeIpamController(QueueController):
    name = "nodeipam"

    def __init__(self, client: ApiClient, factory: InformerFactory, *,
                 cluster_cidr: str = "10.244.0.0/16", node_cidr_mask_size: int = 24,
                 clock: Clock = SYSTEM_CLOCK, recorder: EventRecorder | None = None) -> None:
        super().__init__(clock)
        self.client = client
        self.cidrs = CidrSet(cluster_cidr, node_cidr_mask_size)
        self.recorder = recorder or EventRecorder(client, "cidrAllocator")
        self.nodes = factory.informer(NODES)
        self._held: dict[str, _Held] = {}
        self._waiting: set[str] = set()
        self._foreign: dict[str, str] = {}
        self._rebuilt = False
        self.nodes.add_handlers(on_add=self._enqueue, on_update=self._node_updated,
                                on_delete=self._enqueue)

    def _enqueue(self, node: Obj) -> None:
        self.queue.add(str(meta(node).get("name", "")))

    def _node_updated(self, old: Obj, new: Obj) -> None:
        # Status heartbeats are most updates; only a change of pod CIDR, identity or
        # deletion, or a node still without a CIDR, is work.
        if (not node_pod_cidr(new) or node_pod_cidr(new) != node_pod_cidr(old)
                or meta(new).get("uid") != meta(old).get("uid")
                or is_deleting(new) != is_deleting(old)):
            self._enqueue(new)

    async def run(self, workers: int = 1) -> None:
        await self.nodes.wait_synced()
        self.rebuild()
        self.log.info("cluster CIDR %s in /%d blocks: %d of %d used", self.cidrs.cluster,
                      self.cidrs.mask_size, self.cidrs.used, self.cidrs.size)
        await super().run(workers)

    def rebuild(self) -> None:
        """Mark every block the cached nodes hold as used (before anything is allocated)."""
        if self._rebuilt:
            return
        self._rebuilt = True
        for node in self.nodes.list():
            if not is_deleting(node) and node_pod_cidr(node):
                self._occupy(node, node_pod_cidr(node))

    # -- bookkeeping -----------------------------------------------------------------------

    def _release(self, name: str) -> None:
        held = self._held.pop(name, None)
        if held is None:
            return
        self.cidrs.release(held.blocks)
        self.log.info("released podCIDR=%s of node=%s", held.cidr, name)
        for waiting in sorted(self._waiting):
            self.queue.add(waiting)
        self._waiting.clear()

    def _occupy(self, node: Obj, cidr: str) -> None:
        """Record the pod CIDR ``node`` already has."""
        name = str(meta(node).get("name", ""))
        held = self._held.get(name)
        if held is not None and held.cidr == cidr:
            held.uid = str(meta(node).get("uid", ""))
            return
        blocks = self.cidrs.span(cidr)
        if blocks is None:
            self._release(name)
            if self._foreign.get(name) != cidr:
                self._foreign[name] = cidr
                self.log.info("node=%s podCIDR=%s is outside the cluster CIDR %s; left alone",
                              name, cidr, self.cidrs.cluster)
            return
        self._release(name)
        self._foreign.pop(name, None)
        if not self.cidrs.occupy(blocks):
            self.log.warning("node=%s podCIDR=%s overlaps a range already in use", name, cidr)
        self._held[name] = _Held(str(meta(node).get("uid", "")), cidr, blocks)
        self._waiting.discard(name)

    # -- the sync --------------------------------------------------------------------------

    async def sync(self, key: str) -> float | None:
        self.rebuild()
        node = self.nodes.get(key)
        if node is None or is_deleting(node):
            self._release(key)
            self._waiting.discard(key)
            self._foreign.pop(key, None)
            return None
        current = node_pod_cidr(node)
        if current:
            self._occupy(node, current)
            return None
        uid = str(meta(node).get("uid", ""))
        held = self._held.get(key)
        if held is not None and held.uid != uid:
            self._release(key)  # a former node of the same name
            held = None
        if held is None:
            index = self.cidrs.allocate()
            if index is None:
                self._exhausted(node)
                return None
            held = self._held[key] = _Held(uid, self.cidrs.cidr(index), range(index, index + 1))
            self._waiting.discard(key)
        try:
            await self.client.patch(NODES, None, key, {
                "spec": {"podCIDR": held.cidr, "podCIDRs": [held.cidr]}})
        except ApiError as exc:
            if exc.code == 404:
                self._release(key)
                return None
            raise  # 409, 422 (someone else set it), 5xx: back off, re-read the cache
        self.log.info("set podCIDR=%s on node=%s", held.cidr, key)
        return None

    def _exhausted(self, node: Obj) -> None:
        name = str(meta(node).get("name", ""))
        if name in self._waiting:
            return
        self._waiting.add(name)
        self.log.warning("no pod CIDR left in %s for node=%s (%d /%d blocks, all used); "
                         "waiting for a node to go", self.cidrs.cluster, name, self.cidrs.size,
                         self.cidrs.mask_size)
        self.recorder.event(node, NODES, "Warning", CIDR_NOT_AVAILABLE,
                            f"Node {name} status is now: {CIDR_NOT_AVAILABLE}")
