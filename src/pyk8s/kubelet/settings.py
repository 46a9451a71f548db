"""Kubelet settings: one typed dataclass, filled from flags in ``pyk8s.cli`` only."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path


def default_node_name() -> str:
    return socket.gethostname().lower()


def default_node_ip() -> str:
    """The address other hosts would reach us on: the source address of a default route
    (a UDP connect sends no packet); loopback when there is no route."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("10.255.255.255", 1))
            return str(sock.getsockname()[0])
        except OSError:
            return "127.0.0.1"


@dataclass
class KubeletSettings:
    node_name: str = field(default_factory=default_node_name)
    root_dir: Path = Path("/var/lib/pyk8s/kubelet")
    """Pods' volumes, logs (``<root>/logs/pods``) and the runtime's state live here."""
    node_ip: str = ""
    """InternalIP of the Node and, with the process runtime, every pod's IP. Empty: detect."""
    pod_cidr: str = ""
    node_labels: dict[str, str] = field(default_factory=dict)
    register_node: bool = True
    max_pods: int = 110
    node_lease_duration_seconds: int = 40
    node_status_update_frequency: float = 10.0
    node_status_report_frequency: float = 300.0
    """Status is written at least this often even if nothing changed (upstream 5 min)."""
    pod_resync_interval: float = 1.0
    """How often a pod worker re-syncs while its pod is changing (starting, restarting,
    stopping, waiting)."""
    steady_pod_resync_interval: float = 10.0
    """... and once all its containers run: the relist below wakes it on a change."""
    pleg_relist_period: float = 1.0
    """How often the kubelet lists every container and wakes the pods whose containers
    changed (upstream's PLEG relist period)."""
    volume_resync_interval: float = 60.0
    """How often ConfigMap/Secret/downwardAPI volume contents are refreshed."""
    server_address: str = ""
    """Where the node server (container logs) listens; empty disables it."""
    server_port: int = 10250
    tls_cert_file: str = ""
    """The node server's certificate; empty: a self-signed one is made in ``<root>/pki``
    (upstream's behaviour without ``--tls-cert-file``)."""
    tls_private_key_file: str = ""
    client_ca_file: str = ""
    """Clients of the node server must present a certificate signed by this CA and be in
    ``system:masters`` (the API server's kubelet client is); empty: no client
    authentication (logged as a warning)."""
    pod_pids_limit: int = -1
    """Upstream's ``podPidsLimit`` (``--pod-max-pids``): -1 is unlimited."""
    image_gc_high_threshold_percent: int = 85
    image_gc_low_threshold_percent: int = 80
    image_minimum_gc_age: float = 120.0
    """Upstream's image GC defaults (``imageGCHighThresholdPercent`` ...)."""
    kubelet_version: str = "v1.32.4"
    eviction_memory_reserve: str = "100Mi"
    """Upstream's default hard eviction threshold, taken out of allocatable memory."""

    @property
    def pods_log_dir(self) -> Path:
        return self.root_dir / "logs" / "pods"

    @property
    def runtime_state_dir(self) -> Path:
        return self.root_dir / "runtime"

    def resolved_node_ip(self) -> str:
        return self.node_ip or default_node_ip()
