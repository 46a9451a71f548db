"""Per-node aggregates the filters and scores read: the node, its pods, what they request.

A :class:`NodeInfo` is the scheduler's view of one node (upstream ``framework.NodeInfo``):
the Node object, a :class:`PodInfo` per pod bound or *assumed* on it, the sum of their
requests (actual and "non-zero" for scoring), the host ports in use, and which of the pods
carry inter-pod affinity terms (so InterPodAffinity can skip the scan when none do). What the
filters read of the Node (allocatable, taints, unschedulable) is parsed once per Node update,
because every filter reads it for every pod. CPU and memory are also kept as plain integer
attributes (allocatable, requested, free, non-zero requested), next to the resource maps, and
so is the number of pods the node can still take; the snapshot's columns copy them.

``generation`` moves on every change to the node or its pods that the filters and scores
can see (not on :meth:`NodeInfo.replace_pod`, a newer status of a pod already counted); a
snapshot nobody keeps current re-reads the rows of its columns (``columns.py``) whose
generation moved.

A :class:`PodInfo` parses a pod once (requests, host ports, priority, affinity terms), because
the same pod is read by every plugin on every node in every cycle; plugins keep what they
parse of it in ``PodInfo.parsed``, and a newer version of a pod with the same spec, labels and
owners takes all of that over (:meth:`PodInfo.adopt`).

Objects are plain dicts shared with the informer caches: nothing here mutates them.
Concurrency: everything runs on the scheduler's event loop; a NodeInfo is only modified
between scheduling cycles (cache updates) or on a private :meth:`NodeInfo.clone`
(preemption's what-if runs).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

from pyk8s.machinery.selectors import LabelSelector, label_selector_from_dict
from pyk8s.scheduler.resources import CPU, MEMORY, node_allocatable, pod_requests

__all__ = ["AffinityTerm", "NodeInfo", "OwnerKey", "PodInfo", "WeightedAffinityTerm", "pod_key"]

Obj = Mapping[str, Any]
Port = tuple[str, str, int]  # (hostIP, protocol, hostPort)
OwnerKey = tuple[str, str]  # (namespace, controller owner uid)


T = TypeVar("T")


class _once(Generic[T]):
    """A property computed on first use and kept in the instance's dict. Python 3.11's
    ``functools.cached_property`` takes a lock on every first use; a PodInfo computes about
    ten of these per pod, and only the event loop's thread ever reads them."""

    def __init__(self, func: Callable[[Any], T]) -> None:
        self.func = func
        self.name = func.__name__

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> _once[T]: ...

    @overload
    def __get__(self, obj: object, owner: type | None = None) -> T: ...

    def __get__(self, obj: object | None, owner: type | None = None) -> T | _once[T]:
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.func(obj)
        return value


def pod_key(pod: Obj) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


@dataclass(frozen=True)
class AffinityTerm:
    """A parsed ``PodAffinityTerm``: which pods (namespaces + selector) in which topology."""

    namespaces: frozenset[str] | None  # None: every namespace
    selector: LabelSelector | None  # None selects nothing
    topology_key: str

    @classmethod
    def parse(cls, term: Obj, own_namespace: str) -> AffinityTerm:
        names = frozenset(term.get("namespaces") or ())
        ns_selector = term.get("namespaceSelector")
        namespaces: frozenset[str] | None
        if ns_selector is not None and not (ns_selector.get("matchLabels")
                                             or ns_selector.get("matchExpressions")):
            namespaces = None  # an empty namespaceSelector means every namespace
        elif names or ns_selector is not None:
            namespaces = names
        else:
            namespaces = frozenset({own_namespace})
        try:
            selector = label_selector_from_dict(term.get("labelSelector"))
        except ValueError:
            selector = None
        return cls(namespaces, selector, term.get("topologyKey") or "")

    def matches(self, pod: PodInfo) -> bool:
        if self.namespaces is not None and pod.namespace not in self.namespaces:
            return False
        return self.selector is not None and self.selector.matches(pod.labels)


@dataclass(frozen=True)
class WeightedAffinityTerm:
    term: AffinityTerm
    weight: int


def _terms(pod: Obj, kind: str, required: bool) -> tuple[Any, ...]:
    affinity = ((pod.get("spec") or {}).get("affinity") or {}).get(kind) or {}
    if required:
        return tuple(affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or ())
    return tuple(affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or ())


