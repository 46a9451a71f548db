"""Each plugin on plain dicts: what it admits, what it rejects, and the words it uses."""

from __future__ import annotations

from typing import Any

from scheduler_fixtures import framework, node, node_info, pod, run_filter

from pyk8s.scheduler.framework import Code, CycleState, Framework, Status
from pyk8s.scheduler.nodeinfo import NodeInfo, PodInfo
from pyk8s.scheduler.plugins import (
    balancedallocation,
    interpodaffinity,
    nodeaffinity,
    nodename,
    nodeports,
    noderesources,
    nodeunschedulable,
    podtopologyspread,
    tainttoleration,
)
from pyk8s.scheduler.settings import PluginSpec, Profile


def only(*names: str) -> Profile:
    return Profile(disabled=["*"], enabled=[PluginSpec(n, 1) for n in names])


def scores(plugin: Any, p: dict, *infos: NodeInfo) -> dict[str, int]:
    state = CycleState()
    pi = PodInfo(p)
    if hasattr(plugin, "pre_score"):
        status = plugin.pre_score(state, pi, list(infos))
        if status.is_skip:
            return {}
    raw = [plugin.score(state, pi, i)[0] for i in infos]
    if hasattr(plugin, "score_nodes"):
        assert plugin.score_nodes(state, pi, list(infos)) == raw
    if hasattr(plugin, "normalize_score"):
        plugin.normalize_score(state, pi, list(infos), raw)
    return {i.name: value for i, value in zip(infos, raw, strict=True)}


# --- NodeName, NodeUnschedulable -------------------------------------------------------

def test_node_name() -> None:
    plugin = nodename.new({}, None)  # type: ignore[arg-type]
    p = PodInfo(pod("p", spec={"nodeName": "a"}))
    assert plugin.filter(CycleState(), p, NodeInfo(node("a"))).is_success
    status = plugin.filter(CycleState(), p, NodeInfo(node("b")))
    assert status == Status.unresolvable("node(s) didn't match the requested node name")


def test_cordoned_node_rejects_unless_tolerated() -> None:
    plugin = nodeunschedulable.NodeUnschedulable()
    cordoned = NodeInfo(node("a", unschedulable=True))
    status = plugin.filter(CycleState(), PodInfo(pod("p")), cordoned)
    assert status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert status.reasons == ("node(s) were unschedulable",)
    tolerant = pod("p", spec={"tolerations": [{"key": "node.kubernetes.io/unschedulable",
                                               "operator": "Exists", "effect": "NoSchedule"}]})
    assert plugin.filter(CycleState(), PodInfo(tolerant), cordoned).is_success


# --- TaintToleration -------------------------------------------------------------------

GPU_TAINT = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}


def test_untolerated_taint_named_in_reason() -> None:
    plugin = tainttoleration.TaintToleration()
    status = plugin.filter(CycleState(), PodInfo(pod("p")), NodeInfo(node("a", taints=[GPU_TAINT])))
    assert status == Status.unresolvable("node(s) had untolerated taint {dedicated: gpu}")
    cp = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
    status = plugin.filter(CycleState(), PodInfo(pod("p")), NodeInfo(node("a", taints=[cp])))
    assert status.reasons == ("node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }",)


