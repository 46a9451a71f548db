"""The EndpointSlice controller: discovery.k8s.io/v1 slices for every Service with a selector.

Level-triggered (upstream ``pkg/controller/endpointslice``): Service events enqueue the
Service; pod events enqueue the Services matching the pod's old or new labels; a change to a
slice this controller manages enqueues its Service, so edits and deletions are undone. A sync
builds the endpoints the Service's pods call for, grouped by address family and resolved port
list, and reconciles them with the existing slices of each group the way upstream's reconciler
does: endpoints stay in the slice that holds them, slices changed anyway are filled first,
the rest go into new slices of at most ``max_endpoints`` (100). A slice is written only when
its labels, owner, ports or endpoints differ (server-written metadata is ignored). A Service
with no endpoints keeps one empty placeholder slice per family.

Slices are owned by the Service (a controller ownerReference), so the garbage collector
removes them when the Service goes. Slices with another ``managed-by`` are never touched.
Not done: topology hints, zones, the trigger-time annotation, rebalancing.
"""

from __future__ import annotations

from typing import Any

from pyk8s.client import ApiClient, InformerFactory
from pyk8s.client.clock import SYSTEM_CLOCK, Clock
from pyk8s.controllers import indexes, podutil
from pyk8s.controllers.base import (
    Obj,
    QueueController,
    ignore_not_found,
    key_of,
    meta,
    owner_reference,
    split_key,
)
from pyk8s.controllers.endpoints import (
    API_SERVER_SERVICE,
    HEADLESS,
    PODS,
    SERVICES,
    ServiceSelectors,
    endpoint_ports,
    enqueue_pod_services,
    is_headless,
    normalized,
    pod_hostname,
    pod_ips,
    selected_pods,
    service_selector,
    target_ref,
)
from pyk8s.machinery.errors import ApiError
from pyk8s.machinery.resources import CATALOGUE

ENDPOINT_SLICES = CATALOGUE.resource("discovery.k8s.io/v1", "endpointslices")
SERVICE_NAME = "kubernetes.io/service-name"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
MAX_ENDPOINTS_PER_SLICE = 100

Group = tuple[str, tuple[Any, ...]]  # (addressType, ports)


STALE_CACHE_RETRY = 0.05
"""Seconds before a sync that found the slice cache behind its own writes runs again."""
STALE_CACHE_PATIENCE = 5.0
"""... and how long a write is waited for (a slice someone else changed or deleted since
would never show as written)."""


def family_of(ip: str) -> str:
    return "IPv6" if ":" in ip else "IPv4"


def address_types(svc: Obj) -> list[str]:
    spec = svc.get("spec") or {}
    families = [str(f) for f in spec.get("ipFamilies") or []]
    if families:
        return families
    cluster_ip = str(spec.get("clusterIP") or "")
    if cluster_ip and cluster_ip != "None":
        return [family_of(cluster_ip)]
    return ["IPv4"]


def ports_key(ports: list[Obj]) -> tuple[Any, ...]:
    return tuple(sorted((str(p.get("name") or ""), int(p.get("port") or 0),
                         str(p.get("protocol") or "TCP"), str(p.get("appProtocol") or ""))
                        for p in ports))


def endpoint_id(endpoint: Obj) -> str:
    return str((endpoint.get("addresses") or [""])[0])


def desired_endpoints(svc: Obj, pods: list[Obj]) -> dict[Group, tuple[list[Obj], dict[str, Obj]]]:
    """Per (addressType, ports) group: the ports and the endpoints by address."""
    publish = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
    has_ports = bool((svc.get("spec") or {}).get("ports"))
    groups: dict[Group, tuple[list[Obj], dict[str, Obj]]] = {}
    families = address_types(svc)
    for pod in pods:
        ports = endpoint_ports(svc, pod)
        if has_ports and not ports:
            continue
        serving = podutil.is_ready(pod)
        terminating = bool(meta(pod).get("deletionTimestamp"))
        for ip in pod_ips(pod):
            family = family_of(ip)
            if family not in families:
                continue
            endpoint: Obj = {"addresses": [ip],
                             "conditions": {"ready": publish or (serving and not terminating),
                                            "serving": serving, "terminating": terminating},
                             "targetRef": target_ref(pod)}
            if (pod.get("spec") or {}).get("nodeName"):
                endpoint["nodeName"] = pod["spec"]["nodeName"]
            hostname = pod_hostname(svc, pod)
            if hostname:
                endpoint["hostname"] = hostname
            group = (family, ports_key(ports))
            groups.setdefault(group, (ports, {}))[1].setdefault(ip, endpoint)
    for family in families:
        if not any(g[0] == family for g in groups):
            groups[(family, ())] = ([], {})  # the placeholder
    return groups