class PodInfo:
    """A pod parsed once for the plugins."""

    def __init__(self, pod: Obj) -> None:
        self.pod = pod
        meta = pod.get("metadata") or {}
        self.uid: str = meta.get("uid") or pod_key(pod)
        self.key = pod_key(pod)
        self.namespace: str = meta.get("namespace") or ""
        self.labels: Mapping[str, str] = meta.get("labels") or {}
        self.priority: int = int((pod.get("spec") or {}).get("priority") or 0)
        # What plugins parse of the pod, by plugin (and its configuration): kept per pod
        # object, so a pod retried or scheduled after others is not parsed again.
        self.parsed: dict[str, Any] = {}

    def same_placement(self, other: PodInfo) -> bool:
        """Whether ``other`` is this pod with at most its status or bookkeeping changed: the
        same spec, labels, owners and deletion mark, so every parse result here holds for it
        and no node's accounting changes."""
        a, b = self.pod, other.pod
        meta_a, meta_b = a.get("metadata") or {}, b.get("metadata") or {}
        return (self.uid == other.uid and a.get("spec") == b.get("spec")
                and meta_a.get("labels") == meta_b.get("labels")
                and meta_a.get("deletionTimestamp") == meta_b.get("deletionTimestamp")
                and meta_a.get("ownerReferences") == meta_b.get("ownerReferences"))

    def adopt(self, older: PodInfo) -> None:
        """Take over the parse results of an older version of the pod (``same_placement``)."""
        mine = self.__dict__
        for name, value in older.__dict__.items():
            if name not in mine:  # the _once properties computed there, not yet here
                mine[name] = value
        self.parsed = older.parsed

    def with_node(self, node_name: str) -> PodInfo:
        """The same pod as if bound to ``node_name`` (parsed fields are shared, not redone)."""
        copy = PodInfo.__new__(PodInfo)
        copy.__dict__.update(self.__dict__)
        copy.pod = {**self.pod, "spec": {**(self.pod.get("spec") or {}), "nodeName": node_name}}
        return copy

    @_once
    def requests(self) -> dict[str, int]:
        return pod_requests(self.pod)

    @_once
    def non_zero_requests(self) -> dict[str, int]:
        return pod_requests(self.pod, non_zero=True)

    @_once
    def host_ports(self) -> tuple[Port, ...]:
        ports: list[Port] = []
        for container in (self.pod.get("spec") or {}).get("containers") or ():
            for port in container.get("ports") or ():
                host_port = int(port.get("hostPort") or 0)
                if host_port > 0:
                    ports.append((port.get("hostIP") or "0.0.0.0",
                                  port.get("protocol") or "TCP", host_port))
        return tuple(ports)

    @_once
    def required_affinity(self) -> tuple[AffinityTerm, ...]:
        return tuple(AffinityTerm.parse(t, self.namespace)
                     for t in _terms(self.pod, "podAffinity", True))

    @_once
    def required_anti_affinity(self) -> tuple[AffinityTerm, ...]:
        return tuple(AffinityTerm.parse(t, self.namespace)
                     for t in _terms(self.pod, "podAntiAffinity", True))

    @_once
    def preferred_affinity(self) -> tuple[WeightedAffinityTerm, ...]:
        return tuple(WeightedAffinityTerm(AffinityTerm.parse(t.get("podAffinityTerm") or {},
                                                             self.namespace), int(t.get("weight") or 0))
                     for t in _terms(self.pod, "podAffinity", False))

    @_once
    def preferred_anti_affinity(self) -> tuple[WeightedAffinityTerm, ...]:
        return tuple(WeightedAffinityTerm(AffinityTerm.parse(t.get("podAffinityTerm") or {},
                                                             self.namespace), int(t.get("weight") or 0))
                     for t in _terms(self.pod, "podAntiAffinity", False))

    @_once
    def has_affinity(self) -> bool:
        affinity = (self.pod.get("spec") or {}).get("affinity") or {}
        return bool(affinity.get("podAffinity") or affinity.get("podAntiAffinity"))

    @_once
    def terminating(self) -> bool:
        return bool((self.pod.get("metadata") or {}).get("deletionTimestamp"))

    @_once
    def controller_uid(self) -> str:
        """The UID of the pod's controlling owner (ReplicaSet, StatefulSet, ...), or ""."""
        for ref in (self.pod.get("metadata") or {}).get("ownerReferences") or ():
            if ref.get("controller"):
                return str(ref.get("uid") or "")
        return ""

    @_once
    def owner_key(self) -> OwnerKey | None:
        """(namespace, controller uid) of a live pod with a controller, else None: the key
        the snapshot counts pods by, for spreading one workload's pods."""
        if not self.controller_uid or self.terminating:
            return None
        return (self.namespace, self.controller_uid)

    def __repr__(self) -> str:
        return f"PodInfo({self.key})"