def test_tolerations_equal_exists_and_wildcards() -> None:
    plugin = tainttoleration.TaintToleration()
    tainted = NodeInfo(node("a", taints=[GPU_TAINT, {"key": "x", "effect": "NoExecute"}]))
    cases = [
        ([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
          {"key": "x", "operator": "Exists"}], True),
        ([{"key": "dedicated", "value": "cpu"}, {"key": "x", "operator": "Exists"}], False),
        ([{"operator": "Exists"}], True),
        ([{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"},
          {"key": "x", "operator": "Exists"}], False),
    ]
    for tolerations, ok in cases:
        p = PodInfo(pod("p", spec={"tolerations": tolerations}))
        assert plugin.filter(CycleState(), p, tainted).is_success is ok, tolerations


def test_prefer_no_schedule_only_scores() -> None:
    plugin = tainttoleration.TaintToleration()
    soft = {"key": "k", "value": "v", "effect": "PreferNoSchedule"}
    a, b = NodeInfo(node("a")), NodeInfo(node("b", taints=[soft]))
    assert plugin.filter(CycleState(), PodInfo(pod("p")), b).is_success
    assert scores(plugin, pod("p"), a, b) == {"a": 100, "b": 0}
    tolerant = pod("p", spec={"tolerations": [{"key": "k", "operator": "Exists"}]})
    assert scores(plugin, tolerant, a, b) == {"a": 100, "b": 100}


# --- NodeAffinity ----------------------------------------------------------------------

def _affinity(*terms: dict, preferred: list | None = None) -> dict:
    na: dict = {}
    if terms:
        na["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": list(terms)}
    if preferred:
        na["preferredDuringSchedulingIgnoredDuringExecution"] = preferred
    return {"affinity": {"nodeAffinity": na}}


def test_node_selector() -> None:
    fwk = framework(profile=only("NodeAffinity"))
    p = pod("p", spec={"nodeSelector": {"disk": "ssd"}})
    assert run_filter(fwk, p, NodeInfo(node("a", labels={"disk": "ssd"}))).is_success
    status = run_filter(fwk, p, NodeInfo(node("b", labels={"disk": "hdd"})))
    assert status.reasons == ("node(s) didn't match Pod's node affinity/selector",)
    assert status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE


def test_required_node_affinity_operators() -> None:
    fwk = framework(profile=only("NodeAffinity"))
    n = NodeInfo(node("a", labels={"zone": "z1", "gen": "5"}))

    def fits(*exprs: dict, fields: list | None = None) -> bool:
        term: dict = {"matchExpressions": list(exprs)}
        if fields:
            term["matchFields"] = fields
        return run_filter(fwk, pod("p", spec=_affinity(term)), n).is_success

    assert fits({"key": "zone", "operator": "In", "values": ["z1", "z2"]})
    assert not fits({"key": "zone", "operator": "NotIn", "values": ["z1"]})
    assert fits({"key": "other", "operator": "NotIn", "values": ["z1"]})
    assert fits({"key": "zone", "operator": "Exists"})
    assert not fits({"key": "zone", "operator": "DoesNotExist"})
    assert fits({"key": "gen", "operator": "Gt", "values": ["4"]})
    assert not fits({"key": "gen", "operator": "Lt", "values": ["5"]})
    assert not fits({"key": "zone", "operator": "Gt", "values": ["1"]})  # not an integer
    assert fits(fields=[{"key": "metadata.name", "operator": "In", "values": ["a"]}])
    assert not fits(fields=[{"key": "metadata.name", "operator": "NotIn", "values": ["a"]}])
    # terms are ORed; an empty term matches nothing
    p = pod("p", spec=_affinity({}, {"matchExpressions": [{"key": "zone", "operator": "Exists"}]}))
    assert run_filter(fwk, p, n).is_success
    assert not run_filter(fwk, pod("p", spec=_affinity({})), n).is_success


def test_match_fields_prefilter_narrows_nodes() -> None:
    fwk = framework(profile=only("NodeAffinity"))
    term = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]}
    result, status = fwk.run_pre_filter(CycleState(), PodInfo(pod("p", spec=_affinity(term))), [])
    assert status.is_success and result is not None and result.node_names == {"b"}


def test_preferred_node_affinity_scores() -> None:
    plugin = nodeaffinity.NodeAffinity()
    pref = [{"weight": 20, "preference": {"matchExpressions": [
        {"key": "zone", "operator": "In", "values": ["z1"]}]}},
        {"weight": 80, "preference": {"matchExpressions": [
            {"key": "disk", "operator": "In", "values": ["ssd"]}]}}]
    p = pod("p", spec=_affinity(preferred=pref))
    a = NodeInfo(node("a", labels={"zone": "z1"}))
    b = NodeInfo(node("b", labels={"disk": "ssd"}))
    c = NodeInfo(node("c"))
    assert scores(plugin, p, a, b, c) == {"a": 25, "b": 100, "c": 0}


