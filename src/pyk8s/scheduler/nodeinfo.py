"""Per-node aggregates the filters and scores read: the node, its pods, what they request.

A :class:`NodeInfo` is the scheduler's view of one node (upstream ``framework.NodeInfo``):
the Node object, a :class:`PodInfo` per pod bound or *assumed* on it, the sum of their
requests (actual and "non-zero" for scoring), the host ports in use, and which of the pods
carry inter-pod affinity terms (so InterPodAffinity can skip the scan when none do). What the
filters read of the Node (allocatable, taints, unschedulable) is parsed once per Node update,
because every filter reads it for every pod.

A :class:`PodInfo` parses a pod once (requests, host ports, priority, affinity terms), because
the same pod is read by every plugin on every node in every cycle.

Objects are plain dicts shared with the informer caches: nothing here mutates them.
Concurrency: everything runs on the scheduler's event loop; a NodeInfo is only modified
between scheduling cycles (cache updates) or on a private :meth:`NodeInfo.clone`
(preemption's what-if runs).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from pyk8s.machinery.selectors import LabelSelector, label_selector_from_dict
from pyk8s.scheduler.resources import node_allocatable, pod_requests

__all__ = ["AffinityTerm", "NodeInfo", "OwnerKey", "PodInfo", "Snapshot", "WeightedAffinityTerm",
           "pod_key"]

Obj = Mapping[str, Any]
Port = tuple[str, str, int]  # (hostIP, protocol, hostPort)
OwnerKey = tuple[str, str]  # (namespace, controller owner uid)


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

    def with_node(self, node_name: str) -> PodInfo:
        """The same pod as if bound to ``node_name`` (parsed fields are shared, not redone)."""
        copy = PodInfo.__new__(PodInfo)
        copy.__dict__.update(self.__dict__)
        copy.pod = {**self.pod, "spec": {**(self.pod.get("spec") or {}), "nodeName": node_name}}
        return copy

    @cached_property
    def requests(self) -> dict[str, int]:
        return pod_requests(self.pod)

    @cached_property
    def non_zero_requests(self) -> dict[str, int]:
        return pod_requests(self.pod, non_zero=True)

    @cached_property
    def host_ports(self) -> tuple[Port, ...]:
        ports: list[Port] = []
        for container in (self.pod.get("spec") or {}).get("containers") or ():
            for port in container.get("ports") or ():
                host_port = int(port.get("hostPort") or 0)
                if host_port > 0:
                    ports.append((port.get("hostIP") or "0.0.0.0",
                                  port.get("protocol") or "TCP", host_port))
        return tuple(ports)

    @cached_property
    def required_affinity(self) -> tuple[AffinityTerm, ...]:
        return tuple(AffinityTerm.parse(t, self.namespace)
                     for t in _terms(self.pod, "podAffinity", True))

    @cached_property
    def required_anti_affinity(self) -> tuple[AffinityTerm, ...]:
        return tuple(AffinityTerm.parse(t, self.namespace)
                     for t in _terms(self.pod, "podAntiAffinity", True))

    @cached_property
    def preferred_affinity(self) -> tuple[WeightedAffinityTerm, ...]:
        return tuple(WeightedAffinityTerm(AffinityTerm.parse(t.get("podAffinityTerm") or {},
                                                             self.namespace), int(t.get("weight") or 0))
                     for t in _terms(self.pod, "podAffinity", False))

    @cached_property
    def preferred_anti_affinity(self) -> tuple[WeightedAffinityTerm, ...]:
        return tuple(WeightedAffinityTerm(AffinityTerm.parse(t.get("podAffinityTerm") or {},
                                                             self.namespace), int(t.get("weight") or 0))
                     for t in _terms(self.pod, "podAntiAffinity", False))

    @cached_property
    def has_affinity(self) -> bool:
        affinity = (self.pod.get("spec") or {}).get("affinity") or {}
        return bool(affinity.get("podAffinity") or affinity.get("podAntiAffinity"))

    @cached_property
    def terminating(self) -> bool:
        return bool((self.pod.get("metadata") or {}).get("deletionTimestamp"))

    @cached_property
    def controller_uid(self) -> str:
        """The UID of the pod's controlling owner (ReplicaSet, StatefulSet, ...), or ""."""
        for ref in (self.pod.get("metadata") or {}).get("ownerReferences") or ():
            if ref.get("controller"):
                return str(ref.get("uid") or "")
        return ""

    @cached_property
    def owner_key(self) -> OwnerKey | None:
        """(namespace, controller uid) of a live pod with a controller, else None: the key
        :class:`Snapshot` counts pods by, for spreading one workload's pods."""
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
        spec = node.get("spec") or {}
        self.taints = spec.get("taints") or []
        self.unschedulable = bool(spec.get("unschedulable"))
        self.generation += 1

    def add_pod(self, info: PodInfo) -> None:
        if info.uid in self.pods:
            self.remove_pod(info.uid)
        self.pods[info.uid] = info
        _add(self.requested, info.requests, 1)
        _add(self.non_zero_requested, info.non_zero_requests, 1)
        self.used_ports.update(info.host_ports)
        if info.has_affinity:
            self.pods_with_affinity += 1
        self.generation += 1

    def remove_pod(self, uid: str) -> bool:
        info = self.pods.pop(uid, None)
        if info is None:
            return False
        _add(self.requested, info.requests, -1)
        _add(self.non_zero_requested, info.non_zero_requests, -1)
        self.used_ports.subtract(info.host_ports)
        self.used_ports += Counter()  # drop zero counts
        if info.has_affinity:
            self.pods_with_affinity -= 1
        self.generation += 1
        return True

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


class Snapshot:
    """The nodes one scheduling cycle sees, in a stable order, with lookups by name.

    The cache hands out its live NodeInfos (no copying): a cycle's filter and score phases
    run without yielding to the event loop, so nothing changes underneath them. For the same
    reason the cache keeps one Snapshot while the set of nodes stays the same, and hands it
    its live index of pods by controller owner (``owners``), so spreading a workload's pods
    reads the few nodes that run them instead of every pod on every node. Without an index
    (a Snapshot built from a list, as tests do) it is computed once from the nodes' pods.
    """

    def __init__(self, node_infos: list[NodeInfo],
                 owners: Mapping[OwnerKey, Mapping[str, int]] | None = None) -> None:
        self.node_infos = node_infos
        self._by_name = {n.name: n for n in node_infos}
        self._owners = owners

    def get(self, name: str) -> NodeInfo | None:
        return self._by_name.get(name)

    def __len__(self) -> int:
        return len(self.node_infos)

    def pods_by_owner(self, key: OwnerKey) -> Mapping[str, int]:
        """Node name -> live pods of the controller ``key`` on it (nodes with none omitted;
        may name nodes outside the snapshot, which callers look up with :meth:`get`)."""
        if self._owners is None:
            owners: dict[OwnerKey, dict[str, int]] = {}
            for node in self.node_infos:
                for pod in node.pods.values():
                    owner = pod.owner_key
                    if owner is not None:
                        per_node = owners.setdefault(owner, {})
                        per_node[node.name] = per_node.get(node.name, 0) + 1
            self._owners = owners
        return self._owners.get(key) or {}

    @property
    def with_affinity_pods(self) -> list[NodeInfo]:
        """Nodes running at least one pod with inter-pod (anti-)affinity terms."""
        return [n for n in self.node_infos if n.pods_with_affinity]
