"""TaintToleration: keep pods off nodes whose taints they do not tolerate.

Filter: a ``NoSchedule`` or ``NoExecute`` taint without a matching toleration rejects the node
(``UnschedulableAndUnresolvable``: evicting pods does not remove taints). The reason names the
first such taint, ``node(s) had untolerated taint {key: value}``, as upstream.

Score: ``PreferNoSchedule`` taints are soft; a node scores lower the more of them the pod does
not tolerate (counted, then reverse-normalized so the cleanest node gets 100).
"""

from __future__ import annotations

from collections.abc import Mapping
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
from pyk8s.scheduler.plugins.helpers import (
    default_normalize_score,
    find_untolerated_taint,
    toleration_tolerates_taint,
)

NAME = "TaintToleration"
_HARD = ("NoSchedule", "NoExecute")


class TaintToleration:
    name = NAME

    def events_to_register(self) -> tuple[ClusterEvent, ...]:
        return NODE_CHANGES

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        taints = node.taints
        if not taints:
            return SUCCESS
        tolerations = (pod.pod.get("spec") or {}).get("tolerations") or ()
        taint = find_untolerated_taint(taints, tolerations, _HARD)
        if taint is None:
            return SUCCESS
        return Status.unresolvable(
            f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value', '')}}}")

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: Any) -> Status:
        tolerations = [t for t in (pod.pod.get("spec") or {}).get("tolerations") or ()
                       if (t.get("effect") or "") in ("", "PreferNoSchedule")]
        state.write(NAME, tolerations)
        return SUCCESS

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> tuple[int, Status]:
        if not node.taints:
            return 0, SUCCESS
        tolerations = state.read(NAME) or ()
        count = 0
        for taint in node.taints:
            if taint.get("effect") != "PreferNoSchedule":
                continue
            if not any(toleration_tolerates_taint(t, taint) for t in tolerations):
                count += 1
        return count, SUCCESS

    def normalize_score(self, state: CycleState, pod: PodInfo, scores: dict[str, int]) -> Status:
        default_normalize_score(scores, reverse=True)
        return SUCCESS


def new(args: Mapping[str, Any], handle: Handle) -> TaintToleration:
    return TaintToleration()
