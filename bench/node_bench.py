#!/usr/bin/env python3
"""The node: pod startup latency and the kubelet's idle cost.

Prints one JSON object per line on stdout (progress on stderr):

- ``pod_startup``: a real ``pyk8s server --disable kubelet`` (``tests.cluster.Cluster``: API
  server, controllers, scheduler, in one process), a ``pyk8s agent`` (the kubelet) and N pods
  (``sleep``) created at once through the API. Latency per pod, as upstream's SLI defines it:
  from creation (here: the moment its POST was sent, so the API server's own time counts) to
  the moment a watch shows every container of the pod started. p50, p90, p99, max.
  Scheduling is included (the pods have no ``nodeName``).
- ``idle``: with the N pods running, after a settling time, RSS and CPU over a window of the
  kubelet -- run as its own process, ``pyk8s agent``, beside ``pyk8s server --disable
  kubelet`` -- and apart from it of the control plane and of the containers' supervisors
  (one ``shim`` process per container: ``shims_rss_mib`` total, ``shims_cpu_cores``).

With ``--runtime oci`` (root, runc, CNI) the pods are runc containers of a busybox image
served by a registry on loopback and pulled once before the measurement (upstream's SLI is
for cached images); each pod gets its own network namespace and IP.

    .venv/bin/python bench/node_bench.py                 # 100 pods, process runtime
    .venv/bin/python bench/node_bench.py --pods 20 --idle 10
    .venv/bin/python bench/node_bench.py --runtime oci

Everything started is stopped and removed at the end (also on failure or Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from pyk8s.client import ApiClient  # noqa: E402
from pyk8s.machinery.resources import CATALOGUE  # noqa: E402
from tests.cluster import Cluster, free_port  # noqa: E402

PODS = CATALOGUE.resource("v1", "pods")
NAMESPACES = CATALOGUE.resource("v1", "namespaces")
NODES = CATALOGUE.resource("v1", "nodes")
TICKS = os.sysconf("SC_CLK_TCK")


def emit(**figures: Any) -> None:
    print(json.dumps(figures), flush=True)


def progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def proc_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def shim_pids(state_dir: Path) -> list[int]:
    pids = []
    for pidfile in state_dir.glob("containers/*/shim.pid"):
        with contextlib.suppress(OSError, ValueError):
            pid = int(pidfile.read_text())
            if Path(f"/proc/{pid}").exists():
                pids.append(pid)
    return pids


def machine_busy_cores(window: float, before: list[int], after: list[int]) -> float:
    busy = [(a - b) for a, b in zip(after, before, strict=True)]
    total = sum(busy)
    idle = busy[3] + busy[4]
    return (total - idle) / TICKS / window


def cpu_ticks() -> list[int]:
    return [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]


IMAGE = "busybox"


def pod(i: int, namespace: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"p-{i:04}", "namespace": namespace, "labels": {"bench": "1"}},
            "spec": {"terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "c", "image": IMAGE,
                                     "imagePullPolicy": "IfNotPresent",
                                     "command": ["sleep", "3600"],
                                     "resources": {"requests": {"cpu": "1m",
                                                                "memory": "1Mi"}}}]}}


def all_started(obj: dict[str, Any]) -> bool:
    spec = obj.get("spec") or {}
    statuses = (obj.get("status") or {}).get("containerStatuses") or []
    wanted = {c["name"] for c in spec.get("containers") or []}
    started = {cs["name"] for cs in statuses if "running" in (cs.get("state") or {})}
    return bool(wanted) and wanted <= started


async def startup(cluster: Cluster, count: int) -> dict[str, float]:
    # Many connections: the creates go out at once, as from many users (the latency is
    # measured from each POST).
    client = ApiClient.from_kubeconfig(cluster.kubeconfig, max_connections=128)
    try:
        for _ in range(300):
            nodes = (await client.list(NODES))["items"]
            if any(c.get("type") == "Ready" and c.get("status") == "True"
                   for n in nodes for c in (n.get("status") or {}).get("conditions") or []):
                break
            await asyncio.sleep(0.1)
        ns = "bench"
        await client.create(NAMESPACES, {"metadata": {"name": ns}})
        rv = (await client.list(PODS, ns))["metadata"]["resourceVersion"]
        sent: dict[str, float] = {}
        seen: dict[str, float] = {}
        bound: dict[str, float] = {}
        done = asyncio.Event()

        async def watch() -> None:
            async for event in client.watch(PODS, ns, resource_version=rv):
                obj = event.get("object") or {}
                name = (obj.get("metadata") or {}).get("name", "")
                if (obj.get("spec") or {}).get("nodeName") and name not in bound:
                    bound[name] = time.monotonic()
                if event.get("type") in ("ADDED", "MODIFIED") and name not in seen \
                        and all_started(obj):
                    seen[name] = time.monotonic()
                    if len(seen) == count:
                        done.set()
                        return

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.2)  # the watch is open

        async def create(i: int) -> None:
            obj = pod(i, ns)
            sent[obj["metadata"]["name"]] = time.monotonic()
            await client.create(PODS, obj)

        t0 = time.monotonic()
        await asyncio.gather(*(create(i) for i in range(count)))
        created = time.monotonic() - t0
        progress(f"created {count} pods in {created:.2f}s; waiting for them to start")
        await asyncio.wait_for(done.wait(), timeout=120)
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watcher
        latencies = [seen[n] - sent[n] for n in sent]
        binding = [bound[n] - sent[n] for n in sent if n in bound]
        return {"bound_p50": round(percentile(binding, 0.5), 3),
                "bound_p99": round(percentile(binding, 0.99), 3),"p50": round(percentile(latencies, 0.5), 3),
                "p90": round(percentile(latencies, 0.9), 3),
                "p99": round(percentile(latencies, 0.99), 3),
                "max": round(max(latencies), 3),
                "all_started_after": round(max(seen.values()) - t0, 3),
                "create_calls_seconds": round(created, 3)}
    finally:
        await client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--settle", type=float, default=15.0,
                        help="seconds between the last start and the idle window")
    parser.add_argument("--idle", type=float, default=30.0, help="idle window, seconds")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    parser.add_argument("--runtime", choices=("process", "oci"), default="process")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        extra: tuple[str, ...] = ("--runtime", args.runtime)
        tmp = Path(tempfile.mkdtemp(prefix="node-bench-"))
        if args.runtime == "oci":
            extra += prepare_oci(stack, tmp)
        return measure(args, tmp, extra)
    return 1


def prepare_oci(stack: contextlib.ExitStack, tmp: Path) -> tuple[str, ...]:
    """A loopback registry with busybox, pulled into the node's image store beforehand."""
    global IMAGE
    from pyk8s.runtime.images import ImageStore
    from tests.hostnet import HostNetworkGuard
    from tests.make_test_image import busybox_image
    from tests.registry import TestRegistry

    stack.enter_context(HostNetworkGuard(["pyk8s0"]))
    registry = stack.enter_context(TestRegistry())
    registry.push("library/busybox", "1.36", busybox_image())
    IMAGE = f"{registry.host}/library/busybox:1.36"
    asyncio.run(ImageStore(tmp / "images").pull(IMAGE))
    return ("--image-root", str(tmp / "images"))


