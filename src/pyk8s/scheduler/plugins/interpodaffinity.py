"""InterPodAffinity: place pods relative to other pods, by topology domain.

Filter, in upstream's order and wording:

1. existing pods' *required anti-affinity* that selects the incoming pod forbids their
   domains: ``node(s) didn't satisfy existing pods anti-affinity rules`` (Unschedulable);
2. the pod's own required *anti-affinity*: no selected pod may run in the node's domain of
   the term's key: ``node(s) didn't match pod anti-affinity rules`` (Unschedulable);
3. the pod's own required *affinity*: for every term some selected pod runs in the node's
   domain, except that the first pod of a group that selects itself may go anywhere with
   the keys: ``node(s) didn't match pod affinity rules`` (UnschedulableAndUnresolvable:
   evicting pods never creates the pod it needs).

Counts per (topologyKey, value) are computed once per cycle in PreFilter, over the nodes the
scheduler knows, so Filter is a few dict lookups per node.

Score: preferred (anti-)affinity of the incoming pod towards existing pods, plus the
symmetric terms of existing pods towards the incoming one (their required affinity counts
with ``hardPodAffinityWeight``, default 1), summed per domain; min/max-normalized.

Terms name namespaces via ``namespaces`` or default to the pod's own; an empty
``namespaceSelector`` means all namespaces. Deliberately absent: non-empty
``namespaceSelector`` (needs a namespace informer; treated as the listed namespaces only).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pyk8s.scheduler.framework import (
    ASSIGNED_POD_ADD,
    ASSIGNED_POD_DELETE,
    ASSIGNED_POD_UPDATE,
    MAX_NODE_SCORE,
    NODE_CHANGES,
    SUCCESS,
    ClusterEvent,
    CycleState,
    Handle,
    NodeInfo,
    PodInfo,
    Status,
)
from pyk8s.scheduler.nodeinfo import AffinityTerm

NAME = "InterPodAffinity"
ERR_REASON_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"
ERR_REASON_AFFINITY = "node(s) didn't match pod affinity rules"
ERR_REASON_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"

Pair = tuple[str, str]


@dataclass
class _FilterState:
    existing_anti: dict[Pair, int]
    affinity: dict[Pair, int]
    anti_affinity: dict[Pair, int]


def _bump(counts: dict[Pair, int], term: AffinityTerm, node: NodeInfo, by: int = 1) -> None:
    value = node.labels.get(term.topology_key)
    if value is not None:
        pair = (term.topology_key, value)
        counts[pair] = counts.get(pair, 0) + by


def _pods(nodes: Iterable[NodeInfo]) -> Iterable[tuple[NodeInfo, PodInfo]]:
    for node in nodes:
        for other in node.pods.values():
            yield node, other


class InterPodAffinity:
    name = NAME

    def events_to_register(self) -> tuple[ClusterEvent, ...]:
        return (*NODE_CHANGES, ASSIGNED_POD_ADD, ASSIGNED_POD_UPDATE, ASSIGNED_POD_DELETE)

    def __init__(self, handle: Handle, hard_pod_affinity_weight: int = 1) -> None:
        self.handle = handle
        self.hard_weight = hard_pod_affinity_weight

    def _all_nodes(self, nodes: Sequence[NodeInfo]) -> Sequence[NodeInfo]:
        return self.handle.snapshot.node_infos or nodes

    def _affinity_nodes(self, nodes: Sequence[NodeInfo]) -> Sequence[NodeInfo]:
        """The nodes running pods with affinity terms (the cache's index, not a scan)."""
        snapshot = self.handle.snapshot
        if snapshot.node_infos:
            return snapshot.with_affinity_pods
        return [n for n in nodes if n.pods_with_affinity]

    def pre_filter(self, state: CycleState, pod: PodInfo,
                   nodes: Sequence[NodeInfo]) -> tuple[None, Status]:
        existing_anti: dict[Pair, int] = {}
        for node, other in _pods(self._affinity_nodes(nodes)):
            for term in other.required_anti_affinity:
                if term.matches(pod):
                    _bump(existing_anti, term, node)
        affinity_terms = pod.required_affinity
        anti_terms = pod.required_anti_affinity
        if not existing_anti and not affinity_terms and not anti_terms:
            return None, Status.skip()
        affinity: dict[Pair, int] = {}
        anti_affinity: dict[Pair, int] = {}
        if affinity_terms or anti_terms:
            for node, other in _pods(self._all_nodes(nodes)):
                if affinity_terms and all(t.matches(other) for t in affinity_terms):
                    for term in affinity_terms:
                        _bump(affinity, term, node)
                for term in anti_terms:
                    if term.matches(other):
                        _bump(anti_affinity, term, node)
        state.write(NAME, _FilterState(existing_anti, affinity, anti_affinity))
        return None, SUCCESS

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        s: _FilterState | None = state.read(NAME)
        if s is None:
            return SUCCESS
        labels = node.labels
        for (key, value), count in s.existing_anti.items():
            if count > 0 and labels.get(key) == value:
                return Status.unschedulable(ERR_REASON_EXISTING_ANTI_AFFINITY)
        for term in pod.required_anti_affinity:
            value = labels.get(term.topology_key)
            if value is not None and s.anti_affinity.get((term.topology_key, value), 0) > 0:
                return Status.unschedulable(ERR_REASON_ANTI_AFFINITY)
        terms = pod.required_affinity
        if terms:
            satisfied = all(
                s.affinity.get((t.topology_key, labels.get(t.topology_key, "")), 0) > 0
                and t.topology_key in labels for t in terms)
            if not satisfied:
                # The first pod of a group that selects itself: anywhere with the keys.
                first_of_group = (not s.affinity and all(t.matches(pod) for t in terms)
                                  and all(t.topology_key in labels for t in terms))
                if not first_of_group:
                    return Status.unresolvable(ERR_REASON_AFFINITY)
        return SUCCESS

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> Status:
        preferred = pod.preferred_affinity or pod.preferred_anti_affinity
        scan = self._all_nodes(nodes) if preferred else self._affinity_nodes(nodes)
        scores: dict[Pair, int] = {}
        for node, other in _pods(scan):
            for w in pod.preferred_affinity:
                if w.term.matches(other):
                    _bump(scores, w.term, node, w.weight)
            for w in pod.preferred_anti_affinity:
                if w.term.matches(other):
                    _bump(scores, w.term, node, -w.weight)
            if not other.has_affinity:
                continue
            if self.hard_weight:
                for term in other.required_affinity:
                    if term.matches(pod):
                        _bump(scores, term, node, self.hard_weight)
            for w in other.preferred_affinity:
                if w.term.matches(pod):
                    _bump(scores, w.term, node, w.weight)
            for w in other.preferred_anti_affinity:
                if w.term.matches(pod):
                    _bump(scores, w.term, node, -w.weight)
        if not scores:
            return Status.skip()
        state.write(NAME + "/score", scores)
        return SUCCESS

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> tuple[int, Status]:
        scores: dict[Pair, int] = state.read(NAME + "/score") or {}
        labels = node.labels
        return sum(v for (key, value), v in scores.items() if labels.get(key) == value), SUCCESS

    def normalize_score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo],
                        scores: list[int]) -> Status:
        if not scores:
            return SUCCESS
        lowest, highest = min(scores), max(scores)
        spread = highest - lowest
        if spread > 0:
            scores[:] = [int(MAX_NODE_SCORE * (value - lowest) / spread) for value in scores]
        else:
            scores[:] = [0] * len(scores)
        return SUCCESS


def new(args: Mapping[str, Any], handle: Handle) -> InterPodAffinity:
    return InterPodAffinity(handle, int(args.get("hardPodAffinityWeight", 1)))
