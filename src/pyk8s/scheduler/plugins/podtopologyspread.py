"""PodTopologySpread: spread matching pods evenly across topology domains.

A constraint (``spec.topologySpreadConstraints[]``) counts the pods its ``labelSelector``
selects (same namespace, not terminating; ``matchLabelKeys`` add the pod's own values) per
domain of ``topologyKey``. Only nodes that pass the pod's nodeSelector / required node
affinity (``nodeAffinityPolicy: Honor``, the default) and carry every constraint's key define
domains.

Filter (``whenUnsatisfiable: DoNotSchedule``): placing the pod on the node must keep
``count(node's domain) + self - min(count over domains) <= maxSkew`` (``min`` is 0 when
fewer than ``minDomains`` domains exist). A node without a constraint's key is
``UnschedulableAndUnresolvable``; too much skew is ``Unschedulable``.

Score (``ScheduleAnyway``): fewer matching pods in the node's domains is better; each
constraint weighs ``log(domains + 2)`` (upstream ``scoreForCount``), then min/max-normalized
and reversed so the emptiest node gets 100.

System defaults: a pod without constraints that has a controller owner is spread as upstream's
default ``List`` (hostname maxSkew 3, zone maxSkew 5, both ScheduleAnyway) over the pods of the
same controller. (Upstream derives the selector from the Services/ReplicaSets/StatefulSets
selecting the pod; the owner is the same set for workloads and needs no extra informers.)

Deliberately absent: ``nodeTaintsPolicy: Honor`` and updating the pre-computed counts while
preemption removes victims (upstream's AddPod/RemovePod extensions).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pyk8s.machinery.selectors import label_selector_from_dict, new_requirement
from pyk8s.scheduler.framework import (
    ASSIGNED_POD_ADD,
    ASSIGNED_POD_DELETE,
    ASSIGNED_POD_UPDATE,
    MAX_NODE_SCORE,
    NODE_CHANGES,
    NODE_DELETE,
    SUCCESS,
    ClusterEvent,
    CycleState,
    Handle,
    NodeInfo,
    PodInfo,
    Status,
)
from pyk8s.scheduler.plugins.helpers import match_node_selector_terms

NAME = "PodTopologySpread"
ERR_REASON_CONSTRAINTS_NOT_MATCH = "node(s) didn't match pod topology spread constraints"
ERR_REASON_NODE_LABEL_NOT_MATCH = ERR_REASON_CONSTRAINTS_NOT_MATCH + " (missing required label)"
HOSTNAME = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"
SYSTEM_DEFAULTS: tuple[tuple[str, int], ...] = ((HOSTNAME, 3), (ZONE, 5))


@dataclass(frozen=True)
class Constraint:
    max_skew: int
    topology_key: str
    hard: bool
    matches: Callable[[PodInfo], bool]
    min_domains: int = 0
    honor_node_affinity: bool = True


def constraints_of(pod: PodInfo, defaults: Sequence[tuple[str, int]]) -> list[Constraint]:
    spec = pod.pod.get("spec") or {}
    out: list[Constraint] = []
    for raw in spec.get("topologySpreadConstraints") or ():
        try:
            selector = label_selector_from_dict(raw.get("labelSelector"))
            if selector is not None:
                for key in raw.get("matchLabelKeys") or ():
                    if key in pod.labels:
                        selector = selector.add(new_requirement(key, "in", [pod.labels[key]]))
        except ValueError:
            selector = None
        namespace = pod.namespace

        def matches(other: PodInfo, selector: Any = selector, namespace: str = namespace) -> bool:
            return (other.namespace == namespace and selector is not None
                    and selector.matches(other.labels))

        out.append(Constraint(
            max_skew=int(raw.get("maxSkew") or 1),
            topology_key=raw.get("topologyKey") or "",
            hard=(raw.get("whenUnsatisfiable") or "DoNotSchedule") == "DoNotSchedule",
            matches=matches,
            min_domains=int(raw.get("minDomains") or 0),
            honor_node_affinity=(raw.get("nodeAffinityPolicy") or "Honor") == "Honor"))
    if out or not defaults:
        return out
    owner = pod.controller_uid
    if not owner:
        return out

    def same_owner(other: PodInfo, owner: str = owner, namespace: str = pod.namespace) -> bool:
        return other.controller_uid == owner and other.namespace == namespace

    return [Constraint(skew, key, False, same_owner) for key, skew in defaults]


def _passes_node_affinity(pod: PodInfo, node: NodeInfo) -> bool:
    spec = pod.pod.get("spec") or {}
    for key, value in (spec.get("nodeSelector") or {}).items():
        if node.labels.get(key) != value:
            return False
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                 .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if required is not None:
        return match_node_selector_terms(required.get("nodeSelectorTerms") or (), node.node or {})
    return True


def _count(node: NodeInfo, constraint: Constraint) -> int:
    matches = constraint.matches
    return sum(1 for p in node.pods.values() if not p.terminating and matches(p))


@dataclass
class _FilterState:
    constraints: list[Constraint]
    counts: list[dict[str, int]]  # per constraint: domain value -> matching pods
    min_match: list[int]
    self_match: list[int]


@dataclass
class _ScoreState:
    constraints: list[Constraint]
    counts: list[dict[str, int]]  # per constraint: domain value -> matching pods
    weights: list[float]
    ignored: set[str]
    per_node: list[dict[str, int]]  # per constraint: node name -> matching pods


class PodTopologySpread:
    name = NAME

    def events_to_register(self) -> tuple[ClusterEvent, ...]:
        return (*NODE_CHANGES, NODE_DELETE, ASSIGNED_POD_ADD, ASSIGNED_POD_UPDATE, ASSIGNED_POD_DELETE)

    def __init__(self, handle: Handle, defaults: Sequence[tuple[str, int]]) -> None:
        self.handle = handle
        self.defaults = tuple(defaults)

    def _eligible(self, pod: PodInfo, node: NodeInfo, constraints: Sequence[Constraint]) -> bool:
        if any(c.topology_key not in node.labels for c in constraints):
            return False
        return not (any(c.honor_node_affinity for c in constraints)
                    and not _passes_node_affinity(pod, node))

    def pre_filter(self, state: CycleState, pod: PodInfo,
                   nodes: Sequence[NodeInfo]) -> tuple[None, Status]:
        hard = [c for c in constraints_of(pod, self.defaults) if c.hard]
        if not hard:
            return None, Status.skip()
        counts: list[dict[str, int]] = [{} for _ in hard]
        for node in nodes:
            if not self._eligible(pod, node, hard):
                continue
            for i, c in enumerate(hard):
                value = node.labels[c.topology_key]
                counts[i][value] = counts[i].get(value, 0) + _count(node, c)
        min_match = []
        for i, c in enumerate(hard):
            lowest = min(counts[i].values(), default=0)
            if c.min_domains and len(counts[i]) < c.min_domains:
                lowest = 0
            min_match.append(lowest)
        self_match = [1 if c.matches(pod) else 0 for c in hard]
        state.write(NAME, _FilterState(hard, counts, min_match, self_match))
        return None, SUCCESS

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        s: _FilterState | None = state.read(NAME)
        if s is None:
            return SUCCESS
        for i, c in enumerate(s.constraints):
            value = node.labels.get(c.topology_key)
            if value is None:
                return Status.unresolvable(ERR_REASON_NODE_LABEL_NOT_MATCH)
            skew = s.counts[i].get(value, 0) + s.self_match[i] - s.min_match[i]
            if skew > c.max_skew:
                return Status.unschedulable(ERR_REASON_CONSTRAINTS_NOT_MATCH)
        return SUCCESS

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> Status:
        soft = [c for c in constraints_of(pod, self.defaults) if not c.hard]
        if not soft:
            return Status.skip()
        # System-default constraints apply to the keys a node has; explicit ones need all.
        require_all = bool((pod.pod.get("spec") or {}).get("topologySpreadConstraints"))

        def eligible(node: NodeInfo) -> bool:
            if require_all:
                return self._eligible(pod, node, soft)
            return not (any(c.honor_node_affinity for c in soft)
                        and not _passes_node_affinity(pod, node))

        ignored = {n.name for n in nodes if not eligible(n)}
        # Count each node once per distinct selector (the system defaults share one).
        by_selector: dict[int, dict[str, int]] = {}
        for c in soft:
            if id(c.matches) not in by_selector:
                by_selector[id(c.matches)] = {
                    n.name: _count(n, c) for n in self.handle.snapshot.node_infos or nodes
                    if eligible(n)}
        counts: list[dict[str, int]] = [{} for _ in soft]
        weights = []
        for i, c in enumerate(soft):
            domains = {n.labels[c.topology_key] for n in nodes
                       if n.name not in ignored and c.topology_key in n.labels}
            weights.append(math.log(len(domains) + 2))
            if c.topology_key == HOSTNAME:
                continue  # a node is its own domain
            for node in self.handle.snapshot.node_infos or nodes:
                value = node.labels.get(c.topology_key)
                if value in domains:
                    count = by_selector[id(c.matches)].get(node.name, 0)
                    counts[i][value] = counts[i].get(value, 0) + count
        per_node = [by_selector[id(c.matches)] for c in soft]
        state.write(NAME + "/score", _ScoreState(soft, counts, weights, ignored, per_node))
        return SUCCESS

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> tuple[int, Status]:
        s: _ScoreState = state.read(NAME + "/score")
        if node.name in s.ignored:
            return 0, SUCCESS
        total = 0.0
        for i, c in enumerate(s.constraints):
            value = node.labels.get(c.topology_key)
            if value is None:
                continue
            if c.topology_key == HOSTNAME:
                count = s.per_node[i].get(node.name, 0)
            else:
                count = s.counts[i].get(value, 0)
            total += count * s.weights[i] + (c.max_skew - 1)
        return round(total), SUCCESS

    def normalize_score(self, state: CycleState, pod: PodInfo, scores: dict[str, int]) -> Status:
        s: _ScoreState = state.read(NAME + "/score")
        valid = [v for name, v in scores.items() if name not in s.ignored]
        if not valid:
            return SUCCESS
        lowest, highest = min(valid), max(valid)
        for name, value in scores.items():
            if name in s.ignored:
                scores[name] = 0
            elif highest == 0:
                scores[name] = MAX_NODE_SCORE
            else:
                scores[name] = MAX_NODE_SCORE * (highest + lowest - value) // highest
        return SUCCESS


def new(args: Mapping[str, Any], handle: Handle) -> PodTopologySpread:
    if args.get("defaultingType") == "List":
        defaults = [(c["topologyKey"], int(c.get("maxSkew") or 1))
                    for c in args.get("defaultConstraints") or ()]
    else:
        defaults = list(SYSTEM_DEFAULTS)
    return PodTopologySpread(handle, defaults)