class EndpointSliceController(QueueController):
    name = "endpointslice"

    def __init__(self, client: ApiClient, factory: InformerFactory, *,
                 clock: Clock = SYSTEM_CLOCK,
                 max_endpoints: int = MAX_ENDPOINTS_PER_SLICE) -> None:
        super().__init__(clock)
        self.clock = clock
        self.client = client
        self.max_endpoints = max_endpoints
        self._written: dict[str, dict[str, tuple[int | None, float]]] = {}
        """Per Service: the slices this controller wrote and the resourceVersion it got
        back (None: deleted), until its informer shows as much (upstream's
        endpointSliceTracker): a sync on an older cache would create a slice twice."""
        self.svc_informer = indexes.ensure(factory.informer(SERVICES), indexes.NAMESPACE)
        ServiceSelectors.of(self.svc_informer)
        self.pod_informer = indexes.ensure(factory.informer(PODS), indexes.NAMESPACE)
        self.slice_informer = indexes.ensure(factory.informer(ENDPOINT_SLICES), indexes.NAMESPACE)
        self.svc_informer.add_handlers(
            on_add=self._enqueue, on_update=lambda old, new: self._enqueue(new),
            on_delete=self._enqueue)
        self.pod_informer.add_handlers(
            on_add=lambda pod: enqueue_pod_services(self, self.svc_informer, None, pod),
            on_update=lambda old, new: enqueue_pod_services(self, self.svc_informer, old, new),
            on_delete=lambda pod: enqueue_pod_services(self, self.svc_informer, pod, None))
        self.slice_informer.add_handlers(
            on_add=self._slice_changed, on_update=lambda old, new: self._slice_changed(new),
            on_delete=self._slice_changed)

    def _enqueue(self, obj: Obj) -> None:
        self.queue.add(key_of(obj))

    def _slice_changed(self, eps: Obj) -> None:
        labels = meta(eps).get("labels") or {}
        if labels.get(MANAGED_BY) == CONTROLLER_NAME and labels.get(SERVICE_NAME):
            self.queue.add(f"{meta(eps).get('namespace', '')}/{labels[SERVICE_NAME]}")

    def _slices_of(self, namespace: str, name: str) -> list[Obj]:
        return [s for s in self.slice_informer.by_index(indexes.NAMESPACE, namespace)
                if (meta(s).get("labels") or {}).get(SERVICE_NAME) == name
                and (meta(s).get("labels") or {}).get(MANAGED_BY) == CONTROLLER_NAME]

    def _labels(self, svc: Obj) -> dict[str, str]:
        labels = {k: v for k, v in (meta(svc).get("labels") or {}).items()
                  if k not in (SERVICE_NAME, MANAGED_BY, HEADLESS)}
        labels[SERVICE_NAME] = str(meta(svc).get("name") or "")
        labels[MANAGED_BY] = CONTROLLER_NAME
        if is_headless(svc):
            labels[HEADLESS] = ""
        return labels

    async def sync(self, key: str) -> float | None:
        if key == API_SERVER_SERVICE:
            return None
        namespace, name = split_key(key)
        svc = self.svc_informer.get(key)
        if svc is None or service_selector(svc) is None:
            return None  # the garbage collector removes owned slices
        if self._cache_is_stale(key, namespace):
            return STALE_CACHE_RETRY
        uid = meta(svc).get("uid")
        existing: dict[Group, list[Obj]] = {}
        stale: list[Obj] = []
        for eps in sorted(self._slices_of(namespace, name), key=lambda s: meta(s).get("name", "")):
            refs = meta(eps).get("ownerReferences") or []
            if not any(r.get("uid") == uid for r in refs):
                stale.append(eps)  # a previous Service of the same name
                continue
            group = (str(eps.get("addressType") or ""), ports_key(eps.get("ports") or []))
            existing.setdefault(group, []).append(eps)
        wanted = desired_endpoints(svc, selected_pods(svc, self.pod_informer))
        for group, slices in existing.items():
            if group not in wanted:
                stale.extend(slices)
        for eps in stale:
            await self._delete(svc, eps)
        for group, (ports, endpoints) in sorted(wanted.items(), key=repr):
            await self._reconcile_group(svc, group, ports, endpoints, existing.get(group, []))
        return None

    def _cache_is_stale(self, key: str, namespace: str) -> bool:
        written = self._written.get(key)
        if not written:
            return False
        now = self.clock.monotonic()
        for name, (version, at) in list(written.items()):
            cached = self.slice_informer.get(f"{namespace}/{name}")
            seen = cached is None if version is None else \
                cached is not None and int(meta(cached).get("resourceVersion") or 0) >= version
            if seen or now - at > STALE_CACHE_PATIENCE:  # someone else changed it since
                del written[name]
        if not written:
            del self._written[key]
            return False
        return True

    def _remember(self, svc: Obj, name: str, written: Obj | None) -> None:
        version = int(meta(written).get("resourceVersion") or 0) if written is not None \
            else None
        self._written.setdefault(key_of(svc), {})[name] = (version, self.clock.monotonic())

    async def _delete(self, svc: Obj, eps: Obj) -> None:
        name = str(meta(eps).get("name") or "")
        await ignore_not_found(self.client.delete(
            ENDPOINT_SLICES, str(meta(eps).get("namespace") or ""), name))
        self._remember(svc, name, None)

    async def _reconcile_group(self, svc: Obj, group: Group, ports: list[Obj],
                               want: dict[str, Obj], slices: list[Obj]) -> None:
        placed: set[str] = set()
        plans: list[tuple[Obj, list[Obj], bool]] = []  # (slice, endpoints, changed)
        for eps in slices:
            kept = []
            for old in eps.get("endpoints") or []:
                ip = endpoint_id(old)
                if ip in want and ip not in placed:
                    kept.append(want[ip])
                    placed.add(ip)
            plans.append((eps, kept, normalized(kept) != normalized(eps.get("endpoints") or [])))
        leftover = [e for ip, e in sorted(want.items()) if ip not in placed]
        plans.sort(key=lambda p: (not p[2], -len(p[1])))  # changed first, then fullest
        for _, kept, _ in plans:
            while leftover and len(kept) < self.max_endpoints:
                kept.append(leftover.pop(0))
        new_chunks = [leftover[i:i + self.max_endpoints]
                      for i in range(0, len(leftover), self.max_endpoints)]
        keep_one = not want  # the placeholder: one empty slice per family
        for eps, kept, _ in plans:
            if not kept and not keep_one:
                await self._delete(svc, eps)
                continue
            keep_one = False
            await self._write(svc, group[0], ports, kept, eps)
        if keep_one:
            new_chunks.append([])
        for chunk in new_chunks:
            await self._write(svc, group[0], ports, chunk, None)

    async def _write(self, svc: Obj, address_type: str, ports: list[Obj], endpoints: list[Obj],
                     current: Obj | None) -> None:
        namespace = str(meta(svc).get("namespace") or "")
        body: Obj = {
            "apiVersion": ENDPOINT_SLICES.api_version, "kind": "EndpointSlice",
            "metadata": {"generateName": f"{meta(svc).get('name', '')}-", "namespace": namespace,
                         "labels": self._labels(svc),
                         "ownerReferences": [owner_reference(svc, "v1", "Service")]},
            "addressType": address_type, "ports": ports,
            "endpoints": sorted(endpoints, key=endpoint_id)}
        if current is None:
            try:
                created = await self.client.create(ENDPOINT_SLICES, body, namespace=namespace)
            except ApiError as exc:
                if exc.code == 403 and "terminat" in exc.message.lower():
                    return
                raise
            self._remember(svc, str(meta(created).get("name") or ""), created)
            return
        cmeta = meta(current)
        if (normalized(cmeta.get("labels") or {}) == normalized(body["metadata"]["labels"])
                and normalized(cmeta.get("ownerReferences") or [])
                == normalized(body["metadata"]["ownerReferences"])
                and normalized(current.get("ports") or []) == normalized(ports)
                and normalized(current.get("endpoints") or []) == normalized(body["endpoints"])):
            return
        body["metadata"] = {**{k: v for k, v in cmeta.items() if k != "generateName"},
                            "labels": body["metadata"]["labels"],
                            "ownerReferences": body["metadata"]["ownerReferences"]}
        updated = await self.client.update(ENDPOINT_SLICES, body)
        self._remember(svc, str(cmeta.get("name") or ""), updated)
