"""The controller manager: every controller in one process, sharing one set of informers.

``ControllerManager(client, settings).run()`` builds the enabled controllers on one
``InformerFactory`` (so pods are listed and watched once, however many controllers look at
them), waits for the caches to fill, then runs every controller's workers until cancelled.
With ``leader_elect`` (the default, as upstream) all of that happens only while this process
holds the ``kube-system/kube-controller-manager`` Lease; losing it cancels the controllers
and discards their caches, and a later win starts from a fresh list.

Settings are one dataclass with upstream's defaults; the CLI fills it from flags.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pyk8s.client import ApiClient, InformerFactory, LeaderElector, strip_managed_fields
from pyk8s.client.clock import SYSTEM_CLOCK, Clock
from pyk8s.controllers.deployment import DeploymentController
from pyk8s.controllers.endpoints import EndpointsController
from pyk8s.controllers.endpointslice import EndpointSliceController
from pyk8s.controllers.events import EventRecorder
from pyk8s.controllers.garbagecollector import GarbageCollector
from pyk8s.controllers.namespace import NamespaceController
from pyk8s.controllers.nodeipam import NodeIpamController
from pyk8s.controllers.nodelifecycle import NodeLifecycleController
from pyk8s.controllers.podgc import PodGCController
from pyk8s.controllers.replicaset import ReplicaSetController
from pyk8s.controllers.serviceaccount import ServiceAccountController

log = logging.getLogger("pyk8s.controllers.manager")

# Upstream's --concurrent-*-syncs defaults.
DEFAULT_WORKERS = {
    "deployment": 5, "replicaset": 5, "garbagecollector": 20, "namespace": 10,
    "serviceaccount": 1, "nodelifecycle": 1, "podgc": 1, "endpoint": 5, "endpointslice": 5,
    "nodeipam": 5,
}


class Controller(Protocol):
    name: str

    async def run(self, workers: int = 1) -> None: ...


@dataclass
class ControllerManagerSettings:
    """Which controllers run and how (upstream kube-controller-manager flags)."""

    # Names to run; "*" is every controller, "-name" switches one off (upstream --controllers).
    controllers: tuple[str, ...] = ("*",)
    workers: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_WORKERS))
    leader_elect: bool = True
    lease_name: str = "kube-controller-manager"
    lease_namespace: str = "kube-system"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    identity: str = ""
    node_monitor_period: float = 5.0
    node_monitor_grace_period: float = 40.0
    node_startup_grace_period: float = 60.0
    pod_gc_period: float = 20.0
    terminated_pod_gc_threshold: int = 12500
    # Node IPAM (upstream --allocate-node-cidrs, --cluster-cidr, --node-cidr-mask-size; IPv4
    # only). Upstream's default is off; ours is on, as kubeadm turns it on.
    allocate_node_cidrs: bool = True
    cluster_cidr: str = "10.244.0.0/16"
    node_cidr_mask_size: int = 24

    def enabled(self, name: str) -> bool:
        if f"-{name}" in self.controllers:
            return False
        return "*" in self.controllers or name in self.controllers


def _trimming_factory(client: ApiClient) -> InformerFactory:
    """Informers whose caches hold no managedFields, as upstream's controller manager has
    since 1.28 (no controller reads them; an update without them keeps the stored ones)."""
    return InformerFactory(client, transform=strip_managed_fields)


class ControllerManager:
    def __init__(self, client: ApiClient, settings: ControllerManagerSettings | None = None,
                 *, clock: Clock = SYSTEM_CLOCK,
                 informer_factory: Callable[[ApiClient], InformerFactory] | None = None) -> None:
        self.client = client
        self.settings = settings or ControllerManagerSettings()
        self.clock = clock
        self._new_factory = informer_factory or _trimming_factory
        self.identity = self.settings.identity or f"{socket.gethostname()}_{uuid.uuid4()}"
        self.controllers: dict[str, Controller] = {}
        self.synced = asyncio.Event()

    def _builders(self) -> dict[str, Callable[[InformerFactory, Callable[[str], EventRecorder]], Any]]:
        s, client, clock = self.settings, self.client, self.clock
        builders: dict[str, Callable[[InformerFactory, Callable[[str], EventRecorder]], Any]] = {
            "replicaset": lambda f, rec: ReplicaSetController(
                client, f, clock=clock, recorder=rec("replicaset-controller")),
            "deployment": lambda f, rec: DeploymentController(
                client, f, clock=clock, recorder=rec("deployment-controller")),
            "garbagecollector": lambda f, rec: GarbageCollector(client, f),
            "namespace": lambda f, rec: NamespaceController(client, f, clock=clock),
            "serviceaccount": lambda f, rec: ServiceAccountController(client, f),
            "endpoint": lambda f, rec: EndpointsController(client, f, clock=clock),
            "endpointslice": lambda f, rec: EndpointSliceController(client, f, clock=clock),
            "nodelifecycle": lambda f, rec: NodeLifecycleController(
                client, f, clock=clock, monitor_period=s.node_monitor_period,
                grace_period=s.node_monitor_grace_period,
                startup_grace_period=s.node_startup_grace_period,
                recorder=rec("node-controller")),
            "podgc": lambda f, rec: PodGCController(
                client, f, clock=clock, period=s.pod_gc_period,
                terminated_pod_threshold=s.terminated_pod_gc_threshold),
        }
        if s.allocate_node_cidrs:  # upstream: nodeipam is not started without it
            builders["nodeipam"] = lambda f, rec: NodeIpamController(
                client, f, cluster_cidr=s.cluster_cidr, node_cidr_mask_size=s.node_cidr_mask_size,
                clock=clock, recorder=rec("cidrAllocator"))
        return builders

    async def run(self) -> None:
        """Run until cancelled (competing for the lease first when leader election is on)."""
        if not self.settings.leader_elect:
            await self.run_controllers()
            return
        elector = LeaderElector(
            self.client, name=self.settings.lease_name, namespace=self.settings.lease_namespace,
            identity=self.identity, lease_duration=self.settings.lease_duration,
            renew_deadline=self.settings.renew_deadline, retry_period=self.settings.retry_period)
        await elector.run(self.run_controllers)

    async def run_controllers(self) -> None:
        factory = self._new_factory(self.client)
        recorders: list[EventRecorder] = []

        def recorder(component: str) -> EventRecorder:
            rec = EventRecorder(self.client, component, self.identity.split("_")[0], self.clock)
            recorders.append(rec)
            return rec

        self.controllers = {name: build(factory, recorder)
                            for name, build in self._builders().items()
                            if self.settings.enabled(name)}
        log.info("starting controllers=%s", ",".join(self.controllers))
        try:
            await factory.start()
            await factory.wait_synced()
            self.synced.set()
            await asyncio.gather(*(
                c.run(self.settings.workers.get(name, DEFAULT_WORKERS.get(name, 1)))
                for name, c in self.controllers.items()))
        finally:
            self.synced.clear()
            for rec in recorders:
                await rec.close()
            with contextlib.suppress(Exception):
                await factory.stop()
            log.info("stopped controllers")
