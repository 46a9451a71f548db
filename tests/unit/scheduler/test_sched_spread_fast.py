"""PodTopologySpread's shortcuts for a controller's pods (the system-default constraints)
agree with the straightforward computation: the final weighted score by lookup per count
(``weighted_scores``), the runner's use of it, the constraints kept per controller; and
select_host's pick among many ties is the one-by-one pick."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from scheduler_fixtures import node, pod

from pyk8s.scheduler.algorithm import GenericScheduler
from pyk8s.scheduler.cache import Cache
from pyk8s.scheduler.columns import NodeBatch
from pyk8s.scheduler.framework import MAX_NODE_SCORE, CycleState, Framework, Handle, PodInfo
from pyk8s.scheduler.nodeinfo import NodeInfo
from pyk8s.scheduler.plugins.registry import in_tree_registry
from pyk8s.scheduler.settings import Profile

HOSTNAME = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"
OWNERS = ["rs1", "rs2", "rs3"]
NAMESPACES = ["default", "default", "other"]


def cluster(rng: random.Random, nodes: int, zoned: float, hostless: float) -> Cache:
    """Nodes with a zone label (share ``zoned``), some without a hostname; pods of several
    controllers in several namespaces, bare pods, terminating ones, assumed ones."""
    cache = Cache()
    for i in range(nodes):
        n = node(f"n{i:03}", labels={ZONE: f"z{rng.randrange(3)}"} if rng.random() < zoned
                 else {"app-tier": rng.choice(["a", "b"])})
        if rng.random() < hostless:
            del n["metadata"]["labels"][HOSTNAME]
        cache.add_node(n)
    cache.snapshot()
    names = [f"n{i:03}" for i in range(nodes)]
    for i in range(nodes * 3):
        p = pod(f"p{i}", "100m", owner=rng.choice(["", *OWNERS]),
                namespace=rng.choice(NAMESPACES), labels={"app": rng.choice(["a", "b"])},
                node_name=rng.choice(names))
        if rng.random() < 0.1:
            p["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        if rng.random() < 0.2:
            cache.assume_pod(PodInfo(p), p["spec"]["nodeName"])
        else:
            cache.add_pod(p)
    return cache


def straightforward(snapshot_nodes: list[NodeInfo], scored: list[NodeInfo], incoming: PodInfo,
                    weight: int) -> list[int]:
    """Upstream's system-default spreading of ``incoming`` over ``scored``, by counting pods."""
    owner = (incoming.namespace, incoming.controller_uid)

    def matching(n: NodeInfo) -> int:
        return sum(1 for p in n.pods.values()
                   if not p.terminating and (p.namespace, p.controller_uid) == owner)

    zones = {n.labels[ZONE] for n in scored if ZONE in n.labels}
    per_zone: dict[str, int] = {}
    for n in snapshot_nodes:
        if n.labels.get(ZONE) in zones:
            per_zone[n.labels[ZONE]] = per_zone.get(n.labels[ZONE], 0) + matching(n)
    raw = []
    for n in scored:
        total = 0.0
        if HOSTNAME in n.labels:  # hostname: maxSkew 3, one domain per scored node
            total += matching(n) * math.log(len(scored) + 2) + 2
        if ZONE in n.labels:  # zone: maxSkew 5
            total += per_zone[n.labels[ZONE]] * math.log(len(zones) + 2) + 4
        raw.append(round(total))
    highest, lowest = max(raw), min(raw)
    if highest == 0:
        return [MAX_NODE_SCORE * weight] * len(raw)
    return [MAX_NODE_SCORE * (highest + lowest - r) // highest * weight for r in raw]


def windows(cache: Cache, rng: random.Random) -> list[NodeBatch]:
    columns = cache.snapshot().columns
    size = len(columns)
    return [NodeBatch(columns, [range(size)]),
            NodeBatch(columns, [range(size // 3, size), range(0, 5)]),
            NodeBatch.of_positions(columns, sorted(rng.sample(range(size), size // 2)))]


def incoming_pods(rng: random.Random) -> list[PodInfo]:
    return [PodInfo(pod(f"new{i}", "100m", owner=owner, namespace=namespace))
            for i, (owner, namespace) in enumerate(
                [(o, ns) for o in OWNERS for ns in ("default", "other")]
                + [("never-seen", "default")])]


@pytest.mark.parametrize(("seed", "zoned", "hostless", "taken"), [
    (1, 0.0, 0.0, True),  # hollow nodes: hostname only, the shortcut applies
    (2, 0.0, 0.0, True),
    (3, 0.5, 0.0, False),  # zones on scored nodes: the usual way
    (4, 0.0, 0.1, False),  # a node without hostname: the usual way
])
def test_weighted_scores_match_the_straightforward_computation(
        seed: int, zoned: float, hostless: float, taken: bool) -> None:
    rng = random.Random(seed)
    cache = cluster(rng, 60, zoned, hostless)
    for round_ in range(3):
        snapshot = cache.snapshot()
        fwk = Framework(Profile(), in_tree_registry(), Handle(snapshot=snapshot))
        plugin = fwk.plugins["PodTopologySpread"]
        for batch in windows(cache, rng):
            for incoming in incoming_pods(rng):
                state = CycleState()
                assert plugin.pre_score(state, incoming, batch).is_success
                for weight in (1, 2):
                    want = straightforward(snapshot.node_infos, list(batch), incoming, weight)
                    got = plugin.weighted_scores(state, incoming, batch, weight)
                    assert (got is not None) == taken
                    if got is not None:
                        assert got == want, (seed, round_, incoming.key)
                    # the usual way agrees too
                    usual = plugin.score_nodes(state, incoming, batch)
                    plugin.normalize_score(state, incoming, batch, usual)
                    assert [s * weight for s in usual] == want
        # move pods around, then again (the cache's counters follow)
        for uid in rng.sample(sorted(cache._pods), 20):
            cache.remove_pod(cache._pods[uid].info.pod)
        for i in range(20):
            target = rng.choice(snapshot.node_infos).name
            cache.add_pod(pod(f"q{round_}-{i}", "100m", owner=rng.choice(OWNERS),
                              namespace=rng.choice(NAMESPACES), node_name=target))


def test_weighted_scores_follow_node_label_changes() -> None:
    rng = random.Random(5)
    cache = cluster(rng, 30, 0.0, 0.0)
    incoming = PodInfo(pod("new", owner="rs1"))
    fwk = Framework(Profile(), in_tree_registry(), Handle(snapshot=cache.snapshot()))
    plugin = fwk.plugins["PodTopologySpread"]
    batch = NodeBatch(cache.snapshot().columns, [range(30)])
    state = CycleState()
    plugin.pre_score(state, incoming, batch)
    assert plugin.weighted_scores(state, incoming, batch, 2) is not None
    # one node loses its hostname: no more shortcut; another gets a zone: neither
    first = cache.snapshot().node_infos[0].node
    assert first is not None
    bare = {**first, "metadata": {**first["metadata"], "labels": {}}}
    cache.update_node(first, bare)
    state = CycleState()
    plugin.pre_score(state, incoming, batch)
    assert plugin.weighted_scores(state, incoming, batch, 2) is None
    cache.update_node(bare, first)
    state = CycleState()
    plugin.pre_score(state, incoming, batch)
    assert plugin.weighted_scores(state, incoming, batch, 2) is not None


@pytest.mark.parametrize("seed", range(3))
def test_run_score_with_and_without_the_shortcut_agree(seed: int) -> None:
    rng = random.Random(seed)
    cache = cluster(rng, 50, 0.0 if seed < 2 else 0.3, 0.0)
    snapshot = cache.snapshot()
    fast = Framework(Profile(), in_tree_registry(), Handle(snapshot=snapshot))
    slow = Framework(Profile(), in_tree_registry(), Handle(snapshot=snapshot))
    slow.weighted = set()
    assert "PodTopologySpread" in fast.weighted
    for batch in windows(cache, rng):
        for incoming in incoming_pods(rng):
            totals = []
            for fwk in (fast, slow):
                state = CycleState()
                assert fwk.run_pre_score(state, incoming, batch).is_success
                got, status = fwk.run_score(state, incoming, batch)
                assert status.is_success
                totals.append(got)
                relative, offset, status = fwk.run_score_relative(state, incoming, batch)
                assert status.is_success and [t + offset for t in relative] == got
            assert totals[0] == totals[1]


def test_system_defaults_are_made_once_per_controller() -> None:
    fwk = Framework(Profile(), in_tree_registry(), Handle())
    plugin = fwk.plugins["PodTopologySpread"]
    a = plugin._constraints(PodInfo(pod("a", owner="rs1")))
    b = plugin._constraints(PodInfo(pod("b", owner="rs1")))
    assert a is b and [(c.topology_key, c.max_skew, c.hard) for c in a] == [
        (HOSTNAME, 3, False), (ZONE, 5, False)]
    other_ns = plugin._constraints(PodInfo(pod("c", owner="rs1", namespace="other")))
    assert other_ns is not a
    same = PodInfo(pod("d", owner="rs1"))
    assert a[0].matches(same) and not other_ns[0].matches(same)
    explicit = {"topologySpreadConstraints": [{
        "maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app": "web"}}}]}
    mine = plugin._constraints(PodInfo(pod("e", owner="rs1", spec=explicit)))
    assert len(mine) == 1 and mine[0].owner is None and mine[0].hard
    assert plugin._constraints(PodInfo(pod("f"))) == []


def reference_pick(totals: list[int], rng: random.Random) -> int:
    best = max(totals)
    ties = [i for i, t in enumerate(totals) if t == best]
    return ties[rng.randrange(len(ties))] if len(ties) > 1 else ties[0]


@pytest.mark.parametrize("distinct", [1, 2, 3, 50])
def test_select_host_picks_as_the_one_by_one_scan(distinct: int) -> None:
    data = random.Random(distinct)
    for trial in range(40):
        totals: list[Any] = [data.randrange(distinct) for _ in range(data.randrange(1, 400))]
        algo = GenericScheduler(rng=random.Random(trial))
        assert algo.select_host(totals) == reference_pick(totals, random.Random(trial))


def test_weighted_scores_with_crowded_nodes() -> None:
    """Counts beyond a small table (a node with hundreds of one controller's pods)."""
    cache = Cache()
    for i in range(6):
        cache.add_node(node(f"n{i}", cpu="1000", memory="1000Gi", pods=1000))
    cache.snapshot()
    for i, crowd in enumerate([300, 0, 257, 5, 300, 1]):
        for j in range(crowd):
            cache.add_pod(pod(f"p{i}-{j}", owner="rs1", node_name=f"n{i}"))
    snapshot = cache.snapshot()
    fwk = Framework(Profile(), in_tree_registry(), Handle(snapshot=snapshot))
    plugin = fwk.plugins["PodTopologySpread"]
    incoming = PodInfo(pod("new", owner="rs1"))
    for batch in (NodeBatch(snapshot.columns, [range(6)]),
                  NodeBatch(snapshot.columns, [range(0, 1), range(2, 3), range(4, 5)])):
        state = CycleState()
        plugin.pre_score(state, incoming, batch)
        assert plugin.weighted_scores(state, incoming, batch, 2) == \
            straightforward(snapshot.node_infos, list(batch), incoming, 2)
