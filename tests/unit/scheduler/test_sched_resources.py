"""What a pod requests: containers summed, init containers as a peak, sidecars, overhead."""

from __future__ import annotations

from scheduler_fixtures import node, pod

from pyk8s.scheduler.resources import node_allocatable, pod_requests


def _c(cpu: str, mem: str = "", **extra: str) -> dict:
    req = {"cpu": cpu, **({"memory": mem} if mem else {}), **extra}
    return {"name": "x", "resources": {"requests": req}}


def test_containers_add_up() -> None:
    p = pod("p", spec={"containers": [_c("100m", "64Mi"), _c("200m", "64Mi")]})
    assert pod_requests(p) == {"cpu": 300, "memory": 128 * 2**20}


def test_init_container_peak_wins_when_larger() -> None:
    p = pod("p", spec={"containers": [_c("100m")], "initContainers": [_c("1"), _c("500m")]})
    assert pod_requests(p)["cpu"] == 1000


def test_restartable_init_containers_run_alongside() -> None:
    sidecar = {**_c("200m"), "restartPolicy": "Always"}
    p = pod("p", spec={"containers": [_c("100m")], "initContainers": [sidecar, _c("250m")]})
    # sidecar (200m) keeps running: regular 100m + 200m = 300m; init peak 250m + 200m = 450m
    assert pod_requests(p)["cpu"] == 450


def test_overhead_is_added() -> None:
    p = pod("p", "100m", spec={"overhead": {"cpu": "250m", "memory": "120Mi"},
                               "containers": [_c("100m")]})
    assert pod_requests(p) == {"cpu": 350, "memory": 120 * 2**20}


def test_limits_stand_in_for_missing_requests() -> None:
    p = pod("p", spec={"containers": [{"name": "c", "resources": {"limits": {"cpu": "2"}}}]})
    assert pod_requests(p) == {"cpu": 2000}


def test_non_zero_defaults_for_scoring() -> None:
    p = pod("p", spec={"containers": [{"name": "c"}, _c("1")]})
    assert pod_requests(p, non_zero=True) == {"cpu": 1100, "memory": 400 * 2**20}
    assert pod_requests(p) == {"cpu": 1000}


def test_extended_resources_kept_unknown_native_ignored() -> None:
    p = pod("p", spec={"containers": [_c("1", **{"nvidia.com/gpu": "2", "storage": "1Gi",
                                                 "hugepages-2Mi": "4Mi"})]})
    assert pod_requests(p) == {"cpu": 1000, "nvidia.com/gpu": 2, "hugepages-2Mi": 4 * 2**20}


def test_node_allocatable_falls_back_to_capacity() -> None:
    n = node("n", "2", "1Gi", 10)
    del n["status"]["allocatable"]
    alloc, pods = node_allocatable(n)
    assert alloc["cpu"] == 2000 and alloc["memory"] == 2**30 and pods == 10
