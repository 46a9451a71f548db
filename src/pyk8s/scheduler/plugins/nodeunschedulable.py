"""NodeUnschedulable: cordoned nodes (``spec.unschedulable``) take no new pods.

A pod that tolerates the ``node.kubernetes.io/unschedulable:NoSchedule`` taint (DaemonSet pods
do) may still go there, as upstream. No eviction could change the verdict, hence
``UnschedulableAndUnresolvable``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pyk8s.scheduler.columns import as_batch
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
from pyk8s.scheduler.plugins.helpers import toleration_tolerates_taint

NAME = "NodeUnschedulable"
ERR_REASON = "node(s) were unschedulable"
TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}


class NodeUnschedulable:
    name = NAME

    def events_to_register(self) -> tuple[ClusterEvent, ...]:
        return NODE_CHANGES

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        if not node.unschedulable or _tolerated(pod):
            return SUCCESS
        return Status.unresolvable(ERR_REASON)

    def filter_nodes(self, state: CycleState, pod: PodInfo,
                     nodes: Sequence[NodeInfo]) -> list[tuple[int, Status]]:
        batch = as_batch(nodes)
        cordoned = batch.take(batch.columns.unschedulable)
        if 1 not in cordoned or _tolerated(pod):
            return []
        status = Status.unresolvable(ERR_REASON)
        return [(j, status) for j, flag in enumerate(cordoned) if flag]


def _tolerated(pod: PodInfo) -> bool:
    tolerations = (pod.pod.get("spec") or {}).get("tolerations") or ()
    return any(toleration_tolerates_taint(t, TAINT) for t in tolerations)


def new(args: Mapping[str, Any], handle: Handle) -> NodeUnschedulable:
    return NodeUnschedulable()
