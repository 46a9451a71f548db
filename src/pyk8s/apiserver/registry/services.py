"""Services: defaults, cluster IP and node port allocation.

Allocation reads what is taken from the watch cache plus the addresses reserved by writes
still in flight, all on the event loop thread, so two creates cannot pick the same address
in one API server. (Several API servers sharing a store need an allocation record in the
store itself, as upstream's IPAddress objects; not done yet.)
"""

from __future__ import annotations

import ipaddress
import random
from typing import Any

from pyk8s.apiserver.registry.base import (
    Cause,
    Obj,
    Strategy,
    immutable,
    invalid_value,
    required,
    unsupported_value,
)
from pyk8s.machinery import errors

TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]


def _ports(obj: Obj) -> list[dict[str, Any]]:
    ports = (obj.get("spec") or {}).get("ports") or []
    return [p for p in ports if isinstance(p, dict)]


def _wants_node_ports(spec: Obj) -> bool:
    return spec.get("type") in ("NodePort", "LoadBalancer")


class ServiceStrategy(Strategy):
    tracks_generation = True
    allocates = True

    def __init__(self, resource, ctx) -> None:  # type: ignore[no-untyped-def]
        super().__init__(resource, ctx)
        self._reserved_ips: set[str] = set()
        self._reserved_ports: set[int] = set()

    # -- defaults and validation ------------------------------------------------------------
    def prepare_create(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            spec = obj["spec"] = {}
        spec.setdefault("type", "ClusterIP")
        if spec["type"] != "ExternalName":
            spec.setdefault("sessionAffinity", "None")
            spec.setdefault("internalTrafficPolicy", "Cluster")
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
        if spec["type"] in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        for port in _ports(obj):
            port.setdefault("protocol", "TCP")
            if "targetPort" not in port and "port" in port:
                port["targetPort"] = port["port"]
        obj["status"] = {"loadBalancer": {}}

    def prepare_update(self, new: Obj, old: Obj) -> None:
        spec = new.get("spec")
        old_spec = old.get("spec") or {}
        if isinstance(spec, dict):
            # An update that leaves these out keeps what was allocated (upstream does too).
            for field in ("clusterIP", "clusterIPs"):
                if not spec.get(field) and old_spec.get(field):
                    spec[field] = old_spec[field]
            tmp = {"spec": spec, "metadata": new.get("metadata", {})}
            self.prepare_create(tmp)
            new["spec"] = tmp["spec"]
            if _wants_node_ports(spec):
                old_ports = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                             for p in _ports(old)}
                for port in _ports(new):
                    if not port.get("nodePort"):
                        kept = old_ports.get((port.get("port"), port.get("protocol", "TCP")))
                        if kept:
                            port["nodePort"] = kept

    def validate_create(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec") or {}
        causes: list[Cause] = []
        kind = spec.get("type")
        if kind not in TYPES:
            causes.append(unsupported_value("spec.type", kind, TYPES))
        if kind == "ExternalName":
            if not spec.get("externalName"):
                causes.append(required("spec.externalName"))
        elif not _ports(obj) and spec.get("clusterIP") != "None":
            causes.append(required("spec.ports"))
        names: set[str] = set()
        ports = _ports(obj)
        for i, port in enumerate(ports):
            number = port.get("port")
            if not isinstance(number, int) or not 0 < number < 65536:
                causes.append(invalid_value(f"spec.ports[{i}].port", number,
                                            "must be between 1 and 65535, inclusive"))
            if port.get("protocol") not in ("TCP", "UDP", "SCTP"):
                causes.append(unsupported_value(f"spec.ports[{i}].protocol", port.get("protocol"),
                                                ["SCTP", "TCP", "UDP"]))
            name = port.get("name", "")
            if len(ports) > 1 and not name:
                causes.append(required(f"spec.ports[{i}].name"))
            if name and name in names:
                causes.append((f"spec.ports[{i}].name", "FieldValueDuplicate", f'Duplicate value: "{name}"'))
            names.add(name)
            node_port = port.get("nodePort")
            if node_port and not _wants_node_ports(spec):
                causes.append((f"spec.ports[{i}].nodePort", "FieldValueForbidden",
                               "Forbidden: may not be used when `type` is 'ClusterIP'"))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        causes = self.validate_create(new)
        old_ip = (old.get("spec") or {}).get("clusterIP")
        new_ip = (new.get("spec") or {}).get("clusterIP")
        if old_ip and new_ip != old_ip and (new.get("spec") or {}).get("type") != "ExternalName":
            causes.append(immutable("spec.clusterIPs[0]"))
        return causes

    # -- allocation -------------------------------------------------------------------------
    def _taken(self) -> tuple[set[str], set[int]]:
        ips = set(self._reserved_ips)
        ports = set(self._reserved_ports)
        for cached in self.ctx.cache.cache_for(self.resource).items.values():
            svc = cached.load()
            spec = svc.get("spec") or {}
            for ip in spec.get("clusterIPs") or [spec.get("clusterIP")]:
                if ip:
                    ips.add(ip)
            for port in _ports(svc):
                if port.get("nodePort"):
                    ports.add(port["nodePort"])
        return ips, ports

    def _allocate_ip(self, spec: Obj, taken: set[str], name: str) -> None:
        network = self.ctx.settings.service_network
        wanted = spec.get("clusterIP")
        if wanted == "None" or spec.get("type") == "ExternalName":
            if wanted == "None":
                spec["clusterIPs"] = ["None"]
            return
        if wanted:
            try:
                address = ipaddress.ip_address(wanted)
            except ValueError:
                raise errors.invalid("", "Service", name, [invalid_value(
                    "spec.clusterIPs[0]", wanted, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")]) from None
            if address not in network or address in (network.network_address, network.broadcast_address):
                raise errors.invalid("", "Service", name, [invalid_value(
                    "spec.clusterIPs[0]", wanted,
                    f"failed to allocate IP {wanted}: the provided IP ({wanted}) is not in the valid range. The range of valid IPs is {network}")])
            if wanted in taken:
                raise errors.invalid("", "Service", name, [invalid_value(
                    "spec.clusterIPs[0]", wanted,
                    f"failed to allocate IP {wanted}: provided IP is already allocated")])
            chosen = wanted
        else:
            size = network.num_addresses - 2
            if size <= len(taken):
                raise errors.internal("failed to allocate a serviceIP: range is full")
            offset = random.randrange(size)
            chosen = ""
            for i in range(size):
                candidate = str(network.network_address + 1 + (offset + i) % size)
                # .1 is the kubernetes service's; it is only ever asked for explicitly.
                if candidate not in taken and candidate != self.ctx.settings.kubernetes_service_ip:
                    chosen = candidate
                    break
            if not chosen:
                raise errors.internal("failed to allocate a serviceIP: range is full")
        spec["clusterIP"] = chosen
        spec["clusterIPs"] = [chosen]
        self._reserved_ips.add(chosen)

    def _allocate_node_ports(self, obj: Obj, taken: set[int], name: str) -> None:
        spec = obj["spec"]
        if not _wants_node_ports(spec):
            return
        low, high = self.ctx.settings.node_port_range
        mine: set[int] = set()
        for i, port in enumerate(_ports(obj)):
            wanted = port.get("nodePort")
            if wanted:
                if not isinstance(wanted, int) or not low <= wanted <= high:
                    raise errors.invalid("", "Service", name, [invalid_value(
                        f"spec.ports[{i}].nodePort", wanted,
                        f"provided port is not in the valid range. The range of valid ports is {low}-{high}")])
                if wanted in taken or wanted in mine:
                    raise errors.invalid("", "Service", name, [invalid_value(
                        f"spec.ports[{i}].nodePort", wanted, "provided port is already allocated")])
                mine.add(wanted)
        for port in _ports(obj):
            if not port.get("nodePort"):
                free = [p for p in range(low, high + 1) if p not in taken and p not in mine]
                if not free:
                    raise errors.internal("failed to allocate a nodePort: range is full")
                port["nodePort"] = random.choice(free)
                mine.add(port["nodePort"])
        self._reserved_ports |= mine

    async def allocate(self, obj: Obj) -> None:
        taken_ips, taken_ports = self._taken()
        name = obj["metadata"].get("name", "")
        self._allocate_ip(obj["spec"], taken_ips, name)
        try:
            self._allocate_node_ports(obj, taken_ports, name)
        except errors.ApiError:
            self.release(obj)
            raise

    async def reallocate(self, new: Obj, old: Obj) -> None:
        taken_ips, taken_ports = self._taken()
        own_ports = {p.get("nodePort") for p in _ports(old)}
        spec = new.get("spec") or {}
        if not spec.get("clusterIP") and spec.get("type") != "ExternalName":
            self._allocate_ip(spec, taken_ips, new["metadata"].get("name", ""))
        self._allocate_node_ports(new, taken_ports - own_ports, new["metadata"].get("name", ""))

    def release(self, obj: Obj) -> None:
        spec = obj.get("spec") or {}
        for ip in spec.get("clusterIPs") or [spec.get("clusterIP")]:
            self._reserved_ips.discard(ip)
        for port in _ports(obj):
            self._reserved_ports.discard(port.get("nodePort"))  # type: ignore[arg-type]
