"""One pod's placement decision: filter the nodes, score the feasible ones, pick the best.

This is upstream's ``schedulePod`` (``schedule_one.go``) without the I/O, so the benchmark and
the unit tests drive it directly:

- a pod with ``status.nominatedNodeName`` (a preemptor) tries that node first;
- Filter visits nodes round-robin from where the previous cycle stopped and stops once it has
  found ``num_feasible_nodes_to_find`` nodes (upstream's ``percentageOfNodesToScore``: all of
  them below 100 nodes, else an adaptive ``50% - nodes/125`` with a 5% floor and at least
  100 nodes), so large clusters do not pay for scoring every node;
- a single feasible node is taken without scoring; otherwise the highest total score wins,
  ties broken uniformly at random (reservoir sampling, as upstream's ``selectHost``).

The outcome is a value: a node name, or a :class:`FitError` (every node said no; its
message is what users see), or an ``Error`` status.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from pyk8s.scheduler.framework import (
    Code,
    CycleState,
    Diagnosis,
    FitError,
    Framework,
    NodeInfo,
    PodInfo,
    Snapshot,
    Status,
)

__all__ = ["GenericScheduler", "ScheduleResult", "num_feasible_nodes_to_find"]

MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND = 5
NO_NODES_AVAILABLE = "no nodes available to schedule pods"


def num_feasible_nodes_to_find(percentage: int, num_all_nodes: int) -> int:
    """How many feasible nodes are enough to stop filtering (upstream's rule, exactly)."""
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND:
        return num_all_nodes
    if percentage <= 0:
        percentage = 50 - num_all_nodes // 125
        percentage = max(percentage, MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND)
    if percentage >= 100:
        return num_all_nodes
    return max(num_all_nodes * percentage // 100, MIN_FEASIBLE_NODES_TO_FIND)


@dataclass
class ScheduleResult:
    """Where the pod goes (``node``), or why not (``fit_error`` / ``status``)."""

    node: str = ""
    evaluated_nodes: int = 0
    feasible_nodes: int = 0
    fit_error: FitError | None = None
    status: Status = field(default_factory=Status)


class GenericScheduler:
    """The filter → score → select algorithm; keeps only the round-robin start index."""

    def __init__(self, percentage_of_nodes_to_score: int = 0,
                 rng: random.Random | None = None) -> None:
        self.percentage = percentage_of_nodes_to_score
        self.rng = rng or random.Random()
        self.next_start_node_index = 0

    def schedule(self, fwk: Framework, state: CycleState, pod: PodInfo,
                 snapshot: Snapshot) -> ScheduleResult:
        if not len(snapshot):
            return ScheduleResult(status=Status.error(NO_NODES_AVAILABLE))
        feasible, diagnosis, status = self.find_nodes_that_fit(fwk, state, pod, snapshot)
        if status.code == Code.ERROR:
            return ScheduleResult(status=status)
        evaluated = len(feasible) + len(diagnosis.node_statuses)
        if not feasible:
            fit = FitError(pod, len(snapshot), diagnosis)
            return ScheduleResult(evaluated_nodes=evaluated, fit_error=fit,
                                  status=Status.unschedulable(fit.message))
        if len(feasible) == 1:
            return ScheduleResult(feasible[0].name, evaluated, 1)
        status = fwk.run_pre_score(state, pod, feasible)
        if not status.is_success:
            return ScheduleResult(status=status)
        scores, status = fwk.run_score(state, pod, feasible)
        if not status.is_success:
            return ScheduleResult(status=status)
        return ScheduleResult(self.select_host(scores), evaluated, len(feasible))

    def find_nodes_that_fit(self, fwk: Framework, state: CycleState, pod: PodInfo,
                            snapshot: Snapshot) -> tuple[list[NodeInfo], Diagnosis, Status]:
        diagnosis = Diagnosis()
        all_nodes = snapshot.node_infos
        result, status = fwk.run_pre_filter(state, pod, all_nodes)
        if not status.is_success:
            if status.code == Code.ERROR:
                return [], diagnosis, status
            diagnosis.pre_filter_msg = status.message
            diagnosis.node_statuses = dict.fromkeys((n.name for n in all_nodes), status)
            diagnosis.unschedulable_plugins.add(status.plugin)
            return [], diagnosis, Status()

        nominated = (pod.pod.get("status") or {}).get("nominatedNodeName")
        if nominated:
            node = snapshot.get(nominated)
            if (node is not None and (result is None or result.node_names is None
                                      or nominated in result.node_names)
                    and fwk.run_filter_with_nominated_pods(state, pod, node).is_success):
                return [node], diagnosis, Status()

        nodes: list[NodeInfo] = all_nodes
        if result is not None and result.node_names is not None:
            nodes = [n for n in (snapshot.get(name) for name in sorted(result.node_names))
                     if n is not None]
            for node in all_nodes:
                if node.name not in result.node_names:
                    diagnosis.node_statuses[node.name] = Status.unresolvable(
                        "node is filtered out by the prefilter result")
        if not nodes:
            return [], diagnosis, Status()
        percentage = fwk.profile.percentage_of_nodes_to_score
        to_find = num_feasible_nodes_to_find(
            self.percentage if percentage is None else percentage, len(nodes))
        feasible: list[NodeInfo] = []
        count = len(nodes)
        start = self.next_start_node_index % count
        processed = 0
        for i in range(count):
            node = nodes[(start + i) % count]
            processed += 1
            status = fwk.run_filter_with_nominated_pods(state, pod, node)
            if status.code == Code.SUCCESS:
                feasible.append(node)
                if len(feasible) >= to_find:
                    break
            elif status.code == Code.ERROR:
                return [], diagnosis, status
            else:
                diagnosis.node_statuses[node.name] = status
                diagnosis.unschedulable_plugins.add(status.plugin)
        self.next_start_node_index = (start + processed) % count
        return feasible, diagnosis, Status()

    def select_host(self, scores: dict[str, int]) -> str:
        best = ""
        best_score = -1
        ties = 0
        for name, score in scores.items():
            if score > best_score:
                best, best_score, ties = name, score, 1
            elif score == best_score:
                ties += 1
                if self.rng.randrange(ties) == 0:
                    best = name
        return best
