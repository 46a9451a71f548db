"""One pod's placement decision: filter the nodes, score the feasible ones, pick the best.

This is upstream's ``schedulePod`` (``schedule_one.go``) without the I/O, so the benchmark and
the unit tests drive it directly:

- a pod with ``status.nominatedNodeName`` (a preemptor) tries that node first;
- Filter visits nodes round-robin from where the previous cycle stopped and stops once it has
  found ``num_feasible_nodes_to_find`` nodes (upstream's ``percentageOfNodesToScore``: all of
  them below 100 nodes, else an adaptive ``50% - nodes/125`` with a 5% floor and at least
  100 nodes; one node if no plugin scores), so large clusters do not pay for scoring every
  node. The next cycle starts after the last node this one visited;
- nodes are filtered in chunks of consecutive snapshot positions
  (``Framework.run_filter_nodes``, plugin by plugin over a chunk, reading the snapshot's
  columns), each as large as the number of feasible nodes still wanted, and the chunk's
  verdicts are read in node order up to the node that completes the count. Verdicts past it
  are dropped, so the nodes searched, the statuses reported and the next start index are
  exactly those of a node-by-node search; only some filter work past the stop is wasted.
  The feasible nodes go on to PreScore and Score as a :class:`~.columns.NodeBatch`;
- a single feasible node is taken without scoring; otherwise the highest total score wins,
  ties broken uniformly at random (as upstream's ``selectHost``).

The outcome is a value: a node name, or a :class:`FitError` (every node said no; its
message is what users see), or an ``Error`` status.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import compress

from pyk8s.scheduler.columns import NodeBatch
from pyk8s.scheduler.framework import (
    Code,
    CycleState,
    Diagnosis,
    FitError,
    Framework,
    PodInfo,
    Snapshot,
    Status,
)

__all__ = ["GenericScheduler", "ScheduleResult", "num_feasible_nodes_to_find"]

MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND = 5
FEW_TIES = 8  # select_host finds up to this many ties one by one
MIN_FILTER_CHUNK = 16  # nodes filtered per batch when only a few more feasible ones are wanted
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
        totals, _, status = fwk.run_score_relative(state, pod, feasible)  # order is enough
        if not status.is_success:
            return ScheduleResult(status=status)
        best = feasible[self.select_host(totals)].name
        return ScheduleResult(best, evaluated, len(feasible))

    def find_nodes_that_fit(self, fwk: Framework, state: CycleState, pod: PodInfo,
                            snapshot: Snapshot) -> tuple[NodeBatch, Diagnosis, Status]:
        diagnosis = Diagnosis()
        all_nodes = snapshot.node_infos
        columns = snapshot.columns
        none = NodeBatch(columns, [])
        result, status = fwk.run_pre_filter(state, pod, all_nodes)
        if not status.is_success:
            if status.code == Code.ERROR:
                return none, diagnosis, status
            diagnosis.pre_filter_msg = status.message
            diagnosis.node_statuses = dict.fromkeys((n.name for n in all_nodes), status)
            diagnosis.unschedulable_plugins.add(status.plugin)
            return none, diagnosis, Status()

        nominated = (pod.pod.get("status") or {}).get("nominatedNodeName")
        if nominated:
            node = snapshot.get(nominated)
            if (node is not None and (result is None or result.node_names is None
                                      or nominated in result.node_names)
                    and fwk.run_filter_with_nominated_pods(state, pod, node).is_success):
                return NodeBatch.of_positions(columns, [columns.index[nominated]]), \
                    diagnosis, Status()

        # The positions to visit, in order: every node, or those PreFilter narrowed to.
        order: Sequence[int] = range(len(all_nodes))
        if result is not None and result.node_names is not None:
            index = columns.index
            order = [index[name] for name in sorted(result.node_names) if name in index]
            for node in all_nodes:
                if node.name not in result.node_names:
                    diagnosis.node_statuses[node.name] = Status.unresolvable(
                        "node is filtered out by the prefilter result")
        if not order:
            return none, diagnosis, Status()
        percentage = fwk.profile.percentage_of_nodes_to_score
        count = len(order)
        to_find = num_feasible_nodes_to_find(
            self.percentage if percentage is None else percentage, count)
        if not fwk.score_plugins:
            to_find = 1  # nothing would tell feasible nodes apart (upstream's hasScoring)
        runs: list[range] = []  # the feasible positions, as runs of consecutive ones
        found = 0
        statuses = diagnosis.node_statuses
        nodes = columns.nodes
        start = self.next_start_node_index % count
        processed = 0
        error: Status | None = None
        while processed < count and found < to_find and error is None:
            begin = (start + processed) % count
            # A chunk never wraps around: the wrapped part is the next chunk.
            size = min(count - processed, count - begin, max(to_find - found, MIN_FILTER_CHUNK))
            chunk = order[begin:begin + size]
            batch = NodeBatch.of_positions(columns, chunk)
            rejected = fwk.run_filter_nodes(state, pod, batch)
            if not rejected:
                take = min(size, to_find - found)
                _extend(runs, batch.runs if take == size else batch.subset(range(take)).runs)
                found += take
                processed += take
                continue
            accepted: list[int] = []
            for position in chunk:
                status = rejected.get(position)
                if status is None:
                    accepted.append(position)
                    processed += 1
                    if found + len(accepted) >= to_find:
                        break
                elif status.code == Code.ERROR:
                    error = status
                    break
                else:
                    statuses[nodes[position].name] = status
                    diagnosis.unschedulable_plugins.add(status.plugin)
                    processed += 1
            _extend(runs, NodeBatch.of_positions(columns, accepted).runs)
            found += len(accepted)
        # As upstream: advance by the nodes visited (even after an error), modulo all nodes.
        self.next_start_node_index = (self.next_start_node_index + processed) % len(all_nodes)
        if error is not None:
            return none, diagnosis, error
        return NodeBatch(columns, runs), diagnosis, Status()

    def select_host(self, totals: Sequence[int]) -> int:
        """The position of the highest total; among equals, one uniformly at random."""
        best = max(totals)
        ties = totals.count(best)
        at = totals.index(best)
        if ties <= 1:
            return at
        pick = self.rng.randrange(ties)
        if pick < FEW_TIES:  # the pick-th of the ties, each found by a scan in C
            for _ in range(pick):
                at = totals.index(best, at + 1)
            return at
        # Many ties (a fresh cluster): list the positions of all in one pass in C.
        return list(compress(range(len(totals)), map(best.__eq__, totals)))[pick]


def _extend(runs: list[range], more: list[range]) -> None:
    """Append runs of positions, merging a run that continues the last one."""
    for run in more:
        if runs and runs[-1].stop == run.start:
            runs[-1] = range(runs[-1].start, run.stop)
        else:
            runs.append(run)