# --- NodeResourcesFit, BalancedAllocation ------------------------------------------------

def test_fit_reports_every_shortage() -> None:
    plugin = noderesources.Fit()
    full = node_info(node("a", "2", "2Gi", pods=2), pod("x", "1500m", "1Gi"),
                     pod("y", "100m", "512Mi"))
    status = plugin.filter(CycleState(), PodInfo(pod("p", "1", "1Gi")), full)
    assert status == Status.unschedulable("Too many pods", "Insufficient cpu", "Insufficient memory")


def test_fit_exact_fit_and_zero_request() -> None:
    plugin = noderesources.Fit()
    n = node_info(node("a", "2", "2Gi"), pod("x", "1", "1Gi"))
    assert plugin.filter(CycleState(), PodInfo(pod("p", "1", "1Gi")), n).is_success
    assert plugin.filter(CycleState(), PodInfo(pod("p", "1001m")), n).code == Code.UNSCHEDULABLE
    assert plugin.filter(CycleState(), PodInfo(pod("p")), n).is_success


def test_fit_larger_than_node_is_unresolvable() -> None:
    plugin = noderesources.Fit()
    status = plugin.filter(CycleState(), PodInfo(pod("p", "8")), NodeInfo(node("a", "4")))
    assert status == Status.unresolvable("Insufficient cpu")


def test_fit_extended_and_ephemeral_storage() -> None:
    plugin = noderesources.Fit()
    gpu_node = NodeInfo(node("a", extra={"example.com/gpu": "2"}))
    assert plugin.filter(CycleState(), PodInfo(pod("p", extended={"example.com/gpu": "2"})), gpu_node).is_success
    status = plugin.filter(CycleState(), PodInfo(pod("p", extended={"example.com/gpu": "1"})), NodeInfo(node("b")))
    assert status.reasons == ("Insufficient example.com/gpu",)
    eph = pod("p", spec={"containers": [{"name": "c", "resources": {"requests": {
        "ephemeral-storage": "200Gi"}}}]})
    assert plugin.filter(CycleState(), PodInfo(eph), gpu_node).reasons == (
        "Insufficient ephemeral-storage",)


def test_fit_counts_init_container_peak_and_overhead() -> None:
    plugin = noderesources.Fit()
    p = pod("p", "500m", spec={"initContainers": [{"name": "i", "resources": {"requests": {
        "cpu": "3"}}}], "overhead": {"cpu": "200m"}})
    assert plugin.filter(CycleState(), PodInfo(p), NodeInfo(node("a", "3200m"))).is_success
    assert not plugin.filter(CycleState(), PodInfo(p), NodeInfo(node("a", "3199m"))).is_success


def test_least_allocated_prefers_emptier_nodes() -> None:
    plugin = noderesources.Fit()
    empty = NodeInfo(node("empty", "4", "8Gi"))
    busy = node_info(node("busy", "4", "8Gi"), pod("x", "3", "6Gi"))
    got = scores(plugin, pod("p", "1", "2Gi"), empty, busy)
    # empty: cpu (4-1)/4=75, mem (8-2)/8=75; busy: cpu 0, mem 0
    assert got == {"empty": 75, "busy": 0}


def test_most_allocated_packs() -> None:
    plugin = noderesources.new({"scoringStrategy": {"type": "MostAllocated"}}, None)  # type: ignore[arg-type]
    empty = NodeInfo(node("empty", "4", "8Gi"))
    busy = node_info(node("busy", "4", "8Gi"), pod("x", "2", "4Gi"))
    got = scores(plugin, pod("p", "1", "2Gi"), empty, busy)
    assert got["busy"] > got["empty"]


def test_balanced_allocation() -> None:
    plugin = balancedallocation.BalancedAllocation()
    n = NodeInfo(node("a", "4", "4Gi"))
    assert scores(plugin, pod("p", "2", "2Gi"), n) == {"a": 100}
    assert scores(plugin, pod("p", "4", "0"), n) == {"a": 50}
    assert scores(plugin, pod("p"), n) == {}  # requests nothing: skipped


# --- NodePorts -------------------------------------------------------------------------

