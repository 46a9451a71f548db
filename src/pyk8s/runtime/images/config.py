"""Registry settings of a node: mirrors, insecure registries, credentials.

The shape follows containerd's CRI registry configuration (``registry.mirrors."docker.io"
.endpoint = [...]``): for each registry host, a list of mirror endpoints tried in order
before the registry itself. A file (YAML or JSON) holds it::

    mirrors:
      docker.io: ["http://127.0.0.1:5000", "https://mirror.example.com"]
      "*": ["https://catch-all.example.com"]     # every registry
    insecure: ["registry.lan:5000"]             # plain HTTP
    servers:                                    # where a registry really is (containerd's
      docker.io: "http://127.0.0.1:5000"        #   hosts.toml "server"): air-gapped nodes
    credentials:
      registry.example.com: {username: u, password: p}

Loopback registries (``localhost``, ``127.0.0.0/8``, ``::1``) speak plain HTTP without being
listed, as Docker and containerd treat them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pyk8s.runtime.images.reference import DOCKER_HUB, DOCKER_HUB_API


@dataclass(frozen=True)
class Endpoint:
    """One place to pull a repository from: ``api`` is the URL ``/v2``-style root."""

    api: str
    host: str
    """The host the endpoint answers for (credentials are looked up by it)."""
    mirror: bool = False

    def __str__(self) -> str:
        return self.api.removesuffix("/v2")


def host_of(domain: str) -> str:
    """``domain`` without its port (``[::1]:5000`` → ``::1``)."""
    if domain.startswith("["):
        return domain[1:domain.index("]")]
    return domain.rsplit(":", 1)[0] if domain.count(":") == 1 else domain


def is_loopback(domain: str) -> bool:
    host = host_of(domain)
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _endpoint(url: str, *, mirror: bool) -> Endpoint:
    parts = urlsplit(url)
    path = parts.path.rstrip("/") or "/v2"
    return Endpoint(f"{parts.scheme}://{parts.netloc}{path}", parts.netloc, mirror=mirror)


@dataclass(frozen=True)
class RegistryConfig:
    mirrors: Mapping[str, Sequence[str]] = field(default_factory=dict)
    insecure: frozenset[str] = frozenset()
    credentials: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    servers: Mapping[str, str] = field(default_factory=dict)
    """Registry host → the URL that serves it instead (no fallback to the real host)."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RegistryConfig:
        mirrors = {str(k): [str(u) for u in (v or [])]
                   for k, v in (data.get("mirrors") or {}).items()}
        servers = {str(k): str(v) for k, v in (data.get("servers") or {}).items()}
        for url in [*(u for urls in mirrors.values() for u in urls), *servers.values()]:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"registry endpoint {url!r} is not an http(s) URL")
        creds = {str(k): (str(v.get("username", "")), str(v.get("password", "")))
                 for k, v in (data.get("credentials") or {}).items()}
        return cls(mirrors, frozenset(str(h) for h in data.get("insecure") or ()), creds,
                   servers)

    @classmethod
    def from_file(cls, path: str | Path) -> RegistryConfig:
        import yaml  # JSON is YAML too

        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping")
        return cls.from_dict(data)

    def endpoints(self, domain: str, *, insecure: bool = False) -> list[Endpoint]:
        """Where to look for a repository of ``domain``: its mirrors in order, then itself."""
        out = []
        for url in [*self.mirrors.get(domain, ()), *self.mirrors.get("*", ())]:
            out.append(_endpoint(url, mirror=True))
        if domain in self.servers:
            out.append(_endpoint(self.servers[domain], mirror=False))
            return out
        host = DOCKER_HUB_API if domain == DOCKER_HUB else domain
        plain = insecure or domain in self.insecure or is_loopback(domain)
        out.append(Endpoint(f"{'http' if plain else 'https'}://{host}/v2", domain))
        return out

    def credentials_for(self, host: str) -> tuple[str, str] | None:
        if host in self.credentials:
            return self.credentials[host]
        if host == DOCKER_HUB_API:
            return self.credentials.get(DOCKER_HUB)
        return None
