"""NodeResourcesFit: the pod's requests must fit in what the node has left.

Filter (upstream ``noderesources.Fit``): the pod count, then cpu, memory, ephemeral-storage
and every scalar resource the pod requests, against allocatable minus what the node's pods
(bound and assumed) already request. Each shortage is one reason (``Insufficient cpu``,
``Too many pods``, ...), so a node short of two things counts under both in the event. A
shortage that evicting pods could cure is ``Unschedulable``; a request larger than the
node's whole allocatable is ``UnschedulableAndUnresolvable`` (preemption would be futile).

Score: a scoring strategy over weighted resources (default: cpu and memory, weight 1 each):
``LeastAllocated`` (default; spreads load) scores the free fraction after placing the pod,
``MostAllocated`` (bin packing) the used fraction. Scoring counts a container without
requests as 100m / 200Mi (see ``resources.pod_requests``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pyk8s.scheduler.framework import (
    ASSIGNED_POD_DELETE,
    ASSIGNED_POD_UPDATE,
    MAX_NODE_SCORE,
    NODE_CHANGES,
    SUCCESS,
    ClusterEvent,
    Code,
    CycleState,
    Handle,
    NodeInfo,
    PodInfo,
    Status,
)
from pyk8s.scheduler.resources import CPU, MEMORY

NAME = "NodeResourcesFit"
DEFAULT_RESOURCES: tuple[tuple[str, int], ...] = ((CPU, 1), (MEMORY, 1))


def insufficient_resources(pod: PodInfo, node: NodeInfo) -> list[tuple[str, bool]]:
    """(reason, unresolvable) for every resource the pod does not fit in on the node."""
    out: list[tuple[str, bool]] = []
    if len(node.pods) + 1 > node.allowed_pods:
        out.append(("Too many pods", False))
    allocatable = node.allocatable
    requested = node.requested
    for name, amount in pod.requests.items():
        if amount <= 0:
            continue
        capacity = allocatable.get(name, 0)
        if amount > capacity - requested.get(name, 0):
            out.append((f"Insufficient {name}", amount > capacity))
    return out


class Fit:
    name = NAME

    def events_to_register(self) -> tuple[ClusterEvent, ...]:
        return (*NODE_CHANGES, ASSIGNED_POD_UPDATE, ASSIGNED_POD_DELETE)

    def __init__(self, strategy: str = "LeastAllocated",
                 resources: Sequence[tuple[str, int]] = DEFAULT_RESOURCES) -> None:
        if strategy not in ("LeastAllocated", "MostAllocated"):
            raise ValueError(f"scoring strategy {strategy!r} is not supported")
        self.most_allocated = strategy == "MostAllocated"
        self.resources = tuple(resources)
        # (name, weight, scored with the non-zero defaults?) for the score loop
        self._scored = tuple((name, weight, name in (CPU, MEMORY)) for name, weight in resources)

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        if len(node.pods) < node.allowed_pods:  # the common case: fits, nothing to report
            allocatable = node.allocatable
            requested = node.requested
            for name, amount in pod.requests.items():
                if amount > 0 and amount > allocatable.get(name, 0) - requested.get(name, 0):
                    break
            else:
                return SUCCESS
        short = insufficient_resources(pod, node)
        if not short:
            return SUCCESS
        code = (Code.UNSCHEDULABLE_AND_UNRESOLVABLE if any(u for _, u in short)
                else Code.UNSCHEDULABLE)
        return Status(code, tuple(reason for reason, _ in short))

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> tuple[int, Status]:
        total = weights = 0
        pod_reqs = pod.non_zero_requests
        allocatable = node.allocatable
        for name, weight, non_zero in self._scored:
            capacity = allocatable.get(name, 0)
            if capacity <= 0:
                continue
            used = node.non_zero_requested if non_zero else node.requested
            requested = used.get(name, 0) + pod_reqs.get(name, 0)
            if requested > capacity:
                score = MAX_NODE_SCORE if self.most_allocated else 0
            elif self.most_allocated:
                score = requested * MAX_NODE_SCORE // capacity
            else:
                score = (capacity - requested) * MAX_NODE_SCORE // capacity
            total += score * weight
            weights += weight
        return (total // weights if weights else 0), SUCCESS


def _resources(args: Mapping[str, Any]) -> tuple[str, tuple[tuple[str, int], ...]]:
    strategy = args.get("scoringStrategy") or {}
    resources = tuple((r["name"], int(r.get("weight") or 1))
                      for r in strategy.get("resources") or ()) or DEFAULT_RESOURCES
    return strategy.get("type") or "LeastAllocated", resources


def new(args: Mapping[str, Any], handle: Handle) -> Fit:
    strategy, resources = _resources(args)
    return Fit(strategy, resources)
