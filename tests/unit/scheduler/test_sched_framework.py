"""The framework's semantics and the algorithm around it: statuses, ordering, FitError text,
how many nodes are searched, how ties are broken."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from scheduler_fixtures import framework, node, node_info, pod

from pyk8s.scheduler.algorithm import GenericScheduler, num_feasible_nodes_to_find
from pyk8s.scheduler.framework import (
    SUCCESS,
    Code,
    CycleState,
    Diagnosis,
    FitError,
    Framework,
    Handle,
    NodeInfo,
    PodInfo,
    PreFilterResult,
    Snapshot,
    Status,
)
from pyk8s.scheduler.plugins.registry import in_tree_registry
from pyk8s.scheduler.settings import DEFAULT_PLUGINS, PluginSpec, Profile

GPU_TAINT = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}


class Recorder:
    """A test plugin whose verdicts are scripted per node."""

    def __init__(self, name: str, verdicts: Mapping[str, Status] | None = None,
                 score: Mapping[str, int] | None = None, boom: bool = False) -> None:
        self.name = name
        self.verdicts = dict(verdicts or {})
        self.scores = dict(score or {})
        self.calls: list[str] = []
        self.boom = boom

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        self.calls.append(node.name)
        if self.boom:
            raise RuntimeError("kaput")
        return self.verdicts.get(node.name, SUCCESS)

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> tuple[int, Status]:
        return self.scores.get(node.name, 0), SUCCESS


def custom(*plugins: Any, weights: Mapping[str, int] | None = None) -> Framework:
    registry = {p.name: (lambda args, handle, p=p: p) for p in plugins}
    profile = Profile(disabled=["*"], enabled=[PluginSpec(p.name, (weights or {}).get(p.name, 1))
                                               for p in plugins])
    return Framework(profile, registry, Handle())


def test_default_profile_is_upstreams_order_and_weights() -> None:
    names = [p.name for p in DEFAULT_PLUGINS]
    assert names.index("NodeUnschedulable") < names.index("TaintToleration") < names.index(
        "NodeResourcesFit") < names.index("InterPodAffinity")
    fwk = framework()
    assert fwk.weights["TaintToleration"] == 3 and fwk.weights["NodeAffinity"] == 2
    assert fwk.weights["PodTopologySpread"] == 2 and fwk.weights["NodeResourcesFit"] == 1


def test_profile_disable_and_enable() -> None:
    profile = Profile(disabled=["NodePorts"], enabled=[PluginSpec("TaintToleration", 7)])
    specs = {p.name: p.weight for p in profile.plugins()}
    assert "NodePorts" not in specs and specs["TaintToleration"] == 7
    with pytest.raises(ValueError, match="not registered"):
        Framework(Profile(enabled=[PluginSpec("Nope")]), in_tree_registry())


def test_filter_stops_at_first_rejection() -> None:
    first = Recorder("First", {"a": Status.unschedulable("nope")})
    second = Recorder("Second")
    fwk = custom(first, second)
    status = fwk.run_filter(CycleState(), PodInfo(pod("p")), NodeInfo(node("a")))
    assert status == Status(Code.UNSCHEDULABLE, ("nope",), "First")
    assert second.calls == []


def test_plugin_exception_becomes_error_status() -> None:
    fwk = custom(Recorder("Broken", boom=True))
    status = fwk.run_filter(CycleState(), PodInfo(pod("p")), NodeInfo(node("a")))
    assert status.code == Code.ERROR and "Broken" in status.message


def test_scores_are_weighted_and_range_checked() -> None:
    a = Recorder("A", score={"x": 10, "y": 50})
    b = Recorder("B", score={"x": 100, "y": 0})
    fwk = custom(a, b, weights={"A": 3, "B": 1})
    nodes = [NodeInfo(node("x")), NodeInfo(node("y"))]
    totals, status = fwk.run_score(CycleState(), PodInfo(pod("p")), nodes)
    assert status.is_success and totals == [130, 150]
    bad = custom(Recorder("Bad", score={"x": 101}))
    _, status = bad.run_score(CycleState(), PodInfo(pod("p")), nodes)
    assert status.code == Code.ERROR and "invalid score 101" in status.message


def test_prefilter_results_intersect() -> None:
    class Narrow:
        def __init__(self, name: str, names: set[str]) -> None:
            self.name, self.names = name, names

        def pre_filter(self, state: CycleState, pod: PodInfo,
                       nodes: Sequence[NodeInfo]) -> tuple[PreFilterResult, Status]:
            return PreFilterResult(frozenset(self.names)), SUCCESS

    fwk = custom(Narrow("A", {"a", "b"}), Narrow("B", {"b", "c"}))
    result, status = fwk.run_pre_filter(CycleState(), PodInfo(pod("p")), [])
    assert status.is_success and result is not None and result.node_names == {"b"}
    fwk = custom(Narrow("A", {"a"}), Narrow("B", {"c"}))
    _, status = fwk.run_pre_filter(CycleState(), PodInfo(pod("p")), [])
    assert status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE


# --- FitError: the words users read -----------------------------------------------------

def test_fit_error_message_is_upstreams() -> None:
    diagnosis = Diagnosis(node_statuses={
        "a": Status.unschedulable("Insufficient cpu"),
        "b": Status.unresolvable("node(s) had untolerated taint {dedicated: gpu}"),
        "c": Status.unresolvable("node(s) had untolerated taint {dedicated: gpu}"),
    }, post_filter_msg="preemption: 0/3 nodes are available: 3 Preemption is not helpful "
                       "for scheduling.")
    fit = FitError(PodInfo(pod("p")), 3, diagnosis)
    assert fit.message == (
        "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint "
        "{dedicated: gpu}. preemption: 0/3 nodes are available: 3 Preemption is not helpful "
        "for scheduling.")


def test_fit_error_counts_every_reason_of_a_node_and_sorts() -> None:
    diagnosis = Diagnosis(node_statuses={
        "a": Status.unschedulable("Insufficient cpu", "Insufficient memory"),
        "b": Status.unschedulable("Insufficient memory"),
    })
    assert FitError(PodInfo(pod("p")), 2, diagnosis).message == (
        "0/2 nodes are available: 1 Insufficient cpu, 2 Insufficient memory.")
    pre = Diagnosis(pre_filter_msg="node(s) didn't satisfy plugin(s) [NodeAffinity] "
                    "simultaneously", node_statuses={"a": Status.unresolvable("x")})
    assert FitError(PodInfo(pod("p")), 1, pre).message == (
        "0/1 nodes are available: node(s) didn't satisfy plugin(s) [NodeAffinity] "
        "simultaneously.")


def test_schedule_reports_fit_error_from_real_plugins() -> None:
    nodes = [NodeInfo(node("a", "1")), NodeInfo(node("b", taints=[GPU_TAINT])),
             NodeInfo(node("c", taints=[GPU_TAINT]))]
    fwk = framework(*nodes)
    result = GenericScheduler().schedule(fwk, CycleState(), PodInfo(pod("p", "2")),
                                         Snapshot(nodes))
    assert result.node == "" and result.fit_error is not None
    assert result.fit_error.message == (
        "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint "
        "{dedicated: gpu}.")
    assert result.fit_error.diagnosis.unschedulable_plugins == {"NodeResourcesFit",
                                                                "TaintToleration"}


def test_no_nodes_is_an_error() -> None:
    result = GenericScheduler().schedule(framework(), CycleState(), PodInfo(pod("p")), Snapshot([]))
    assert result.status.code == Code.ERROR
    assert result.status.message == "no nodes available to schedule pods"


# --- how many nodes, which one -----------------------------------------------------------

@pytest.mark.parametrize(("percentage", "nodes", "expected"), [
    (0, 10, 10), (0, 99, 99), (0, 100, 100), (0, 1000, 420), (0, 5000, 500), (0, 6000, 300),
    (0, 10000, 500), (30, 1000, 300), (10, 500, 100), (100, 1000, 1000),
])
def test_num_feasible_nodes_to_find(percentage: int, nodes: int, expected: int) -> None:
    assert num_feasible_nodes_to_find(percentage, nodes) == expected


def test_search_stops_early_and_rotates_start() -> None:
    nodes = [NodeInfo(node(f"n{i:03}")) for i in range(200)]
    counter = Recorder("Count")
    fwk = custom(counter)
    algo = GenericScheduler(percentage_of_nodes_to_score=50)
    algo.schedule(fwk, CycleState(), PodInfo(pod("p")), Snapshot(nodes))
    assert len(counter.calls) == 100 and counter.calls[0] == "n000"
    counter.calls.clear()
    algo.schedule(fwk, CycleState(), PodInfo(pod("p")), Snapshot(nodes))
    assert counter.calls[0] == "n100"


def test_highest_score_wins_and_ties_are_random() -> None:
    algo = GenericScheduler(rng=random.Random(1))
    assert algo.select_host([10, 30, 20]) == 1
    picks = {algo.select_host([5, 7, 7, 1, 7]) for _ in range(60)}
    assert picks == {1, 2, 4}


def test_scoring_prefers_the_emptier_node() -> None:
    busy = node_info(node("busy"), pod("x", "3", "6Gi"))
    empty = NodeInfo(node("empty"))
    fwk = framework(busy, empty)
    result = GenericScheduler().schedule(fwk, CycleState(), PodInfo(pod("p", "500m", "1Gi")),
                                         Snapshot([busy, empty]))
    assert result.node == "empty" and result.feasible_nodes == 2


def test_nominated_node_is_tried_first() -> None:
    a, b = NodeInfo(node("a")), NodeInfo(node("b"))
    fwk = framework(a, b)
    p = pod("p", "1")
    p["status"]["nominatedNodeName"] = "b"
    result = GenericScheduler().schedule(fwk, CycleState(), PodInfo(p), Snapshot([a, b]))
    assert result.node == "b" and result.evaluated_nodes == 1


def test_nominated_pods_hold_their_room() -> None:
    a = NodeInfo(node("a", "2"))
    fwk = framework(a)
    waiting = PodInfo(pod("w", "1500m", priority=10))
    fwk.handle.nominated_pods = lambda name: [waiting] if name == "a" else []
    low = PodInfo(pod("low", "1", priority=5))
    assert fwk.run_filter_with_nominated_pods(CycleState(), low, a).reasons == ("Insufficient cpu",)
    high = PodInfo(pod("high", "1", priority=20))
    assert fwk.run_filter_with_nominated_pods(CycleState(), high, a).is_success
