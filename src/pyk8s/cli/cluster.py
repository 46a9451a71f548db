"""``pyk8s server``: a one-node cluster in one process.

The API server starts first; then the controller manager, the scheduler and a kubelet run
beside it in the same event loop, each with its own client certificate and kubeconfig
(``<data-dir>/<component>.kubeconfig``), talking to the API server over HTTPS exactly as
separate processes on separate machines would. Nothing is shared but the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path

from pyk8s.apiserver.context import ServerSettings
from pyk8s.apiserver.server import ApiServer
from pyk8s.cli.runtimes import RuntimeOptions
from pyk8s.cli.useragent import user_agent
from pyk8s.client import ApiClient
from pyk8s.pki import kubeconfig
from pyk8s.pki.keypair import KeyPair

log = logging.getLogger("pyk8s.cli.cluster")

COMPONENTS = ("controller-manager", "scheduler", "kubelet")

# Until RBAC exists every component is a member of system:masters; each still has its own
# identity, so audit and a later authorizer can tell them apart.
_IDENTITIES = {
    "controller-manager": "system:kube-controller-manager",
    "scheduler": "system:kube-scheduler",
}


@dataclass
class ClusterSettings:
    api: ServerSettings
    components: tuple[str, ...] = COMPONENTS
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)
    node_name: str = ""
    kubelet_port: int = 10250
    node_labels: dict[str, str] = field(default_factory=dict)
    cluster_cidr: str = "10.244.0.0/16"
    """Pods' addresses; the controller manager gives each node a /24 of it."""


def kubelet_serving_cert(server: ApiServer, node: str, hosts: list[str]) -> tuple[Path, Path]:
    """The local kubelet's serving certificate, issued by the cluster CA for its names (and
    re-issued when they change)."""
    pki = server.settings.data_dir / "pki"
    crt, key, sans = pki / "kubelet.crt", pki / "kubelet.key", pki / "kubelet.sans"
    names = [h for h in dict.fromkeys([node, *hosts, "127.0.0.1", "localhost"]) if h]
    if not (crt.exists() and key.exists() and sans.exists()
            and sans.read_text() == "\n".join(names)):
        from pyk8s.pki import certs

        ca = KeyPair.read(pki / "ca.crt", pki / "ca.key")
        certs.issue_serving(ca, f"system:node:{node}", names).write(crt, key)
        sans.write_text("\n".join(names))
    return crt, key


def component_kubeconfig(server: ApiServer, component: str, user: str) -> Path:
    """The component's kubeconfig, with a client certificate issued on first use."""
    path = server.settings.data_dir / f"{component}.kubeconfig"
    if not path.exists():
        from pyk8s.pki import certs  # only when issuing: it costs ~100 ms to import

        pki = server.settings.data_dir / "pki"
        ca = KeyPair.read(pki / "ca.crt", pki / "ca.key")
        pair = certs.issue_client(ca, user, ["system:masters"])
        kubeconfig.write(path, kubeconfig.render(server.url, ca.cert_pem, pair, user=component))
    return path


class Cluster:
    """The API server plus the components this node runs."""

    def __init__(self, settings: ClusterSettings) -> None:
        self.settings = settings
        self.api = ApiServer(settings.api)
        self._clients: list[ApiClient] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.api.start()
        for component in self.settings.components:
            self._tasks.append(asyncio.create_task(self._guard(component, self._build(component)),
                                                   name=component))

    def _client(self, component: str, user: str) -> ApiClient:
        client = ApiClient.from_kubeconfig(component_kubeconfig(self.api, component, user),
                                           user_agent=user_agent(component))
        self._clients.append(client)
        return client

    def _build(self, component: str) -> Awaitable[None]:
        if component == "controller-manager":
            from pyk8s.controllers.manager import ControllerManager, ControllerManagerSettings

            client = self._client(component, _IDENTITIES[component])
            return ControllerManager(client, ControllerManagerSettings(
                cluster_cidr=self.settings.cluster_cidr)).run()
        if component == "scheduler":
            from pyk8s.scheduler.scheduler import Scheduler
            from pyk8s.scheduler.settings import SchedulerSettings

            client = self._client(component, _IDENTITIES[component])
            return Scheduler(client, SchedulerSettings()).run()
        if component == "kubelet":
            import socket

            from pyk8s.cli import runtimes
            from pyk8s.kubelet.kubelet import Kubelet
            from pyk8s.kubelet.settings import KubeletSettings, default_node_name

            node = self.settings.node_name or default_node_name()
            host = self.api.url.split("//", 1)[1].rsplit(":", 1)[0]
            crt, key = kubelet_serving_cert(self.api, node, [host, socket.gethostname()])
            kubelet_settings = KubeletSettings(
                node_name=node,
                root_dir=self.settings.api.data_dir / "kubelet",
                node_ip=host,
                server_address=host,
                server_port=self.settings.kubelet_port,
                node_labels=dict(self.settings.node_labels),
                tls_cert_file=str(crt),
                tls_private_key_file=str(key),
                client_ca_file=str(self.settings.api.data_dir / "pki" / "ca.crt"),
            )
            runtime = runtimes.build(self.settings.runtime,
                                     state_dir=kubelet_settings.runtime_state_dir, host_ip=host)
            client = self._client(component, f"system:node:{node}")
            return Kubelet(client, kubelet_settings, runtime).run()
        raise ValueError(f"unknown component {component!r}; known: {', '.join(COMPONENTS)}")

    @staticmethod
    async def _guard(component: str, work: Awaitable[None]) -> None:
        """A component that fails is logged, not silently dropped; the others go on."""
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s stopped with an error", component)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for client in self._clients:
            await client.close()
        await self.api.stop()
