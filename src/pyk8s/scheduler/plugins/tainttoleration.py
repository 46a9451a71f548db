"""TaintToleration: keep pods off nodes whose taints they do not tolerate.

Filter: a ``NoSchedule`` or ``NoExecute`` taint without a matching toleration rejects the node
(``UnschedulableAndUnresolvable``: evicting pods does not remove taints). The reason names the
first such taint, ``node(s) had untolerated taint {key: value}``, as upstream.

Score: ``PreferNoSchedule`` taints are soft; a node scores lower the more of them the pod does
not tolerate (counted, then reverse-normalized so the cleanest node gets 100).
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
from pyk8s.scheduler.plugins.helpers import (
    default_normalize_score,
    find_untolerated_taint,
    toleration_tolerates_taint,
)

NAME = "TaintToleration"
_HARD = ("NoSchedule", "NoExecute")


class TaintToleration:
    name = NAME
    scores_in_range = True  # see BatchScorePlugin

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

    def filter_nodes(self, state: CycleState, pod: PodInfo,
                     nodes: Sequence[NodeInfo]) -> list[tuple[int, Status]]:
        batch = as_batch(nodes)
        tainted = batch.take(batch.columns.tainted)
        if 1 not in tainted:
            return []
        filter_ = self.filter
        return [(j, status) for j, flag in enumerate(tainted)
                if flag and (status := filter_(state, pod, batch[j])).code]

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: Any) -> Status:
        tolerations = [t for t in (pod.pod.get("spec") or {}).get("tolerations") or ()
                       if (t.get("effect") or "") in ("", "PreferNoSchedule")]
        state.write(NAME, tolerations)
        return SUCCESS

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> tuple[int, Status]:
        if not node.taints:
            return 0, SUCCESS
        return _count_intolerable(node.taints, state.read(NAME) or ()), SUCCESS

    def score_nodes(self, state: CycleState, pod: PodInfo,
                    nodes: Sequence[NodeInfo]) -> list[int]:
        batch = as_batch(nodes)
        tainted = batch.take(batch.columns.tainted)
        if 1 not in tainted:
            return [0] * len(batch)
        tolerations = state.read(NAME) or ()
        return [_count_intolerable(batch[j].taints, tolerations) if flag else 0
                for j, flag in enumerate(tainted)]

    def normalize_score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo],
                        scores: list[int]) -> Status:
        default_normalize_score(scores, reverse=True)
        return SUCCESS


def _count_intolerable(taints: Sequence[Mapping[str, Any]],
                       tolerations: Sequence[Mapping[str, Any]]) -> int:
    """``PreferNoSchedule`` taints that none of the (already narrowed) tolerations tolerate."""
    count = 0
    for taint in taints:
        if taint.get("effect") != "PreferNoSchedule":
            continue
        if not any(toleration_tolerates_taint(t, taint) for t in tolerations):
            count += 1
    return count


def new(args: Mapping[str, Any], handle: Handle) -> TaintToleration:
    return TaintToleration()