def start_agent(cluster: Cluster, tmp: Path, extra: tuple[str, ...]) -> subprocess.Popen[bytes]:
    """The kubelet as its own process (``pyk8s agent``), so its cost is measured apart from
    the control plane's."""
    log = open(tmp / "agent.log", "ab")  # noqa: SIM115 - lives as long as the agent
    return subprocess.Popen(
        [sys.executable, "-m", "pyk8s.cli.main", "agent", "--kubeconfig",
         str(cluster.kubeconfig), "--node-name", "node-1", "--node-ip", "127.0.0.1",
         "--root-dir", str(tmp / "agent"), "--port", str(free_port()),
         "--client-ca-file", str(cluster.data_dir / "pki" / "ca.crt"), *extra],
        stdout=log, stderr=subprocess.STDOUT)


def measure(args: argparse.Namespace, tmp: Path, extra: tuple[str, ...]) -> int:
    cluster = Cluster(tmp / "server", command="server",
                      extra_args=("--disable", "kubelet", *extra))
    agent: subprocess.Popen[bytes] | None = None
    try:
        progress(f"starting pyk8s server and pyk8s agent ({args.runtime} runtime)")
        cluster.start()
        agent = start_agent(cluster, tmp, extra)
        assert cluster.proc is not None
        figures = asyncio.run(startup(cluster, args.pods))
        target = 1.0 if args.runtime == "process" else 2.0
        emit(figure="pod_startup_latency_seconds", runtime=args.runtime, pods=args.pods,
             target_p99=target, met=figures["p99"] <= target, **figures)

        progress(f"settling {args.settle:.0f}s, then measuring {args.idle:.0f}s of idle")
        time.sleep(args.settle)
        pids = {"kubelet": agent.pid, "control_plane": cluster.proc.pid}
        shims = shim_pids(tmp / "agent" / "runtime")
        cpu0 = {k: proc_cpu_seconds(p) for k, p in pids.items()}
        shim0, ticks0 = {p: proc_cpu_seconds(p) for p in shims}, cpu_ticks()
        t0 = time.monotonic()
        time.sleep(args.idle)
        window = time.monotonic() - t0
        cpu1, ticks1 = {k: proc_cpu_seconds(p) for k, p in pids.items()}, cpu_ticks()
        shim_cpu = sum(proc_cpu_seconds(p) - c for p, c in shim0.items()
                       if Path(f"/proc/{p}").exists())
        emit(figure="idle_with_running_pods", runtime=args.runtime, pods=args.pods,
             kubelet_rss_mib=round(proc_rss_mib(agent.pid), 1), target_rss_mib=80,
             kubelet_cpu_cores=round((cpu1["kubelet"] - cpu0["kubelet"]) / window, 4),
             target_cpu_cores=0.05,
             control_plane_rss_mib=round(proc_rss_mib(cluster.proc.pid), 1),
             control_plane_cpu_cores=round(
                 (cpu1["control_plane"] - cpu0["control_plane"]) / window, 4),
             window_seconds=round(window, 1), shims=len(shims),
             shims_rss_mib=round(sum(proc_rss_mib(p) for p in shims
                                     if Path(f"/proc/{p}").exists()), 1),
             shims_cpu_cores=round(shim_cpu / window, 4),
             machine_busy_cores=round(machine_busy_cores(window, ticks0, ticks1), 2),
             cores=os.cpu_count())
    finally:
        if agent is not None:
            agent.terminate()
            agent.wait(15)
        cluster.stop()
        remove_workloads(tmp / "agent" / "runtime", args.runtime, tmp / "images")
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def remove_workloads(state_dir: Path, runtime: str, image_root: Path) -> None:
    from pyk8s.runtime import open_runtime, remove_everything

    if not state_dir.exists():
        return
    if runtime == "oci":
        from pyk8s.runtime.images import ImageStore

        rt = open_runtime("oci", state_dir=state_dir, images=ImageStore(image_root),
                          network="cni")
    else:
        rt = open_runtime("process", state_dir=state_dir)
    asyncio.run(remove_everything(rt))


if __name__ == "__main__":
    sys.exit(main())