def _ports(*ports: dict) -> dict:
    return {"containers": [{"name": "c", "ports": list(ports)}]}


def test_host_port_conflicts() -> None:
    fwk = framework(profile=only("NodePorts"))
    holder = pod("h", spec=_ports({"containerPort": 80, "hostPort": 8080}))
    n = node_info(node("a"), holder)
    same = pod("p", spec=_ports({"containerPort": 80, "hostPort": 8080}))
    status = run_filter(fwk, same, n)
    assert status == Status.unschedulable(
        "node(s) didn't have free ports for the requested pod ports").with_plugin("NodePorts")
    udp = pod("p", spec=_ports({"containerPort": 80, "hostPort": 8080, "protocol": "UDP"}))
    assert run_filter(fwk, udp, n).is_success
    other = pod("p", spec=_ports({"containerPort": 80, "hostPort": 8081}))
    assert run_filter(fwk, other, n).is_success
    # specific addresses conflict only with the same address or the wildcard
    n2 = node_info(node("b"), pod("h", spec=_ports({"containerPort": 1, "hostPort": 9,
                                                     "hostIP": "10.0.0.1"})))
    ip2 = pod("p", spec=_ports({"containerPort": 1, "hostPort": 9, "hostIP": "10.0.0.2"}))
    assert run_filter(fwk, ip2, n2).is_success
    assert not run_filter(fwk, pod("p", spec=_ports({"containerPort": 1, "hostPort": 9})), n2).is_success


def test_ports_freed_when_pod_removed() -> None:
    plugin = nodeports.NodePorts()
    holder = pod("h", spec=_ports({"containerPort": 80, "hostPort": 8080}))
    n = node_info(node("a"), holder)
    n.remove_pod(PodInfo(holder).uid)
    same = PodInfo(pod("p", spec=_ports({"containerPort": 80, "hostPort": 8080})))
    assert plugin.filter(CycleState(), same, n).is_success


# --- PodTopologySpread -----------------------------------------------------------------

def _spread(key: str, skew: int = 1, when: str = "DoNotSchedule", **extra: Any) -> dict:
    return {"topologySpreadConstraints": [{"maxSkew": skew, "topologyKey": key,
                                           "whenUnsatisfiable": when,
                                           "labelSelector": {"matchLabels": {"app": "web"}},
                                           **extra}]}


def test_spread_filter_by_zone() -> None:
    web = {"app": "web"}
    a = node_info(node("a", labels={"zone": "z1"}), pod("w1", labels=web), pod("w2", labels=web))
    b = node_info(node("b", labels={"zone": "z2"}), pod("w3", labels=web))
    c = NodeInfo(node("c"))  # no zone label
    fwk = framework(a, b, c, profile=only("PodTopologySpread"))
    p = pod("p", labels=web, spec=_spread("zone"))
    assert run_filter(fwk, p, b).is_success
    status = run_filter(fwk, p, a)
    assert status.reasons == ("node(s) didn't match pod topology spread constraints",)
    assert status.code == Code.UNSCHEDULABLE
    status = run_filter(fwk, p, c)
    assert status == Status.unresolvable(
        "node(s) didn't match pod topology spread constraints (missing required label)"
    ).with_plugin("PodTopologySpread")


def test_spread_ignores_other_namespaces_and_unmatched_pods() -> None:
    web = {"app": "web"}
    a = node_info(node("a", labels={"zone": "z1"}), pod("w1", labels=web, namespace="other"),
                  pod("x", labels={"app": "db"}))
    b = NodeInfo(node("b", labels={"zone": "z2"}))
    fwk = framework(a, b, profile=only("PodTopologySpread"))
    assert run_filter(fwk, pod("p", labels=web, spec=_spread("zone")), a).is_success


def test_spread_min_domains() -> None:
    web = {"app": "web"}
    a = node_info(node("a", labels={"zone": "z1"}), pod("w1", labels=web))
    fwk = framework(a, profile=only("PodTopologySpread"))
    assert run_filter(fwk, pod("p", labels=web, spec=_spread("zone")), a).is_success
    p = pod("p", labels=web, spec=_spread("zone", minDomains=2))
    assert not run_filter(fwk, p, a).is_success


