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

The batched forms (``filter_nodes``, ``score_nodes``) handle the common shapes, a pod asking
only for cpu and memory and the default cpu + memory scoring, in one comprehension over the
NodeInfos' integer attributes; anything else (and every rejected node's reasons) goes through
``filter`` / ``score``, the reference. A node's score depends only on the node and the pod's
scored requests, so ``score_nodes`` remembers it (``NodeColumns.memoized``) until the node
changes: consecutive pods of a workload are the same shape, and between two cycles only the
node the previous pod went to has changed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pyk8s.scheduler.columns import NodeBatch, as_batch
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


_NEVER = float("-inf")  # a request of 0 never exceeds what is free, even on an overfull node


class Fit:
    name = NAME
    scores_in_range = True  # see BatchScorePlugin

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
        self._cpu_and_memory = self.resources == DEFAULT_RESOURCES
        # A weighted mean of in-range scores is in range, if no weight is negative.
        self.scores_in_range = all(weight > 0 for _, weight in self.resources)
        # Profiles may configure the plugin differently but share the remembered scores.
        self._memo_prefix = f"{NAME}/{strategy}/{self.resources}/"

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

    def filter_nodes(self, state: CycleState, pod: PodInfo,
                     nodes: Sequence[NodeInfo]) -> list[tuple[int, Status]]:
        batch = as_batch(nodes)
        filter_ = self.filter
        requests = pod.requests
        if any(amount > 0 and name not in (CPU, MEMORY) for name, amount in requests.items()):
            return [(j, status) for j, node in enumerate(batch)
                    if (status := filter_(state, pod, node)).code]
        cpu: float = requests.get(CPU, 0)
        memory: float = requests.get(MEMORY, 0)
        if cpu <= 0:
            cpu = _NEVER
        if memory <= 0:
            memory = _NEVER
        if not len(batch):
            return []
        columns = batch.columns
        lowest = columns.lowest
        if (lowest("free_pods", batch) > 0 and cpu <= lowest("free_cpu", batch)
                and memory <= lowest("free_memory", batch)):
            return []  # every node fits (the columns' block minima say so)
        short = [j for j, (p, c, m) in enumerate(zip(
                     batch.take(columns.free_pods), batch.take(columns.free_cpu),
                     batch.take(columns.free_memory), strict=True))
                 if p <= 0 or cpu > c or memory > m]
        return [(j, status) for j in short if (status := filter_(state, pod, batch[j])).code]

    def score_nodes(self, state: CycleState, pod: PodInfo,
                    nodes: Sequence[NodeInfo]) -> list[int]:
        batch = as_batch(nodes)
        requests = pod.non_zero_requests
        key = self._memo_prefix + ",".join(str(requests.get(name, 0))
                                           for name, _, _ in self._scored)
        return batch.columns.memoized(batch, key, lambda stale: self._compute(pod, stale))

    def _compute(self, pod: PodInfo, batch: NodeBatch) -> list[int]:
        one = self._score_one
        if not self._cpu_and_memory:
            return [one(pod, node) for node in batch]
        requests = pod.non_zero_requests
        pc, pm = requests.get(CPU, 0), requests.get(MEMORY, 0)
        top = MAX_NODE_SCORE
        columns = batch.columns
        rows = enumerate(zip(batch.take(columns.alloc_cpu), batch.take(columns.alloc_memory),
                             batch.take(columns.nz_cpu), batch.take(columns.nz_memory),
                             strict=True))
        if self.most_allocated:
            return [((rc * top // cc if (rc := uc + pc) <= cc else top)
                     + (rm * top // cm if (rm := um + pm) <= cm else top)) // 2
                    if cc > 0 and cm > 0 else one(pod, batch[j])
                    for j, (cc, cm, uc, um) in rows]
        return [(((cc - rc) * top // cc if (rc := uc + pc) <= cc else 0)
                 + ((cm - rm) * top // cm if (rm := um + pm) <= cm else 0)) // 2
                if cc > 0 and cm > 0 else one(pod, batch[j])
                for j, (cc, cm, uc, um) in rows]

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> tuple[int, Status]:
        return self._score_one(pod, node), SUCCESS

    def _score_one(self, pod: PodInfo, node: NodeInfo) -> int:
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
        return total // weights if weights else 0


def _resources(args: Mapping[str, Any]) -> tuple[str, tuple[tuple[str, int], ...]]:
    strategy = args.get("scoringStrategy") or {}
    resources = tuple((r["name"], int(r.get("weight") or 1))
                      for r in strategy.get("resources") or ()) or DEFAULT_RESOURCES
    return strategy.get("type") or "LeastAllocated", resources


def new(args: Mapping[str, Any], handle: Handle) -> Fit:
    strategy, resources = _resources(args)
    return Fit(strategy, resources)
