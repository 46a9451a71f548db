"""The batched paths agree with the per-node reference: plugins' filter_nodes/score_nodes with
filter/score, the chunked search with a node-by-node one, the cache's columns with columns
built afresh, on random clusters that keep changing."""

from __future__ import annotations

import random
from typing import Any

import pytest
from scheduler_fixtures import node, pod

from pyk8s.scheduler.algorithm import GenericScheduler, num_feasible_nodes_to_find
from pyk8s.scheduler.cache import Cache
from pyk8s.scheduler.columns import NodeBatch, NodeColumns, as_batch
from pyk8s.scheduler.framework import (
    SUCCESS,
    Code,
    CycleState,
    Framework,
    Handle,
    NodeInfo,
    PodInfo,
    Status,
)
from pyk8s.scheduler.plugins import noderesources
from pyk8s.scheduler.plugins.registry import in_tree_registry
from pyk8s.scheduler.settings import PluginSpec, Profile
from pyk8s.scheduler.snapshot import Snapshot

ZONE = "topology.kubernetes.io/zone"
TAINTS = [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
          {"key": "spot", "value": "true", "effect": "PreferNoSchedule"},
          {"key": "old", "effect": "PreferNoSchedule"}]


def random_node(rng: random.Random, i: int) -> dict[str, Any]:
    labels = {ZONE: f"z{rng.randrange(3)}"} if rng.random() < 0.8 else {}
    return node(f"n{i:03}", cpu=rng.choice(["1", "2", "4", "0"]) if rng.random() < 0.1 else "4",
                memory=rng.choice(["2Gi", "8Gi"]), pods=rng.choice([3, 110]), labels=labels,
                taints=rng.sample(TAINTS, rng.randrange(3)) if rng.random() < 0.3 else None,
                unschedulable=rng.random() < 0.1,
                extra={"example.com/gpu": "2"} if rng.random() < 0.2 else None)


def random_pod(rng: random.Random, i: int, node_name: str = "") -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if rng.random() < 0.3:
        spec["tolerations"] = [rng.choice([
            {"key": "dedicated", "operator": "Exists"},
            {"key": "spot", "operator": "Equal", "value": "true", "effect": "PreferNoSchedule"},
            {"operator": "Exists"},
            {"key": "node.kubernetes.io/unschedulable", "operator": "Exists"}])]
    if rng.random() < 0.1:
        spec["topologySpreadConstraints"] = [{
            "maxSkew": 1, "topologyKey": rng.choice([ZONE, "kubernetes.io/hostname"]),
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"app": "a"}}}]
    cpu = rng.choice([None, "100m", "500m", "1", "3"])
    memory = rng.choice([None, "128Mi", "1Gi", "3Gi"])
    extended = {"example.com/gpu": "1"} if rng.random() < 0.1 else None
    return pod(f"p{i}", cpu, memory, node_name=node_name, spec=spec, extended=extended,
               owner=rng.choice(["", "rs1", "rs2"]), labels={"app": rng.choice(["a", "b"])})


def random_cache(rng: random.Random, nodes: int = 40, pods: int = 60) -> Cache:
    cache = Cache()
    for i in range(nodes):
        cache.add_node(random_node(rng, i))
    cache.snapshot()  # from here on the cache keeps it (and its columns) current
    for i in range(pods):
        cache.add_pod(random_pod(rng, 1000 + i, f"n{rng.randrange(nodes):03}"))
    return cache


def churn(rng: random.Random, cache: Cache, rounds: int = 15, nodes: bool = True) -> None:
    """Assume, confirm, delete pods and (if ``nodes``) change nodes, as a busy cluster does."""
    snapshot = cache.snapshot()
    names = [n.name for n in snapshot.node_infos]
    for i in range(rounds):
        roll = rng.random() * (1.0 if nodes else 0.8)
        if roll < 0.4:
            cache.assume_pod(PodInfo(random_pod(rng, 5000 + i)), rng.choice(names))
        elif roll < 0.6:
            cache.add_pod(random_pod(rng, 6000 + i, rng.choice(names)))
        elif roll < 0.8 and cache.pod_count():
            victim = rng.choice(list(cache._pods.values()))
            cache.remove_pod(victim.info.pod)
        else:
            name = rng.choice(names)
            cache.update_node(node(name), random_node(rng, int(name[1:])))