def test_spread_soft_constraint_scores_emptier_domain() -> None:
    web = {"app": "web"}
    a = node_info(node("a", labels={"zone": "z1"}), pod("w1", labels=web), pod("w2", labels=web))
    b = NodeInfo(node("b", labels={"zone": "z2"}))
    fwk = framework(a, b)
    plugin = fwk.plugins["PodTopologySpread"]
    got = scores(plugin, pod("p", labels=web, spec=_spread("zone", when="ScheduleAnyway")), a, b)
    assert got["b"] == 100 and got["a"] < got["b"]


def test_system_default_spreads_one_owners_pods() -> None:
    a = node_info(node("a"), pod("r1", owner="rs"), pod("r2", owner="rs"))
    b = node_info(node("b"), pod("x1", owner="other"), pod("x2", owner="other"))
    fwk = framework(a, b)
    got = scores(fwk.plugins["PodTopologySpread"], pod("p", owner="rs"), a, b)
    assert got["b"] > got["a"]
    assert scores(fwk.plugins["PodTopologySpread"], pod("p"), a, b) == {}  # no owner, no spread
    assert isinstance(fwk.plugins["PodTopologySpread"], podtopologyspread.PodTopologySpread)


def test_system_default_spread_reads_the_caches_controller_index_as_a_scan_would() -> None:
    import random

    from pyk8s.scheduler.cache import Cache
    from pyk8s.scheduler.framework import Handle
    from pyk8s.scheduler.plugins.registry import in_tree_registry
    from pyk8s.scheduler.snapshot import Snapshot

    rng = random.Random(7)
    cache = Cache()
    names = [f"n{i}" for i in range(12)]
    for i, name in enumerate(names):
        cache.add_node(node(name, labels={"topology.kubernetes.io/zone": f"z{i % 3}"}
                            if i % 4 else {}))
    for i in range(60):
        deleting = {"deletionTimestamp": "2026-01-01T00:00:00Z"} if i % 9 == 0 else {}
        p = pod(f"p{i}", owner=rng.choice(["rs", "rs", "other"]), node_name=rng.choice(names),
                namespace=rng.choice(["default", "default", "ns2"]))
        p["metadata"].update(deleting)
        cache.add_pod(p)
    infos = cache.snapshot().node_infos
    feasible = infos[1:10]
    selector = {"nodeSelector": {"topology.kubernetes.io/zone": "z1"}}
    for incoming in (pod("x", owner="rs"), pod("y", owner="rs", spec=selector),
                     pod("z", owner="other", namespace="ns2")):
        indexed = Framework(Profile(), in_tree_registry(), Handle(snapshot=cache.snapshot()))
        scanned = Framework(Profile(), in_tree_registry(), Handle(snapshot=Snapshot([])))
        want = scores(scanned.plugins["PodTopologySpread"], incoming, *infos)
        assert len(set(want.values())) > 2  # the counts differ from node to node
        assert scores(indexed.plugins["PodTopologySpread"], incoming, *infos) == want
        scanned_feasible = scores(
            Framework(Profile(), in_tree_registry(), Handle(snapshot=Snapshot(list(infos))))
            .plugins["PodTopologySpread"], incoming, *feasible)
        assert scores(indexed.plugins["PodTopologySpread"], incoming, *feasible) == \
            scanned_feasible


# --- InterPodAffinity ------------------------------------------------------------------

def _term(labels: dict, key: str = "zone", **extra: Any) -> dict:
    return {"labelSelector": {"matchLabels": labels}, "topologyKey": key, **extra}


def _pod_affinity(kind: str, *terms: dict) -> dict:
    return {"affinity": {kind: {"requiredDuringSchedulingIgnoredDuringExecution": list(terms)}}}


