#!/usr/bin/env python3
"""Scheduler throughput: pods scheduled per second.

Prints one JSON object per line on stdout (progress on stderr):

- ``algorithm``: the default profile's filter + score + select, plus assuming the pod in the
  cache, for N pending pods onto M nodes, in process (no queue, no API);
- ``loop``: the whole scheduling loop (``Scheduler`` with its queue, cache, cycle, binding
  task), binding through an in-memory client that answers at once;
- ``e2e``: a real ``pyk8s server`` (``tests.cluster.Cluster``), M Node objects and N pending
  pods created first, then a ``Scheduler`` in this process; time from its start until the
  last pod is seen bound through a watch. Its ``cpu_ms_per_pod`` covers this process from the
  scheduler's start (its lists, bindings, events, watch events; and the bench's own watch)
  until every Scheduled event is sent. Needs the server to start (skip with ``--no-e2e``).

The pods belong to 10 ReplicaSets (so PodTopologySpread's system defaults apply) and all
nodes are alike, as in a cluster scaling out one kind of workload. Every figure carries
``cpu_ms_per_pod`` (process CPU time per scheduled pod), the figure to compare on a busy
machine; ``--repeat N`` runs the in-process benches N times and adds a ``summary`` line per
bench with the median and the best of the runs.

    .venv/bin/python bench/scheduler_bench.py                 # 1000 pods, 100 nodes
    .venv/bin/python bench/scheduler_bench.py --pods 200 --no-e2e
    .venv/bin/python bench/scheduler_bench.py --nodes 5000 --no-e2e --repeat 5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from pyk8s.scheduler import Scheduler, SchedulerSettings  # noqa: E402
from pyk8s.scheduler.algorithm import GenericScheduler  # noqa: E402
from pyk8s.scheduler.cache import Cache  # noqa: E402
from pyk8s.scheduler.framework import CycleState, Framework, Handle  # noqa: E402
from pyk8s.scheduler.nodeinfo import PodInfo  # noqa: E402
from pyk8s.scheduler.plugins.registry import in_tree_registry  # noqa: E402
from pyk8s.scheduler.settings import Profile  # noqa: E402


def emit(**figures: Any) -> None:
    print(json.dumps(figures), flush=True)


def progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def make_node(i: int) -> dict[str, Any]:
    name = f"node-{i:04}"
    alloc = {"cpu": "32", "memory": "64Gi", "pods": "110", "ephemeral-storage": "100Gi"}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "uid": f"uid-{name}",
                         "labels": {"kubernetes.io/hostname": name,
                                    "topology.kubernetes.io/zone": f"zone-{i % 3}"}},
            "spec": {},
            "status": {"capacity": alloc, "allocatable": alloc,
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def make_pod(i: int, namespace: str = "default") -> dict[str, Any]:
    name = f"pod-{i:05}"
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}",
                         "labels": {"app": f"app-{i % 10}"},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                              "name": f"rs-{i % 10}", "uid": f"rs-{i % 10}",
                                              "controller": True}]},
            "spec": {"schedulerName": "default-scheduler",
                     "containers": [{"name": "c", "image": "busybox", "resources": {
                         "requests": {"cpu": "100m", "memory": "128Mi"}}}]},
            "status": {"phase": "Pending"}}


def bench_algorithm(pods: int, nodes: int) -> dict[str, Any]:
    cache = Cache()
    for i in range(nodes):
        cache.add_node(make_node(i))
    fwk = Framework(Profile(), in_tree_registry(), Handle())
    algo = GenericScheduler(rng=random.Random(0))
    infos = [PodInfo(make_pod(i)) for i in range(pods)]
    started, cpu = time.perf_counter(), time.process_time()
    placed = 0
    for info in infos:
        snapshot = cache.snapshot()
        fwk.handle.snapshot = snapshot
        result = algo.schedule(fwk, CycleState(), info, snapshot)
        if result.node:
            cache.assume_pod(info, result.node)
            placed += 1
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return figures("algorithm", pods, nodes, placed, elapsed, cpu)


def figures(bench: str, pods: int, nodes: int, scheduled: int, elapsed: float,
            cpu: float) -> dict[str, Any]:
    result = {"bench": bench, "pods": pods, "nodes": nodes, "scheduled": scheduled,
              "seconds": round(elapsed, 3), "cpu_seconds": round(cpu, 3),
              "pods_per_second": round(scheduled / elapsed, 1),
              "pods_per_cpu_second": round(scheduled / cpu, 1),
              "cpu_ms_per_pod": round(1000 * cpu / max(scheduled, 1), 3)}
    emit(**result)
    return result


class InstantClient:
    """Binds, patches and records events in memory, at once."""

    def __init__(self) -> None:
        self.bound = 0

    async def post_subresource(self, *args: Any, **kwargs: Any) -> Any:
        self.bound += 1
        return {}

    async def patch(self, *args: Any, **kwargs: Any) -> Any:
        return {}

    async def create(self, *args: Any, **kwargs: Any) -> Any:
        return {}

    async def delete(self, *args: Any, **kwargs: Any) -> Any:
        return {}


async def bench_loop(pods: int, nodes: int) -> dict[str, Any]:
    client = InstantClient()
    sched = Scheduler(client, SchedulerSettings(), rng=random.Random(0))  # type: ignore[arg-type]
    for i in range(nodes):
        sched.on_node_add(make_node(i))
    for i in range(pods):
        sched.on_pod_add(make_pod(i))
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(pods):
        qinfo = await sched.queue.pop()
        assert qinfo is not None
        await sched.schedule_one(qinfo)
    await sched.wait_idle()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return figures("loop", pods, nodes, client.bound, elapsed, cpu)


async def bench_e2e(pods: int, nodes: int) -> None:
    from pyk8s.client import ApiClient
    from pyk8s.machinery.resources import CATALOGUE
    from tests.cluster import Cluster

    node_res = CATALOGUE.resource("v1", "nodes")
    pod_res = CATALOGUE.resource("v1", "pods")
    with tempfile.TemporaryDirectory(prefix="sched-bench-") as tmp:
        cluster = Cluster(Path(tmp), command="apiserver")
        cluster.start()
        api = ApiClient.from_kubeconfig(cluster.kubeconfig)
        try:
            progress(f"e2e: creating {nodes} nodes and {pods} pods")
            sem = asyncio.Semaphore(32)

            async def create(res: Any, obj: dict[str, Any]) -> None:
                async with sem:
                    body = {k: v for k, v in obj.items()}
                    body["metadata"] = {k: v for k, v in obj["metadata"].items() if k != "uid"}
                    await api.create(res, body)

            await asyncio.gather(*(create(node_res, make_node(i)) for i in range(nodes)))
            await asyncio.gather(*(create(pod_res, make_pod(i)) for i in range(pods)))
            listed = await api.list(pod_res, "default")
            rv = listed["metadata"]["resourceVersion"]
            sched = Scheduler(api, SchedulerSettings())
            started, cpu = time.perf_counter(), time.process_time()
            task = asyncio.create_task(sched.run())
            bound = 0
            async for event in api.watch(pod_res, "default", resource_version=rv,
                                         timeout_seconds=120):
                obj = event.get("object") or {}
                if event.get("type") == "MODIFIED" and (obj.get("spec") or {}).get("nodeName"):
                    bound += 1
                    if bound >= pods:
                        break
            await sched.wait_idle()  # the Scheduled events too
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            emit(bench="e2e", pods=pods, nodes=nodes, scheduled=bound,
                 seconds=round(elapsed, 3), pods_per_second=round(bound / elapsed, 1),
                 cpu_seconds=round(cpu, 3),
                 cpu_ms_per_pod=round(1000 * cpu / max(bound, 1), 3))
        finally:
            await api.close()
            cluster.stop()


def summarize(runs: list[dict[str, Any]]) -> None:
    if len(runs) < 2:
        return
    cpu = sorted(r["cpu_ms_per_pod"] for r in runs)
    rate = sorted(r["pods_per_second"] for r in runs)
    emit(bench=runs[0]["bench"], summary=True, runs=len(runs), pods=runs[0]["pods"],
         nodes=runs[0]["nodes"], cpu_ms_per_pod_median=statistics.median(cpu),
         cpu_ms_per_pod_best=cpu[0], pods_per_second_median=statistics.median(rate),
         pods_per_second_best=rate[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--no-e2e", action="store_true")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each in-process bench")
    args = parser.parse_args()
    algorithm, loop = [], []
    for _ in range(max(args.repeat, 1)):
        algorithm.append(bench_algorithm(args.pods, args.nodes))
        loop.append(asyncio.run(bench_loop(args.pods, args.nodes)))
    summarize(algorithm)
    summarize(loop)
    if not args.no_e2e:
        asyncio.run(bench_e2e(args.pods, args.nodes))


if __name__ == "__main__":
    main()