def reference_rejections(plugin: Any, state: CycleState, p: PodInfo,
                         nodes: list[NodeInfo]) -> list[tuple[int, Status]]:
    return [(j, s) for j, n in enumerate(nodes) if (s := plugin.filter(state, p, n)).code]


def framework(snapshot: Snapshot, profile: Profile | None = None) -> Framework:
    return Framework(profile or Profile(), in_tree_registry(), Handle(snapshot=snapshot))


@pytest.mark.parametrize("seed", range(6))
def test_batched_filters_and_scores_agree_with_the_per_node_ones(seed: int) -> None:
    rng = random.Random(seed)
    cache = random_cache(rng)
    profiles = [Profile(), Profile(enabled=[PluginSpec("NodeResourcesFit", 1)], plugin_args={
        "NodeResourcesFit": {"scoringStrategy": {"type": "MostAllocated"}}})]
    for round_ in range(4):
        snapshot = cache.snapshot()
        everything = snapshot.node_infos
        windows = [NodeBatch(snapshot.columns, [range(len(everything))]),
                   NodeBatch(snapshot.columns, [range(25, len(everything)), range(0, 10)]),
                   NodeBatch.of_positions(snapshot.columns, range(0, len(everything), 3)),
                   everything[5:30]]  # a plain list: temporary columns
        for profile in profiles:
            fwk = framework(snapshot, profile)
            for i in range(12):
                p = PodInfo(random_pod(rng, 100 * round_ + i))
                for window in windows:
                    nodes = list(window)
                    state = CycleState()
                    fwk.run_pre_filter(state, p, everything)
                    for plugin in fwk.filter_plugins:
                        if hasattr(plugin, "filter_nodes"):
                            assert plugin.filter_nodes(state, p, window) == \
                                reference_rejections(plugin, state, p, nodes), plugin.name
                    fwk.run_pre_score(state, p, window)
                    for plugin in fwk.score_plugins:
                        if plugin.name in state.skip_score_plugins:
                            continue
                        want = [plugin.score(state, p, n)[0] for n in nodes]
                        if hasattr(plugin, "score_nodes"):
                            assert plugin.score_nodes(state, p, window) == want, plugin.name
                    totals, status = fwk.run_score(state, p, window)
                    assert status.is_success and len(totals) == len(nodes)
        churn(rng, cache)


def test_most_allocated_and_custom_resources_score_as_the_reference() -> None:
    rng = random.Random(3)
    cache = random_cache(rng)
    snapshot = cache.snapshot()
    batch = NodeBatch(snapshot.columns, [range(len(snapshot))])
    for strategy in ("LeastAllocated", "MostAllocated"):
        for resources in (noderesources.DEFAULT_RESOURCES,
                          (("cpu", 3), ("memory", 1), ("example.com/gpu", 2))):
            plugin = noderesources.Fit(strategy, resources)
            for i in range(10):
                p = PodInfo(random_pod(rng, i))
                want = [plugin.score(CycleState(), p, n)[0] for n in snapshot.node_infos]
                assert plugin.score_nodes(CycleState(), p, batch) == want
                churn(rng, cache, 3)


