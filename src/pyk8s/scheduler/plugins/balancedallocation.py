"""NodeResourcesBalancedAllocation: prefer nodes whose resources stay evenly used.

Score = (1 - standard deviation of the requested/allocatable fractions) x 100, over cpu and
memory by default (upstream ``balancedResourceScorer``; fractions capped at 1). It uses the
pods' actual requests, not the 100m/200Mi scoring defaults, and skips pods that request none
of the scored resources (nothing they do changes the balance). ``score_nodes`` computes the
default cpu + memory case in one comprehension with the same float operations as ``score``,
and remembers each node's score until the node changes (it depends only on the node and the
pod's requests; ``NodeColumns.memoized``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from pyk8s.scheduler.columns import NodeBatch, as_batch
from pyk8s.scheduler.framework import (
    MAX_NODE_SCORE,
    SUCCESS,
    CycleState,
    Handle,
    NodeInfo,
    PodInfo,
    Status,
)
from pyk8s.scheduler.resources import CPU, MEMORY

NAME = "NodeResourcesBalancedAllocation"


class BalancedAllocation:
    name = NAME
    scores_in_range = True  # see BatchScorePlugin

    def __init__(self, resources: Sequence[str] = (CPU, MEMORY)) -> None:
        self.resources = tuple(resources)

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: Any) -> Status:
        if not any(pod.requests.get(name, 0) for name in self.resources):
            return Status.skip()
        state.write(NAME, tuple((name, pod.requests.get(name, 0)) for name in self.resources))
        return SUCCESS

    def _wanted(self, state: CycleState, pod: PodInfo) -> tuple[tuple[str, int], ...]:
        return state.read(NAME) or tuple((name, pod.requests.get(name, 0))
                                         for name in self.resources)

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> tuple[int, Status]:
        return self._score_one(self._wanted(state, pod), node), SUCCESS

    def score_nodes(self, state: CycleState, pod: PodInfo,
                    nodes: Sequence[NodeInfo]) -> list[int]:
        batch = as_batch(nodes)
        wanted = self._wanted(state, pod)
        key = f"{NAME}/" + ",".join(f"{name}={amount}" for name, amount in wanted)
        return batch.columns.memoized(batch, key, lambda stale: self._compute(wanted, stale))

    def _compute(self, wanted: tuple[tuple[str, int], ...], batch: NodeBatch) -> list[int]:
        one = self._score_one
        if len(wanted) != 2 or wanted[0][0] != CPU or wanted[1][0] != MEMORY:
            return [one(wanted, node) for node in batch]
        pc, pm = wanted[0][1], wanted[1][1]
        top = MAX_NODE_SCORE
        columns = batch.columns
        rows = enumerate(zip(batch.take(columns.alloc_cpu), batch.take(columns.alloc_memory),
                             batch.take(columns.req_cpu), batch.take(columns.req_memory),
                             strict=True))
        return [int((1 - abs((fc if (fc := (uc + pc) / cc) < 1.0 else 1.0)
                             - (fm if (fm := (um + pm) / cm) < 1.0 else 1.0)) / 2) * top)
                if cc > 0 and cm > 0 else one(wanted, batch[j])
                for j, (cc, cm, uc, um) in rows]

    @staticmethod
    def _score_one(wanted: tuple[tuple[str, int], ...], node: NodeInfo) -> int:
        fractions: list[float] = []
        allocatable = node.allocatable
        used = node.requested
        for name, amount in wanted:
            capacity = allocatable.get(name, 0)
            if capacity <= 0:
                continue
            fraction = (used.get(name, 0) + amount) / capacity
            fractions.append(fraction if fraction < 1.0 else 1.0)
        std = 0.0
        if len(fractions) == 2:
            std = abs(fractions[0] - fractions[1]) / 2
        elif len(fractions) > 2:
            mean = sum(fractions) / len(fractions)
            std = math.sqrt(sum((f - mean) ** 2 for f in fractions) / len(fractions))
        return int((1 - std) * MAX_NODE_SCORE)


def new(args: Mapping[str, Any], handle: Handle) -> BalancedAllocation:
    names = [r["name"] for r in args.get("resources") or ()]
    return BalancedAllocation(names or (CPU, MEMORY))
