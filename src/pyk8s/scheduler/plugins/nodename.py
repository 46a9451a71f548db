"""NodeName: a pod that names its node (``spec.nodeName``) fits only that node.

Such pods normally bypass the scheduler altogether; the filter exists so a pod that asks for a
node and also reaches the scheduler (or preemption's what-if) is judged consistently.
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
    Status,
)

NAME = "NodeName"
ERR_REASON = "node(s) didn't match the requested node name"


class NodeName:
    name = NAME

    def events_to_register(self) -> tuple[ClusterEvent, ...]:
        return NODE_CHANGES

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        wanted = (pod.pod.get("spec") or {}).get("nodeName")
        if wanted and wanted != node.name:
            return Status.unresolvable(ERR_REASON)
        return SUCCESS

    def filter_nodes(self, state: CycleState, pod: PodInfo,
                     nodes: Sequence[NodeInfo]) -> list[tuple[int, Status]]:
        wanted = (pod.pod.get("spec") or {}).get("nodeName")
        if not wanted:
            return []
        status = Status.unresolvable(ERR_REASON)
        return [(i, status) for i, node in enumerate(nodes) if node.name != wanted]


def new(args: Mapping[str, Any], handle: Handle) -> NodeName:
    return NodeName()
