"""NodeResourcesBalancedAllocation: prefer nodes whose resources stay evenly used.

Score = (1 - standard deviation of the requested/allocatable fractions) x 100, over cpu and
memory by default (upstream ``balancedResourceScorer``; fractions capped at 1). It uses the
pods' actual requests, not the 100m/200Mi scoring defaults, and skips pods that request none
of the scored resources (nothing they do changes the balance).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

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

    def __init__(self, resources: Sequence[str] = (CPU, MEMORY)) -> None:
        self.resources = tuple(resources)

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: Any) -> Status:
        if not any(pod.requests.get(name, 0) for name in self.resources):
            return Status.skip()
        state.write(NAME, tuple((name, pod.requests.get(name, 0)) for name in self.resources))
        return SUCCESS

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> tuple[int, Status]:
        fractions: list[float] = []
        allocatable = node.allocatable
        used = node.requested
        wanted = state.read(NAME) or tuple((name, pod.requests.get(name, 0))
                                           for name in self.resources)
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
        return int((1 - std) * MAX_NODE_SCORE), SUCCESS


def new(args: Mapping[str, Any], handle: Handle) -> BalancedAllocation:
    names = [r["name"] for r in args.get("resources") or ()]
    return BalancedAllocation(names or (CPU, MEMORY))
