"""The node's heartbeat Lease in ``kube-node-lease`` (upstream ``pkg/kubelet/nodelease``,
``component-helpers/apimachinery/lease``).

Renewed every ``duration / 4`` (10 s for the default 40 s); the node lifecycle controller
reads ``renewTime`` to decide the node is alive, which is far cheaper than writing the whole
Node status that often. The Lease is owned by the Node, so it goes when the Node does. On a
failed renewal it retries sooner (upstream: 200 ms doubling to 7 s) until it succeeds.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from pyk8s.client import ApiClient, ApiError
from pyk8s.client.clock import Clock
from pyk8s.machinery.resources import CATALOGUE

log = logging.getLogger("pyk8s.kubelet.lease")
LEASES = CATALOGUE.resource("coordination.k8s.io/v1", "leases")
NAMESPACE = "kube-node-lease"
Obj = dict[str, Any]


def micro_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class NodeLease:
    def __init__(self, client: ApiClient, node_name: str, duration: int, clock: Clock,
                 node_uid: str = "") -> None:
        self.client = client
        self.node_name = node_name
        self.duration = duration
        self.clock = clock
        self.node_uid = node_uid
        self.renewals = 0

    @property
    def interval(self) -> float:
        return self.duration / 4

    def _spec(self) -> Obj:
        return {"holderIdentity": self.node_name, "leaseDurationSeconds": self.duration,
                "renewTime": micro_time(self.clock.now())}

    async def renew(self) -> None:
        """Create or renew once; raises ApiError on failure."""
        try:
            lease = await self.client.get(LEASES, NAMESPACE, self.node_name)
        except ApiError as exc:
            if exc.code != 404:
                raise
            body: Obj = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                         "metadata": {"name": self.node_name, "namespace": NAMESPACE},
                         "spec": self._spec()}
            if self.node_uid:
                body["metadata"]["ownerReferences"] = [{
                    "apiVersion": "v1", "kind": "Node", "name": self.node_name,
                    "uid": self.node_uid}]
            await self.client.create(LEASES, body, namespace=NAMESPACE)
        else:
            lease["spec"] = {**(lease.get("spec") or {}), **self._spec()}
            await self.client.update(LEASES, lease)
        self.renewals += 1

    async def run(self) -> None:
        log.info("node lease loop started node=%s", self.node_name)
        retry = 0.2
        try:
            while True:
                try:
                    await self.renew()
                    retry = 0.2
                    await self.clock.sleep(self.interval)
                except ApiError as exc:
                    log.warning("lease renewal failed node=%s: %s", self.node_name, exc)
                    await self.clock.sleep(retry)
                    retry = min(retry * 2, 7.0)
        finally:
            log.info("node lease loop stopped node=%s", self.node_name)