class NodeInfo:
    """One node and the pods on it (bound or assumed), with running totals."""

    def __init__(self, node: Obj | None = None) -> None:
        self.node: Obj | None = None
        self.name = ""
        self.labels: Mapping[str, str] = {}
        self.allocatable: dict[str, int] = {}
        self.allowed_pods = 0
        self.pods: dict[str, PodInfo] = {}
        self.requested: dict[str, int] = {}
        self.non_zero_requested: dict[str, int] = {}
        # cpu (millicores) and memory of the maps above, as attributes (see the docstring)
        self.alloc_cpu = self.alloc_memory = 0
        self.req_cpu = self.req_memory = 0
        self.free_cpu = self.free_memory = 0  # allocatable - requested
        self.nz_cpu = self.nz_memory = 0
        self.free_pods = 0  # allowed_pods - len(pods)
        self.used_ports: Counter[Port] = Counter()
        self.pods_with_affinity = 0
        self.generation = 0
        self.taints: list[Obj] = []
        self.unschedulable = False
        if node is not None:
            self.set_node(node)

    def set_node(self, node: Obj) -> None:
        self.node = node
        meta = node.get("metadata") or {}
        self.name = meta.get("name") or ""
        self.labels = meta.get("labels") or {}
        self.allocatable, self.allowed_pods = node_allocatable(node)
        self.alloc_cpu = self.allocatable.get(CPU, 0)
        self.alloc_memory = self.allocatable.get(MEMORY, 0)
        spec = node.get("spec") or {}
        self.taints = spec.get("taints") or []
        self.unschedulable = bool(spec.get("unschedulable"))
        self._changed()

    def add_pod(self, info: PodInfo) -> None:
        if info.uid in self.pods:
            self.remove_pod(info.uid)
        self.pods[info.uid] = info
        _add(self.requested, info.requests, 1)
        _add(self.non_zero_requested, info.non_zero_requests, 1)
        self._sync_totals()
        if info.host_ports:
            self.used_ports.update(info.host_ports)
        if info.has_affinity:
            self.pods_with_affinity += 1

    def replace_pod(self, info: PodInfo) -> None:
        """A newer version of a pod already here, with the same placement (same requests,
        ports, labels): nothing the filters and scores read changes."""
        self.pods[info.uid] = info

    def remove_pod(self, uid: str) -> bool:
        info = self.pods.pop(uid, None)
        if info is None:
            return False
        _add(self.requested, info.requests, -1)
        _add(self.non_zero_requested, info.non_zero_requests, -1)
        self._sync_totals()
        if info.host_ports:
            self.used_ports.subtract(info.host_ports)
            self.used_ports += Counter()  # drop zero counts
        if info.has_affinity:
            self.pods_with_affinity -= 1
        return True

    def _sync_totals(self) -> None:
        requested, non_zero = self.requested, self.non_zero_requested
        self.req_cpu = requested.get(CPU, 0)
        self.req_memory = requested.get(MEMORY, 0)
        self.nz_cpu = non_zero.get(CPU, 0)
        self.nz_memory = non_zero.get(MEMORY, 0)
        self._changed()

    def _changed(self) -> None:
        self.free_cpu = self.alloc_cpu - self.req_cpu
        self.free_memory = self.alloc_memory - self.req_memory
        self.free_pods = self.allowed_pods - len(self.pods)
        self.generation += 1

    def clone(self) -> NodeInfo:
        copy = NodeInfo.__new__(NodeInfo)
        copy.__dict__.update(self.__dict__)
        copy.pods = dict(self.pods)
        copy.requested = dict(self.requested)
        copy.non_zero_requested = dict(self.non_zero_requested)
        copy.used_ports = Counter(self.used_ports)
        return copy

    def __repr__(self) -> str:
        return f"NodeInfo({self.name}, pods={len(self.pods)})"


def _add(into: dict[str, int], other: Mapping[str, int], sign: int) -> None:
    for name, amount in other.items():
        into[name] = into.get(name, 0) + sign * amount
