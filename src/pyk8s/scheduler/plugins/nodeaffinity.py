"""NodeAffinity: ``spec.nodeSelector`` and ``spec.affinity.nodeAffinity``.

Filter: the node must carry every ``nodeSelector`` label and match at least one of the
required ``nodeSelectorTerms`` (terms are ORed, a term's expressions ANDed; operators In,
NotIn, Exists, DoesNotExist, Gt, Lt; ``matchFields`` on ``metadata.name``). Labels are not
changed by evicting pods, so the verdict is ``UnschedulableAndUnresolvable``.

PreFilter narrows the search when every required term pins node names with
``matchFields metadata.name In [...]`` (how DaemonSet pods target their node).

Score: the sum of the weights of the preferred terms the node matches, scaled so the best
node gets 100.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pyk8s.scheduler.framework import (
    NODE_CHANGES,
    SUCCESS,
    ClusterEvent,
    CycleState,
    Handle,
    NodeInfo,
    PodInfo,
    PreFilterResult,
    Status,
)
from pyk8s.scheduler.plugins.helpers import (
    default_normalize_score,
    match_node_selector_term,
    match_node_selector_terms,
)

NAME = "NodeAffinity"
ERR_REASON = "node(s) didn't match Pod's node affinity/selector"


def _node_affinity(pod: PodInfo) -> Mapping[str, Any]:
    return (((pod.pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity")) or {}


def _required_terms(pod: PodInfo) -> list[Any] | None:
    required = _node_affinity(pod).get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is None:
        return None
    return list(required.get("nodeSelectorTerms") or [])


def _pinned_names(terms: list[Any]) -> frozenset[str] | None:
    names: set[str] = set()
    for term in terms:
        pinned = None
        for req in term.get("matchFields") or ():
            if req.get("key") == "metadata.name" and req.get("operator") == "In":
                values = set(req.get("values") or ())
                pinned = values if pinned is None else pinned & values
        if pinned is None:
            return None
        names |= pinned
    return frozenset(names)


class NodeAffinity:
    name = NAME

    def events_to_register(self) -> tuple[ClusterEvent, ...]:
        return NODE_CHANGES

    def pre_filter(self, state: CycleState, pod: PodInfo,
                   nodes: Sequence[NodeInfo]) -> tuple[PreFilterResult | None, Status]:
        selector = (pod.pod.get("spec") or {}).get("nodeSelector") or {}
        terms = _required_terms(pod)
        if not selector and terms is None:
            return None, Status.skip()
        if terms:
            names = _pinned_names(terms)
            if names is not None:
                return PreFilterResult(names), SUCCESS
        return None, SUCCESS

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        selector = (pod.pod.get("spec") or {}).get("nodeSelector") or {}
        labels = node.labels
        for key, value in selector.items():
            if labels.get(key) != value:
                return Status.unresolvable(ERR_REASON)
        terms = _required_terms(pod)
        if terms is not None and not match_node_selector_terms(terms, node.node or {}):
            return Status.unresolvable(ERR_REASON)
        return SUCCESS

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: Any) -> Status:
        preferred = _node_affinity(pod).get("preferredDuringSchedulingIgnoredDuringExecution")
        if not preferred:
            return Status.skip()
        state.write(NAME, [(int(p.get("weight") or 0), p.get("preference") or {})
                           for p in preferred])
        return SUCCESS

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> tuple[int, Status]:
        total = 0
        for weight, term in state.read(NAME) or ():
            if weight and match_node_selector_term(term, node.node or {}):
                total += weight
        return total, SUCCESS

    def normalize_score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo],
                        scores: list[int]) -> Status:
        default_normalize_score(scores)
        return SUCCESS


def new(args: Mapping[str, Any], handle: Handle) -> NodeAffinity:
    return NodeAffinity()