@pytest.mark.parametrize("seed", range(4))
def test_the_cache_keeps_its_snapshot_columns_current(seed: int) -> None:
    rng = random.Random(seed)
    cache = random_cache(rng)
    snapshot = cache.snapshot()
    owners = [("default", "owner-rs1"), ("default", "owner-rs2")]
    for round_ in range(8):
        for owner in owners:  # build the derived columns, so the cache must keep them
            snapshot.columns.owner_counts(owner, lambda o=owner: snapshot.pods_by_owner(o))
            snapshot.pods_by_owner_and_label(owner, ZONE)
        pods_only = round_ % 2 == 0  # then nothing drops the derived columns
        churn(rng, cache, 25, nodes=not pods_only)
        if not pods_only and rng.random() < 0.5:
            cache.add_node(random_node(rng, 900 + rng.randrange(50)))
        assert cache.snapshot() is snapshot
        live, fresh = snapshot.columns, NodeColumns(list(snapshot.node_infos))
        for name in ("alloc_cpu", "alloc_memory", "req_cpu", "req_memory", "free_cpu",
                     "free_memory", "nz_cpu", "nz_memory", "free_pods", "generation",
                     "unschedulable", "tainted"):
            assert getattr(live, name) == getattr(fresh, name), name
        assert live.index == fresh.index
        assert live.label_codes(ZONE) == fresh.label_codes(ZONE)
        batch = NodeBatch(live, [range(len(snapshot))])
        for name in ("free_cpu", "free_memory", "free_pods"):
            assert live.lowest(name, batch) == min(getattr(fresh, name))
        scan = Snapshot(list(snapshot.node_infos))
        for owner in owners:
            if pods_only and owner in live._owners:
                got = live.owner_counts(owner, lambda: {})  # the column the cache kept
            else:
                got = live.owner_counts(owner, lambda o=owner: snapshot.pods_by_owner(o))
            want = fresh.owner_counts(owner, lambda o=owner, s=scan: s.pods_by_owner(o))
            assert got == want
            assert snapshot.pods_by_owner_and_label(owner, ZONE) == \
                scan.pods_by_owner_and_label(owner, ZONE)


def test_remembered_scores_follow_node_changes() -> None:
    cache = Cache()
    for i in range(4):
        cache.add_node(node(f"n{i}", "4", "8Gi"))
    snapshot = cache.snapshot()
    batch = NodeBatch(snapshot.columns, [range(4)])
    plugin = noderesources.Fit()
    incoming = PodInfo(pod("x", "1", "1Gi"))
    assert len(set(plugin.score_nodes(CycleState(), incoming, batch))) == 1
    cache.add_pod(pod("busy", "2", "4Gi", node_name="n2"))
    scores = plugin.score_nodes(CycleState(), incoming, batch)
    assert scores == [plugin.score(CycleState(), incoming, n)[0] for n in snapshot.node_infos]
    assert scores[2] < scores[0]


# --- the search ------------------------------------------------------------------------


class Scripted:
    """Rejects the nodes named in ``verdicts``; records the nodes it was asked about."""

    def __init__(self, name: str, verdicts: dict[str, Status]) -> None:
        self.name = name
        self.verdicts = verdicts

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        return self.verdicts.get(node.name, SUCCESS)

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> tuple[int, Status]:
        return 0, SUCCESS


def reference_search(fwk: Framework, state: CycleState, p: PodInfo, nodes: list[NodeInfo],
                     start: int, percentage: int) -> tuple[list[str], dict[str, Status], int,
                                                          Status | None]:
    """The node-by-node search, as upstream's findNodesThatPassFilters run sequentially."""
    to_find = num_feasible_nodes_to_find(percentage, len(nodes))
    feasible: list[str] = []
    statuses: dict[str, Status] = {}
    processed = 0
    for i in range(len(nodes)):
        n = nodes[(start + i) % len(nodes)]
        status = fwk.run_filter_with_nominated_pods(state, p, n)
        if status.code == Code.ERROR:
            return [], statuses, (start + processed) % len(nodes), status
        processed += 1
        if status.is_success:
            feasible.append(n.name)
            if len(feasible) >= to_find:
                break
        else:
            statuses[n.name] = status
    return feasible, statuses, (start + processed) % len(nodes), None


