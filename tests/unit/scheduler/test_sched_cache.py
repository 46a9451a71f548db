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
