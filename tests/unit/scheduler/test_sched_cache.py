"""The cache: node aggregates from informer events, and the assume/confirm/forget/expire cycle."""

from __future__ import annotations

from scheduler_fixtures import node, pod

from pyk8s.client.clock import FakeClock
from pyk8s.scheduler.cache import Cache
from pyk8s.scheduler.nodeinfo import PodInfo


def test_bound_pods_count_on_their_node() -> None:
    cache = Cache(FakeClock())
    cache.add_node(node("a"))
    p = pod("p", "500m", "1Gi", node_name="a")
    cache.add_pod(p)
    info = cache.node_info("a")
    assert info is not None and info.requested == {"cpu": 500, "memory": 2**30}
    cache.remove_pod(p)
    assert info.requested == {"cpu": 0, "memory": 0} and not info.pods


def test_terminal_pods_free_their_resources() -> None:
    cache = Cache(FakeClock())
    cache.add_node(node("a"))
    p = pod("p", "1", node_name="a")
    cache.add_pod(p)
    done = {**p, "status": {"phase": "Succeeded"}}
    cache.update_pod(p, done)
    assert cache.node_info("a").requested.get("cpu") == 0  # type: ignore[union-attr]


def test_assume_then_confirm() -> None:
    clock = FakeClock()
    cache = Cache(clock, ttl=30)
    cache.add_node(node("a"))
    p = pod("p", "1")
    cache.assume_pod(PodInfo(p), "a")
    assert cache.node_info("a").requested["cpu"] == 1000  # type: ignore[union-attr]
    cache.finish_binding(PodInfo(p).uid)
    cache.add_pod({**p, "spec": {**p["spec"], "nodeName": "a"}})
    assert not cache.is_assumed(PodInfo(p).uid)
    clock.advance(60)
    assert cache.cleanup_expired() == 0
    assert cache.node_info("a").requested["cpu"] == 1000  # type: ignore[union-attr]