@pytest.mark.parametrize("seed", range(8))
def test_the_chunked_search_visits_and_reports_as_a_node_by_node_one(seed: int) -> None:
    rng = random.Random(seed)
    size = rng.choice([37, 150, 260])
    nodes = [NodeInfo(node(f"n{i:03}")) for i in range(size)]
    rejected = rng.random()
    verdicts = {n.name: rng.choice([Status.unschedulable("nope"), Status.unresolvable("never")])
                for n in nodes if rng.random() < rejected}
    if seed % 4 == 3:
        verdicts[rng.choice(nodes).name] = Status.error("broken")
    plugin = Scripted("Scripted", verdicts)
    profile = Profile(disabled=["*"], enabled=[PluginSpec("Scripted")])
    snapshot = Snapshot(nodes)
    fwk = Framework(profile, {"Scripted": lambda args, handle: plugin}, Handle(snapshot=snapshot))
    percentage = rng.choice([0, 10, 30, 50, 100])
    algo = GenericScheduler(percentage)
    for _ in range(5):
        start = algo.next_start_node_index
        want = reference_search(fwk, CycleState(), PodInfo(pod("p")), nodes, start, percentage)
        feasible, diagnosis, status = algo.find_nodes_that_fit(
            fwk, CycleState(), PodInfo(pod("p")), snapshot)
        if want[3] is not None:
            assert status.code == Code.ERROR and algo.next_start_node_index == want[2]
            continue
        assert [n.name for n in feasible] == want[0]
        assert diagnosis.node_statuses == {k: v.with_plugin("Scripted")
                                           for k, v in want[1].items()}
        assert algo.next_start_node_index == want[2]


def test_nominated_pods_are_counted_in_the_batched_search() -> None:
    a, b = NodeInfo(node("a", "2")), NodeInfo(node("b", "2"))
    snapshot = Snapshot([a, b])
    fwk = framework(snapshot)
    waiting = PodInfo(pod("w", "1500m", priority=10))
    fwk.handle.nominated_pods = lambda name: [waiting] if name == "a" else []
    fwk.handle.nominated_nodes = lambda: {"a"}
    feasible, diagnosis, _ = GenericScheduler().find_nodes_that_fit(
        fwk, CycleState(), PodInfo(pod("low", "1", priority=5)), snapshot)
    assert [n.name for n in feasible] == ["b"]
    assert diagnosis.node_statuses["a"].reasons == ("Insufficient cpu",)


def test_without_score_plugins_the_first_feasible_node_is_enough() -> None:
    nodes = [NodeInfo(node(f"n{i:03}")) for i in range(300)]
    profile = Profile(disabled=["*"], enabled=[PluginSpec("NodeResourcesFit")],
                      plugin_args={})
    fwk = framework(Snapshot(nodes), profile)
    fwk.score_plugins = []  # Fit also scores; keep only its filter
    algo = GenericScheduler()
    feasible, _, _ = algo.find_nodes_that_fit(fwk, CycleState(), PodInfo(pod("p")),
                                              Snapshot(nodes))
    assert len(feasible) == 1 and algo.next_start_node_index == 1


def test_a_batch_is_a_sequence_of_its_nodes() -> None:
    nodes = [NodeInfo(node(f"n{i}")) for i in range(10)]
    columns = NodeColumns(nodes)
    batch = NodeBatch.of_positions(columns, [7, 8, 9, 0, 1, 4])
    assert batch.runs == [range(7, 10), range(0, 2), range(4, 5)]
    assert [n.name for n in batch] == ["n7", "n8", "n9", "n0", "n1", "n4"]
    assert batch[3].name == "n0" and len(batch) == 6
    assert list(batch.take(columns.free_pods)) == [110] * 6
    assert [n.name for n in batch.without([0, 5])] == ["n8", "n9", "n0", "n1"]
    assert [n.name for n in batch.subset([1, 2])] == ["n8", "n9"]
    assert as_batch(batch) is batch and [n.name for n in as_batch(nodes[:2])] == ["n0", "n1"]


def test_batched_scores_of_other_plugins_are_still_range_checked() -> None:
    class Wild:
        name = "Wild"

        def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> tuple[int, Status]:
            return 150, SUCCESS

        def score_nodes(self, state: CycleState, pod: PodInfo, nodes: Any) -> list[int]:
            return [150] * len(nodes)

    profile = Profile(disabled=["*"], enabled=[PluginSpec("Wild")])
    fwk = Framework(profile, {"Wild": lambda args, handle: Wild()})
    _, status = fwk.run_score(CycleState(), PodInfo(pod("p")), [NodeInfo(node("a"))])
    assert status.code == Code.ERROR and "invalid score 150" in status.message
