"""The Endpoints controller: one core/v1 ``Endpoints`` per Service with a selector.

Level-triggered (upstream ``pkg/controller/endpoint/endpoints_controller.go``): Service events
enqueue the Service's key; pod events enqueue every Service whose selector matches the pod's
old or new labels; a deleted Endpoints object enqueues its Service so it is put back. A sync
reads the Service and its namespace's pods from the caches, builds the subsets they call for
and writes only when the stored object differs (labels and subsets; server-written metadata
and the trigger-time annotation are ignored). A Service that is gone takes its Endpoints
with it.

Deliberately left alone: Services without a selector (users manage their Endpoints),
ExternalName Services, and ``default/kubernetes`` (the API server maintains it). Not done:
truncation above 1000 addresses (``over-capacity``) and the startup sweep of orphans.

The pod/port helpers here are shared with the EndpointSlice controller.
"""

from __future__ import annotations

import weakref
from typing import Any

from pyk8s.client import ApiClient, Informer, InformerFactory
from pyk8s.client.clock import SYSTEM_CLOCK, Clock
from pyk8s.controllers import indexes, podutil
from pyk8s.controllers.base import Obj, QueueController, ignore_not_found, key_of, meta, split_key
from pyk8s.machinery.errors import ApiError
from pyk8s.machinery.meta import rfc3339
from pyk8s.machinery.resources import CATALOGUE

PODS = CATALOGUE.resource("v1", "pods")
SERVICES = CATALOGUE.resource("v1", "services")
ENDPOINTS = CATALOGUE.resource("v1", "endpoints")

TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"
HEADLESS = "service.kubernetes.io/headless"
API_SERVER_SERVICE = "default/kubernetes"


# -- shared with the EndpointSlice controller --------------------------------------------

def normalized(value: Any) -> Any:
    """``value`` without empty fields, so a round trip through the server compares equal."""
    if isinstance(value, dict):
        out = {k: normalized(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, "", [], {})}
    if isinstance(value, list):
        return [normalized(v) for v in value]
    return value


def service_selector(svc: Obj) -> dict[str, str] | None:
    """The selector whose pods back ``svc``; None when the controllers must leave it alone."""
    spec = svc.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return None
    selector = spec.get("selector")
    return dict(selector) if selector else None


