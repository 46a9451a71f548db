"""NodePorts: a host port can be held by one pod per node (per protocol and address).

Two claims conflict when protocol and port are equal and either address is the wildcard
``0.0.0.0`` or both are the same address (upstream ``HostPortInfo.CheckConflict``). Evicting
the holder would free the port, so the verdict is ``Unschedulable`` (preemption may help).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyk8s.scheduler.framework import (
    ASSIGNED_POD_DELETE,
    NODE_CHANGES,
    SUCCESS,
    ClusterEvent,
    CycleState,
    Handle,
    NodeInfo,
    PodInfo,
    Status,
)

NAME = "NodePorts"
ERR_REASON = "node(s) didn't have free ports for the requested pod ports"
_ANY = "0.0.0.0"


def _conflicts(wanted: tuple[str, str, int], used: Mapping[tuple[str, str, int], int]) -> bool:
    ip, protocol, port = wanted
    for (used_ip, used_protocol, used_port), count in used.items():
        if count <= 0 or used_port != port or used_protocol != protocol:
            continue
        if _ANY in (ip, used_ip) or ip == used_ip:
            return True
    return False


class NodePorts:
    name = NAME

    def events_to_register(self) -> tuple[ClusterEvent, ...]:
        return (*NODE_CHANGES, ASSIGNED_POD_DELETE)

    def pre_filter(self, state: CycleState, pod: PodInfo, nodes: Any) -> tuple[None, Status]:
        return None, SUCCESS if pod.host_ports else Status.skip()

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        if node.used_ports and any(_conflicts(p, node.used_ports) for p in pod.host_ports):
            return Status.unschedulable(ERR_REASON)
        return SUCCESS


def new(args: Mapping[str, Any], handle: Handle) -> NodePorts:
    return NodePorts()