def test_confirmations_and_status_reports_keep_the_accounting() -> None:
    cache = Cache(FakeClock())
    cache.add_node(node("a"))
    p = pod("p", "1", labels={"app": "web"}, owner="rs")
    assumed = cache.assume_pod(PodInfo(p), "a")
    assert assumed.requests == {"cpu": 1000}
    info = cache.node_info("a")
    assert info is not None
    generation = info.generation
    bound = {**p, "spec": {**p["spec"], "nodeName": "a"}}
    running = {**bound, "status": {"phase": "Running", "startTime": "2026-01-01T00:00:01Z"}}
    for update in (bound, running):
        cache.add_pod(update)
        held = info.pods[assumed.uid]
        assert held.pod is update and not cache.is_assumed(assumed.uid)
        assert "requests" in held.__dict__  # taken over from the assumed pod, not parsed again
    assert info.generation == generation and info.requested == {"cpu": 1000}
    relabelled = {**running, "metadata": {**p["metadata"], "labels": {"app": "db"}}}
    cache.add_pod(relabelled)
    assert info.generation > generation and info.pods[assumed.uid].labels == {"app": "db"}
    bigger = {**relabelled, "spec": {**relabelled["spec"], "containers": [
        {"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "2"}}}]}}
    cache.add_pod(bigger)
    assert info.requested == {"cpu": 2000}
    assert cache.snapshot().pods_by_owner(("default", "owner-rs")) == {"a": 1}


def test_forget_after_failed_binding() -> None:
    cache = Cache(FakeClock())
    cache.add_node(node("a"))
    p = PodInfo(pod("p", "1"))
    cache.assume_pod(p, "a")
    cache.forget_pod(p.uid)
    assert cache.node_info("a").requested["cpu"] == 0  # type: ignore[union-attr]


def test_assumed_pod_expires_only_after_binding_finished() -> None:
    clock = FakeClock()
    cache = Cache(clock, ttl=30)
    cache.add_node(node("a"))
    p = PodInfo(pod("p", "1"))
    cache.assume_pod(p, "a")
    clock.advance(100)
    assert cache.cleanup_expired() == 0  # still binding
    cache.finish_binding(p.uid)
    clock.advance(29)
    assert cache.cleanup_expired() == 0
    clock.advance(2)
    assert cache.cleanup_expired() == 1 and not cache.node_info("a").pods  # type: ignore[union-attr]


def test_snapshot_lists_only_nodes_that_exist() -> None:
    cache = Cache(FakeClock())
    n = node("a")
    cache.add_node(n)
    cache.add_node(node("b"))
    cache.add_pod(pod("p", node_name="a"))
    cache.add_pod(pod("q", node_name="ghost"))
    assert [x.name for x in cache.snapshot().node_infos] == ["a", "b"]
    cache.remove_node(n)
    assert [x.name for x in cache.snapshot().node_infos] == ["b"]
    assert cache.node_info("a") is not None  # kept while its pod is there


def test_node_update_changes_allocatable() -> None:
    cache = Cache(FakeClock())
    old = node("a", "1")
    cache.add_node(old)
    cache.update_node(old, node("a", "8"))
    assert cache.snapshot().get("a").allocatable["cpu"] == 8000  # type: ignore[union-attr]


# --- the snapshot and the index of pods by controller ---------------------------------------


def _owned(name: str, owner: str, node_name: str = "a", **kw: object) -> dict:
    return pod(name, "100m", owner=owner, node_name=node_name, **kw)  # type: ignore[arg-type]


def test_snapshot_is_reused_and_extended_until_a_node_goes() -> None:
    cache = Cache(FakeClock())
    cache.add_node(node("a"))
    first = cache.snapshot()
    cache.add_pod(_owned("p", "rs"))
    cache.update_node(node("a"), node("a", labels={"zone": "z1"}))
    assert cache.snapshot() is first and first.get("a").labels["zone"] == "z1"  # type: ignore[union-attr]
    cache.add_node(node("b"))
    assert cache.snapshot() is first and [n.name for n in first.node_infos] == ["a", "b"]
    assert first.columns.index == {"a": 0, "b": 1}
    cache.remove_node(node("b"))
    second = cache.snapshot()
    assert second is not first and [n.name for n in second.node_infos] == ["a"]


def test_pods_are_counted_per_controller_and_node() -> None:
    cache = Cache(FakeClock())
    for name in ("a", "b"):
        cache.add_node(node(name))
    cache.add_pod(_owned("p1", "rs"))
    cache.add_pod(_owned("p2", "rs"))
    cache.add_pod(_owned("p3", "rs", "b"))
    cache.add_pod(_owned("q1", "other", "b"))
    cache.add_pod(_owned("p4", "rs", namespace="elsewhere"))
    cache.add_pod(pod("orphan", node_name="a"))
    snapshot = cache.snapshot()
    assert snapshot.pods_by_owner(("default", "owner-rs")) == {"a": 2, "b": 1}
    assert snapshot.pods_by_owner(("default", "owner-other")) == {"b": 1}
    assert snapshot.pods_by_owner(("elsewhere", "owner-rs")) == {"a": 1}
    assert snapshot.pods_by_owner(("default", "owner-none")) == {}


def test_the_controller_index_follows_moves_deletions_and_assumptions() -> None:
    cache = Cache(FakeClock())
    for name in ("a", "b"):
        cache.add_node(node(name))
    p = _owned("p", "rs")
    cache.add_pod(p)
    moved = {**p, "spec": {**p["spec"], "nodeName": "b"}}
    cache.update_pod(p, moved)
    key = ("default", "owner-rs")
    assert cache.snapshot().pods_by_owner(key) == {"b": 1}
    terminating = {**moved, "metadata": {**moved["metadata"], "deletionTimestamp": "x"}}
    cache.update_pod(moved, terminating)  # a terminating pod no longer counts
    assert cache.snapshot().pods_by_owner(key) == {}
    assert cache.node_info("b").pods  # type: ignore[union-attr]  # but still takes room
    cache.remove_pod(terminating)
    pending = PodInfo(pod("n", "100m", owner="rs"))
    cache.assume_pod(pending, "a")
    assert cache.snapshot().pods_by_owner(key) == {"a": 1}
    cache.forget_pod(pending.uid)
    assert cache.snapshot().pods_by_owner(key) == {}


def test_a_snapshot_built_from_nodes_counts_their_pods() -> None:
    from pyk8s.scheduler.nodeinfo import NodeInfo
    from pyk8s.scheduler.snapshot import Snapshot

    a = NodeInfo(node("a"))
    a.add_pod(PodInfo(_owned("p1", "rs")))
    a.add_pod(PodInfo(_owned("p2", "rs")))
    assert Snapshot([a]).pods_by_owner(("default", "owner-rs")) == {"a": 2}


def test_confirmed_pod_never_expires() -> None:
    """The periodic cleanup looks only at assumed pods whose binding finished: once the
    pod's event confirms it, it stays however long it lives."""
    clock = FakeClock()
    cache = Cache(clock, ttl=30)
    cache.add_node(node("a"))
    p = PodInfo(pod("p", "1"))
    cache.assume_pod(p, "a")
    cache.finish_binding(p.uid)
    cache.add_pod({**p.pod, "spec": {**p.pod["spec"], "nodeName": "a"}})
    clock.advance(100)
    assert cache.cleanup_expired() == 0 and not cache.is_assumed(p.uid)
    assert list(cache.node_info("a").pods) == [p.uid]  # type: ignore[union-attr]
    q = PodInfo(pod("q", "1"))
    cache.assume_pod(q, "a")
    cache.finish_binding(q.uid)
    cache.forget_pod(q.uid)  # a forgotten pod is not expired a second time
    clock.advance(100)
    assert cache.cleanup_expired() == 0