def test_required_affinity_follows_the_selected_pods_zone() -> None:
    a = node_info(node("a", labels={"zone": "z1"}), pod("db", labels={"app": "db"}))
    b = NodeInfo(node("b", labels={"zone": "z1"}))
    c = NodeInfo(node("c", labels={"zone": "z2"}))
    fwk = framework(a, b, c, profile=only("InterPodAffinity"))
    p = pod("p", spec=_pod_affinity("podAffinity", _term({"app": "db"})))
    assert run_filter(fwk, p, b).is_success
    status = run_filter(fwk, p, c)
    assert status == Status.unresolvable("node(s) didn't match pod affinity rules").with_plugin(
        "InterPodAffinity")


def test_first_pod_of_self_affine_group_goes_anywhere() -> None:
    a = NodeInfo(node("a", labels={"zone": "z1"}))
    fwk = framework(a, profile=only("InterPodAffinity"))
    p = pod("p", labels={"app": "web"}, spec=_pod_affinity("podAffinity", _term({"app": "web"})))
    assert run_filter(fwk, p, a).is_success
    other = pod("q", spec=_pod_affinity("podAffinity", _term({"app": "web"})))
    assert not run_filter(fwk, other, a).is_success


def test_required_anti_affinity_both_directions() -> None:
    web = {"app": "web"}
    a = node_info(node("a"), pod("w1", labels=web))
    b = NodeInfo(node("b"))
    fwk = framework(a, b, profile=only("InterPodAffinity"))
    host = "kubernetes.io/hostname"
    p = pod("p", labels=web, spec=_pod_affinity("podAntiAffinity", _term(web, host)))
    assert run_filter(fwk, p, a).reasons == ("node(s) didn't match pod anti-affinity rules",)
    assert run_filter(fwk, p, b).is_success
    # an existing pod that repels the newcomer
    guard = pod("g", labels={"app": "guard"},
                spec=_pod_affinity("podAntiAffinity", _term(web, host)))
    a2 = node_info(node("a"), guard)
    fwk = framework(a2, b, profile=only("InterPodAffinity"))
    status = run_filter(fwk, pod("p", labels=web), a2)
    assert status.reasons == ("node(s) didn't satisfy existing pods anti-affinity rules",)
    assert status.code == Code.UNSCHEDULABLE
    assert run_filter(fwk, pod("p", labels=web), b).is_success
    # other namespaces are not selected unless named
    assert run_filter(fwk, pod("p", labels=web, namespace="other"), a2).is_success


def test_preferred_affinity_scores() -> None:
    a = node_info(node("a", labels={"zone": "z1"}), pod("db", labels={"app": "db"}))
    b = NodeInfo(node("b", labels={"zone": "z2"}))
    fwk = framework(a, b)
    plugin = fwk.plugins["InterPodAffinity"]
    pref = {"affinity": {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 10, "podAffinityTerm": _term({"app": "db"})}]}}}
    assert scores(plugin, pod("p", spec=pref), a, b) == {"a": 100, "b": 0}
    anti = {"affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 10, "podAffinityTerm": _term({"app": "db"})}]}}}
    assert scores(plugin, pod("p", spec=anti), a, b) == {"a": 0, "b": 100}
    assert isinstance(plugin, interpodaffinity.InterPodAffinity)


# --- DefaultPreemption (the what-if; eviction is covered in test_scheduler) --------------

def test_preemption_keeps_the_victims_it_can_spare() -> None:
    a = node_info(node("a", "4"), pod("v1", "1", priority=1), pod("v2", "2", priority=2),
                  pod("keep", "1", priority=500))
    fwk = framework(a)
    plugin = fwk.plugins["DefaultPreemption"]
    victims, status = plugin.select_victims(CycleState(), PodInfo(pod("p", "2", priority=100)), a)
    # removing v2 (2 cpu) is enough; v1 is reprieved, the higher-priority pod never considered
    assert status.is_success and [v.key for v in victims] == ["default/v2"]


def test_preemption_not_eligible_while_victims_terminate() -> None:
    dying = pod("v", "1", priority=1)
    dying["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    a = node_info(node("a", "1"), dying)
    fwk = framework(a)
    p = pod("p", "1", priority=100)
    p["status"]["nominatedNodeName"] = "a"
    assert fwk.plugins["DefaultPreemption"].eligibility(PodInfo(p)) == (
        "not eligible due to a terminating pod on the nominated node.")