def _matches(selector: dict[str, str], labels: dict[str, Any]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


class ServiceSelectors:
    """Per namespace, the keys and selectors of the cached Services the controllers act
    for, read once and forgotten when a Service of that namespace changes. Both endpoint
    controllers look them up at every pod event (about four per pod), most namespaces
    have none, and Services change far less often than pods."""

    _shared: weakref.WeakKeyDictionary[Informer, ServiceSelectors] = weakref.WeakKeyDictionary()

    def __init__(self, services: Informer) -> None:
        self._services = weakref.ref(services)  # the registry must not keep it alive
        self._by_namespace: dict[str, list[tuple[str, dict[str, str]]]] = {}
        services.add_handlers(on_add=self._changed, on_update=lambda old, new: self._changed(new),
                              on_delete=self._changed)

    @classmethod
    def of(cls, services: Informer) -> ServiceSelectors:
        """The one instance kept for this Service informer."""
        found = cls._shared.get(services)
        if found is None:
            found = cls._shared[services] = cls(services)
        return found

    def _changed(self, svc: Obj) -> None:
        self._by_namespace.pop(str(meta(svc).get("namespace") or ""), None)

    def in_namespace(self, namespace: str) -> list[tuple[str, dict[str, str]]]:
        found = self._by_namespace.get(namespace)
        services = self._services()
        if found is None and services is not None:
            found = []
            for svc in services.by_index(indexes.NAMESPACE, namespace):
                selector = service_selector(svc)
                if selector is not None:
                    found.append((key_of(svc), selector))
            self._by_namespace[namespace] = found
        return found or []


def services_for_pod(pod: Obj, services: Informer) -> set[str]:
    """Keys of the Services in the pod's namespace whose selector matches its labels."""
    m = meta(pod)
    selectors = ServiceSelectors.of(services).in_namespace(str(m.get("namespace") or ""))
    if not selectors:
        return set()
    labels = m.get("labels") or {}
    return {key for key, selector in selectors if _matches(selector, labels)}


def pod_ips(pod: Obj) -> list[str]:
    status = pod.get("status") or {}
    ips = [str(p.get("ip")) for p in status.get("podIPs") or [] if p.get("ip")]
    if not ips and status.get("podIP"):
        ips = [str(status["podIP"])]
    return ips


def selected_pods(svc: Obj, pods: Informer) -> list[Obj]:
    """The pods that may back ``svc``: selected, in its namespace, with an IP, not terminal."""
    selector = service_selector(svc)
    if selector is None:
        return []
    found = []
    for pod in pods.by_index(indexes.NAMESPACE, str(meta(svc).get("namespace") or "")):
        if not _matches(selector, meta(pod).get("labels") or {}):
            continue
        if podutil.phase(pod) in ("Succeeded", "Failed") or not pod_ips(pod):
            continue
        found.append(pod)
    return sorted(found, key=lambda p: str(meta(p).get("name") or ""))


def resolve_port(svc_port: Obj, pod: Obj) -> int | None:
    """The pod's port for a service port: a number as is, a name looked up among the
    containers' ports (None when the pod has no such port)."""
    target = svc_port.get("targetPort")
    if target is None or target == "" or target == 0:
        return int(svc_port.get("port") or 0) or None
    if isinstance(target, int) or str(target).isdigit():
        return int(target)
    protocol = svc_port.get("protocol") or "TCP"
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target and (port.get("protocol") or "TCP") == protocol:
                return int(port.get("containerPort") or 0) or None
    return None


def endpoint_ports(svc: Obj, pod: Obj) -> list[Obj]:
    """One ``{name, port, protocol[, appProtocol]}`` per service port the pod resolves."""
    ports = []
    for svc_port in (svc.get("spec") or {}).get("ports") or []:
        number = resolve_port(svc_port, pod)
        if number is None:
            continue
        port: Obj = {"name": str(svc_port.get("name") or ""), "port": number,
                     "protocol": svc_port.get("protocol") or "TCP"}
        if svc_port.get("appProtocol"):
            port["appProtocol"] = svc_port["appProtocol"]
        ports.append(port)
    return ports


def target_ref(pod: Obj) -> Obj:
    m = meta(pod)
    return {"kind": "Pod", "namespace": m.get("namespace", ""), "name": m.get("name", ""),
            "uid": m.get("uid", "")}


def pod_hostname(svc: Obj, pod: Obj) -> str:
    spec = pod.get("spec") or {}
    if spec.get("hostname") and spec.get("subdomain") == meta(svc).get("name"):
        return str(spec["hostname"])
    return ""


def is_headless(svc: Obj) -> bool:
    return (svc.get("spec") or {}).get("clusterIP") == "None"


def enqueue_pod_services(controller: QueueController, services: Informer,
                         old: Obj | None, new: Obj | None) -> None:
    """Pod handlers of both controllers: the Services matching the old or new labels."""
    if old is not None and new is not None:
        old_meta, new_meta = meta(old), meta(new)
        if old_meta.get("resourceVersion") == new_meta.get("resourceVersion"):
            return
        if old_meta.get("namespace") == new_meta.get("namespace"):
            if not ServiceSelectors.of(services).in_namespace(
                    str(new_meta.get("namespace") or "")):
                return  # no Service in the namespace selects pods
            if old_meta.get("labels") == new_meta.get("labels"):
                old = None  # same labels, same Services: most updates are status changes
    keys: set[str] = set()
    for pod in (old, new):
        if pod is not None:
            keys |= services_for_pod(pod, services)
    for key in sorted(keys):
        controller.queue.add(key)


# -- the controller ------------------------------------------------------------------------

def desired_subsets(svc: Obj, pods: list[Obj]) -> list[Obj]:
    """Subsets for ``svc``: addresses grouped by identical port lists, sorted."""
    publish = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
    has_ports = bool((svc.get("spec") or {}).get("ports"))
    groups: dict[tuple[Any, ...], Obj] = {}
    for pod in pods:
        if meta(pod).get("deletionTimestamp") and not publish:
            continue
        ports = endpoint_ports(svc, pod)
        if has_ports and not ports:
            continue
        address: Obj = {"ip": pod_ips(pod)[0], "targetRef": target_ref(pod)}
        if (pod.get("spec") or {}).get("nodeName"):
            address["nodeName"] = pod["spec"]["nodeName"]
        hostname = pod_hostname(svc, pod)
        if hostname:
            address["hostname"] = hostname
        ports = sorted(ports, key=lambda p: (p["name"], p["port"], p["protocol"]))
        group_key = tuple((p["name"], p["port"], p["protocol"], p.get("appProtocol")) for p in ports)
        subset = groups.setdefault(group_key, {"addresses": [], "notReadyAddresses": [],
                                               "ports": ports})
        which = "addresses" if publish or podutil.is_ready(pod) else "notReadyAddresses"
        subset[which].append(address)
    subsets = []
    for group_key in sorted(groups, key=repr):
        subset = groups[group_key]
        out: Obj = {}
        for field in ("addresses", "notReadyAddresses"):
            if subset[field]:
                out[field] = sorted(subset[field], key=lambda a: (a["ip"], a["targetRef"]["name"]))
        if subset["ports"]:
            out["ports"] = subset["ports"]
        subsets.append(out)
    return subsets


def desired_labels(svc: Obj) -> dict[str, str]:
    labels = {k: v for k, v in (meta(svc).get("labels") or {}).items() if k != HEADLESS}
    if is_headless(svc):
        labels[HEADLESS] = ""
    return labels


class EndpointsController(QueueController):
    name = "endpoint"

    def __init__(self, client: ApiClient, factory: InformerFactory, *,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(clock)
        self.client = client
        self.clock = clock
        self.svc_informer = indexes.ensure(factory.informer(SERVICES), indexes.NAMESPACE)
        ServiceSelectors.of(self.svc_informer)
        self.pod_informer = indexes.ensure(factory.informer(PODS), indexes.NAMESPACE)
        self.ep_informer = factory.informer(ENDPOINTS)
        self.svc_informer.add_handlers(
            on_add=self._enqueue, on_update=lambda old, new: self._enqueue(new),
            on_delete=self._enqueue)
        self.pod_informer.add_handlers(
            on_add=lambda pod: enqueue_pod_services(self, self.svc_informer, None, pod),
            on_update=lambda old, new: enqueue_pod_services(self, self.svc_informer, old, new),
            on_delete=lambda pod: enqueue_pod_services(self, self.svc_informer, pod, None))
        self.ep_informer.add_handlers(on_delete=self._enqueue)

    def _enqueue(self, obj: Obj) -> None:
        self.queue.add(key_of(obj))

    async def sync(self, key: str) -> float | None:
        if key == API_SERVER_SERVICE:
            return None
        namespace, name = split_key(key)
        svc = self.svc_informer.get(key)
        current = self.ep_informer.get(key)
        if svc is None:
            if current is not None:
                await ignore_not_found(self.client.delete(ENDPOINTS, namespace, name))
            return None
        if service_selector(svc) is None:
            return None
        subsets = desired_subsets(svc, selected_pods(svc, self.pod_informer))
        labels = desired_labels(svc)
        if current is not None and normalized(current.get("subsets") or []) == normalized(subsets) \
                and normalized(meta(current).get("labels") or {}) == normalized(labels):
            return None
        annotations = {k: v for k, v in (meta(current or {}).get("annotations") or {}).items()}
        annotations[TRIGGER_TIME] = rfc3339(self.clock.now())
        body: Obj = {"apiVersion": "v1", "kind": "Endpoints",
                     "metadata": {"name": name, "namespace": namespace, "labels": labels,
                                  "annotations": annotations},
                     "subsets": subsets}
        if current is None:
            try:
                await self.client.create(ENDPOINTS, body, namespace=namespace)
            except ApiError as exc:
                if exc.code == 403 and "terminat" in exc.message.lower():
                    return None
                raise
            return None
        body["metadata"]["resourceVersion"] = meta(current).get("resourceVersion")
        await self.client.update(ENDPOINTS, body)
        return None
