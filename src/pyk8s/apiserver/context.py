"""What every part of the API server shares: settings, the store, the watch cache, the
catalogue and one strategy per resource."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from pyk8s.apiserver.watchcache import WatchCache
from pyk8s.machinery.resources import CATALOGUE, Catalogue, Resource
from pyk8s.storage import Store


@dataclass(slots=True)
class ServerSettings:
    """Flags of ``pyk8s server`` / ``pyk8s apiserver``."""

    data_dir: Path
    bind_address: str = "127.0.0.1"
    port: int = 6443
    storage_url: str = ""  # default: sqlite:///<data_dir>/state.db
    service_cidr: str = "10.96.0.0/12"
    node_port_range: tuple[int, int] = (30000, 32767)
    advertise_address: str = ""
    min_request_timeout: int = 1800
    compaction_interval: float = 300.0
    event_ttl: float = 3600.0
    kubelet_scheme: str = "https"
    kubelet_certificate_authority: str = ""
    """Verify kubelets' serving certificates with this CA; empty: not verified (upstream's
    default: kubelets usually serve self-signed certificates)."""
    extra_sans: list[str] = field(default_factory=list)

    @property
    def service_network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(self.service_cidr, strict=False)

    @property
    def kubernetes_service_ip(self) -> str:
        return str(self.service_network.network_address + 1)


class ApiContext:
    def __init__(
        self,
        settings: ServerSettings,
        store: Store,
        cache: WatchCache,
        catalogue: Catalogue = CATALOGUE,
    ) -> None:
        from pyk8s.apiserver.registry import strategy_for

        self.settings = settings
        self.store = store
        self.cache = cache
        self.catalogue = catalogue
        self.strategies = {r: strategy_for(r, self) for r in catalogue.resources}

    def strategy(self, resource: Resource):  # type: ignore[no-untyped-def]
        return self.strategies[resource]
