#!/usr/bin/env python3
"""The control plane at scale on hollow nodes: scheduling throughput, a big Deployment, its
rolling update. One JSON object per line on stdout (progress on stderr).

Four processes, all on this machine, as upstream's control plane runs them (one process per
component, so the API server has a core of its own rather than sharing it with the
controllers; Python runs one component's code on one core at a time):

- ``pyk8s server --disable kubelet,scheduler,controller-manager``: the API server;
- ``pyk8s controller-manager --no-leader-elect``;
- ``pyk8s hollow-nodes --count N``: N fake nodes (Leases every 10 s, pods reported Running);
- ``pyk8s scheduler --no-leader-elect``: started after the pending pods exist.

Figures (``--only`` names in brackets):

- ``scheduling_pods_per_second`` [schedule] at 1,000 and 5,000 nodes: P pending pods are
  created first, then the scheduler is started; a watch records when each pod is bound.
  ``value`` = P / (last bound - the scheduler's "scheduler started" log line, i.e. its
  informers synced); ``from_process_start`` also counts imports and the initial lists.
  Scheduler CPU per pod is taken between the first and the last binding (``/proc/<pid>/stat``).
- ``deployment_running_seconds`` [deployment]: a Deployment of R replicas on 1,000 nodes,
  from the create to the moment the watch has seen all R pods Running and Ready (the
  schedule run's namespace is deleted first, and the components left to settle).
  ``timeline_s``: when a quarter, half, three quarters and all pods were created, bound
  and Ready.
- ``rollout_seconds`` [rollout]: ``set image`` on it, until ``rollout status`` would return
  (observedGeneration current, updated = available = total = R).
- ``idle_cpu_cores`` (every run): CPU of the four processes over 10 s, 15 s after the runs
  above (Lease renewals every 10 s per node, node status, the controllers' resyncs).

``--profile DIR`` runs py-spy (``record --gil --nonblocking --function --format raw``) on the
scheduler and the server during the scheduling window, and on the server during the
deployment and the rollout, and emits ``profile_*`` lines with the top functions.

    .venv/bin/python bench/cluster_bench.py                 # the issue's sizes, a few minutes
    .venv/bin/python bench/cluster_bench.py --quick         # small sizes, about a minute
    .venv/bin/python bench/cluster_bench.py --only schedule --nodes 1000 --profile /tmp/p
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from pyk8s.client import ApiClient, ApiError  # noqa: E402
from pyk8s.machinery.resources import CATALOGUE  # noqa: E402
from tests.cluster import Cluster  # noqa: E402

PODS = CATALOGUE.resource("v1", "pods")
NODES = CATALOGUE.resource("v1", "nodes")
NAMESPACES = CATALOGUE.resource("v1", "namespaces")
DEPLOYMENTS = CATALOGUE.resource("apps/v1", "deployments")
Obj = dict[str, Any]
IDLE_SETTLE_S = 15.0
IDLE_WINDOW_S = 10.0


# -- output ------------------------------------------------------------------------------

def _round(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_round(v) for v in value]
    return value


def emit(figure: str, value: float | None, unit: str, target: str = "",
         met: bool | None = None, **extra: Any) -> None:
    record: dict[str, Any] = {"figure": figure, "value": _round(value), "unit": unit}
    if target:
        record["target"] = target
    if met is not None:
        record["meets_target"] = met
    record.update({k: _round(v) for k, v in extra.items()})
    print(json.dumps(record), flush=True)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- processes and their CPU -------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """Cores used over a window by each named process, and by everything else."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = {**pids, "bench": os.getpid()}
        self.start = self._sample()

    def _sample(self) -> tuple[float, dict[str, float], float]:
        return (time.monotonic(), {n: cpu_seconds(p) for n, p in self.pids.items()},
                machine_busy_seconds())

    def cpu(self) -> dict[str, float]:
        """CPU seconds per process since the start."""
        _, now, _ = self._sample()
        return {n: now[n] - self.start[1][n] for n in self.pids}

    def cores(self) -> dict[str, float]:
        t, now, busy = self._sample()
        elapsed = max(t - self.start[0], 1e-6)
        out = {n: (now[n] - self.start[1][n]) / elapsed for n in self.pids}
        out["other_processes"] = max((busy - self.start[2]) / elapsed - sum(out.values()), 0.0)
        return out


class Profiler:
    """py-spy on one process for a window (started and stopped by the bench)."""

    def __init__(self, out_dir: Path | None, process: str = "server") -> None:
        self.out_dir = out_dir
        # Which process the deployment and rollout windows profile (a Stack.pids() name).
        self.process = process
        self._proc: subprocess.Popen[bytes] | None = None
        self._raw: Path | None = None

    def start(self, pid: int, name: str, seconds: float) -> None:
        if self.out_dir is None:
            return
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(py_spy).exists():
            log("py-spy not found; not profiling")
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._raw = self.out_dir / f"{name}.raw.txt"
        self._name = name
        command = [py_spy, "record", "--pid", str(pid), "--rate", "200", "--duration",
                   str(max(int(seconds), 1)), "--gil", "--nonblocking", "--function",
                   "--format", "raw", "--output", str(self._raw)]
        self._proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> None:
        if self._proc is None or self._raw is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)
        try:
            _, err = self._proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            _, err = self._proc.communicate()
        self._proc = None
        if not self._raw.exists():
            emit(f"profile_{self._name}", None, "samples", error=err.decode(errors="replace")[-300:])
            return
        report = summarize_profile(self._raw)
        emit(f"profile_{self._name}", report.get("samples"), "samples", **report)
        for title in ("self_pct", "inclusive_pct"):
            log(f"profile {self._name}, {title}:")
            for frame, pct in report.get(title, [])[:12]:
                log(f"  {pct:5.1f}%  {frame}")


def summarize_profile(raw: Path, top: int = 20) -> dict[str, Any]:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return {"samples": 0}

    def table(counter: collections.Counter[str]) -> list[list[Any]]:
        return [[frame, round(100 * n / total, 1)] for frame, n in counter.most_common(top)]

    return {"samples": total, "raw": str(raw), "self_pct": table(own),
            "inclusive_pct": table(inclusive)}


class Stack:
    """The four processes of one cluster; everything is stopped by ``close``."""

    def __init__(self, root: Path, nodes: int) -> None:
        self.root = root
        self.nodes = nodes
        self.cluster = Cluster(root / "server", command="server",
                               extra_args=("--disable", "kubelet,scheduler,controller-manager"))
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        out = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - lives with the process
        proc = subprocess.Popen([sys.executable, "-m", "pyk8s.cli.main", *args],
                                stdout=out, stderr=subprocess.STDOUT)
        self.procs[name] = proc
        return proc

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.cluster.start()
        self._spawn("controllers", "controller-manager", "--kubeconfig",
                    str(self.cluster.kubeconfig), "--no-leader-elect")
        self._spawn("hollow", "hollow-nodes", "--kubeconfig", str(self.cluster.kubeconfig),
                    "--count", str(self.nodes), "--cpu", "8", "--memory", "32Gi")

    def start_scheduler(self) -> subprocess.Popen[bytes]:
        # -v: its INFO line "scheduler started" tells when its caches are full.
        return self._spawn("scheduler", "-v", "scheduler", "--kubeconfig",
                           str(self.cluster.kubeconfig), "--no-leader-elect")

    async def scheduler_synced(self, timeout: float) -> float:
        """When (monotonic) the scheduler's log says its caches are synced."""
        path = self.root / "scheduler.log"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if b"scheduler started" in path.read_bytes():
                    return time.monotonic()
            await asyncio.sleep(0.02)
        raise TimeoutError("the scheduler never started")

    def pids(self) -> dict[str, int]:
        assert self.cluster.proc is not None
        out = {"server": self.cluster.proc.pid}
        out.update({n: p.pid for n, p in self.procs.items() if p.poll() is None})
        return out

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
        self.cluster.stop()


# -- API helpers -------------------------------------------------------------------------

def pending_pod(name: str, namespace: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": {"bench": "sched"}},
            "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10",
                                     "resources": {"requests": {"cpu": "100m",
                                                                "memory": "128Mi"}}}]}}


async def create_namespace(client: ApiClient, name: str) -> None:
    with contextlib.suppress(ApiError):
        await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                         "metadata": {"name": name}})


async def clear_namespace(client: ApiClient, name: str, timeout: float) -> None:
    """Delete a namespace and wait until it is gone, then let the components settle (the
    scheduler's Event backlog, the terminations): the next figure starts from a cluster
    that holds only what it creates."""
    started = time.monotonic()
    with contextlib.suppress(ApiError):
        await client.delete(NAMESPACES, None, name)
    while time.monotonic() - started < timeout:
        try:
            await client.get(NAMESPACES, None, name)
        except ApiError as exc:
            if exc.code == 404:
                break
            raise
        await asyncio.sleep(0.5)
    log(f"namespace {name} deleted after {time.monotonic() - started:.1f}s")
    await asyncio.sleep(IDLE_SETTLE_S)


async def create_all(client: ApiClient, objs: list[Obj], concurrency: int = 32) -> float:
    started = time.monotonic()
    queue = list(reversed(objs))

    async def worker() -> None:
        while queue:
            obj = queue.pop()
            await client.create(PODS, obj)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.monotonic() - started


async def wait_nodes_ready(client: ApiClient, n: int, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        nodes = (await client.list(NODES, label_selector="type=hollow"))["items"]
        ready = sum(1 for node in nodes if any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (node.get("status") or {}).get("conditions") or []))
        if ready >= n:
            return time.monotonic() - started
        await asyncio.sleep(0.5)
    raise TimeoutError(f"{n} hollow nodes not Ready after {timeout}s")


def _ready(pod: Obj) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or [])


class PodWatch:
    """Follows a namespace's pods from a revision: when each was created, bound and became
    Ready."""

    def __init__(self, client: ApiClient, namespace: str, resource_version: str) -> None:
        self.client = client
        self.namespace = namespace
        self.rv = resource_version
        self.created: dict[str, float] = {}
        self.bound: dict[str, float] = {}
        self.ready: dict[str, float] = {}
        self.changed = asyncio.Event()

    async def run(self) -> None:
        while True:
            try:
                async for event in self.client.watch(PODS, self.namespace, resource_version=self.rv):
                    obj = event["object"]
                    self.rv = obj["metadata"].get("resourceVersion", self.rv)
                    if event["type"] not in ("ADDED", "MODIFIED"):
                        continue
                    name = obj["metadata"]["name"]
                    now = time.monotonic()
                    self.created.setdefault(name, now)
                    if (obj.get("spec") or {}).get("nodeName") and name not in self.bound:
                        self.bound[name] = now
                        self.changed.set()
                    if _ready(obj) and not obj["metadata"].get("deletionTimestamp") \
                            and name not in self.ready:
                        self.ready[name] = now
                        self.changed.set()
            except ApiError as exc:
                log(f"watch ended ({exc.code}): resuming")
                await asyncio.sleep(0.1)

    def timeline(self, started: float) -> dict[str, list[float]]:
        """Seconds after ``started`` by which a quarter, half, three quarters and all of
        the pods seen were created, bound and Ready: where the pipeline waits."""
        out = {}
        for stage, times in (("created", self.created), ("bound", self.bound),
                             ("ready", self.ready)):
            ordered = sorted(times.values())
            out[stage] = [ordered[max(0, int(len(ordered) * q) - 1)] - started
                          for q in (0.25, 0.5, 0.75, 1.0)] if ordered else []
        return out

    async def wait(self, predicate: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("timed out")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(left, 1.0))


# -- benches -----------------------------------------------------------------------------

async def bench_schedule(stack: Stack, client: ApiClient, pods: int, target: float,
                         profiler: Profiler, timeout: float) -> None:
    ns = "bench-sched"
    await create_namespace(client, ns)
    rv = (await client.list(PODS, ns))["metadata"]["resourceVersion"]
    log(f"creating {pods} pending pods")
    create_s = await create_all(client, [pending_pod(f"p-{i:05}", ns) for i in range(pods)])
    log(f"created in {create_s:.2f}s; starting the scheduler")
    watch = PodWatch(client, ns, rv)
    watcher = asyncio.create_task(watch.run())
    started = time.monotonic()
    meter = CpuMeter(stack.pids())
    proc = stack.start_scheduler()
    profiler.start(proc.pid, f"scheduler_{stack.nodes}_nodes", pods / 300 + 8)
    server_profiler = Profiler(profiler.out_dir)
    server_profiler.start(stack.pids()["server"], f"server_schedule_{stack.nodes}_nodes",
                          pods / 300 + 8)
    meter.pids["scheduler"] = proc.pid
    meter.start[1]["scheduler"] = 0.0
    synced = asyncio.create_task(stack.scheduler_synced(timeout))
    try:
        await watch.wait(lambda: len(watch.bound) >= 1, timeout)
        cpu_first = meter.cpu()
        t_first = min(watch.bound.values())
        try:
            await watch.wait(lambda: len(watch.bound) >= pods, timeout)
        except TimeoutError:
            emit("scheduling_pods_per_second", None, "pods/s", f">= {target:g}", False,
                 nodes=stack.nodes, pods=pods, error=f"timed out after {timeout:g}s",
                 bound=len(watch.bound))
            return
        t_last = max(watch.bound.values())
        cpu_last = meter.cpu()
        cores = meter.cores()
        t_synced = await synced
    finally:
        synced.cancel()
        profiler.stop()
        server_profiler.stop()
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    rate = pods / max(t_last - t_synced, 1e-6)
    sched_cpu = cpu_last["scheduler"] - cpu_first["scheduler"]
    emit("scheduling_pods_per_second", rate, "pods/s", f">= {target:g}", rate >= target,
         nodes=stack.nodes, pods=pods, from_process_start=pods / (t_last - started),
         synced_after_start_s=t_synced - started,
         first_binding_after_synced_s=t_first - t_synced,
         first_to_last_binding=(pods - 1) / max(t_last - t_first, 1e-6),
         scheduler_cpu_ms_per_pod=1000 * sched_cpu / max(pods - 1, 1),
         scheduler_cpu_s_total=cpu_last["scheduler"],
         server_cpu_ms_per_pod=1000 * (cpu_last["server"] - cpu_first["server"]) / max(pods - 1, 1),
         create_pods_s=create_s, cpu_cores=cores)


async def bench_deployment(stack: Stack, client: ApiClient, replicas: int,
                           profiler: Profiler, timeout: float, rollout: bool) -> None:
    ns = "bench-deploy"
    await create_namespace(client, ns)
    rv = (await client.list(PODS, ns))["metadata"]["resourceVersion"]
    watch = PodWatch(client, ns, rv)
    watcher = asyncio.create_task(watch.run())
    body = {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "big", "namespace": ns},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "big"}},
                     "template": {"metadata": {"labels": {"app": "big"}}, "spec": {
                         "containers": [{"name": "app", "image": "app:1", "resources": {
                             "requests": {"cpu": "100m", "memory": "128Mi"}}}]}}}}
    try:
        meter = CpuMeter(stack.pids())
        profiler.start(stack.pids()[profiler.process], f"{profiler.process}_deployment",
                       replicas / 200 + 5)
        started = time.monotonic()
        await client.create(DEPLOYMENTS, body)
        try:
            await watch.wait(lambda: len(watch.ready) >= replicas, timeout)
        except TimeoutError:
            emit("deployment_running_seconds", None, "s", "<= 10", False, replicas=replicas,
                 nodes=stack.nodes, error=f"timed out after {timeout:g}s",
                 running=len(watch.ready), bound=len(watch.bound), cpu_seconds=meter.cpu())
            return
        elapsed = max(watch.ready.values()) - started
        cpu = meter.cpu()
        cores = meter.cores()
        profiler.stop()
        bound = sorted(watch.bound.values())
        emit("deployment_running_seconds", elapsed, "s", "<= 10", elapsed <= 10,
             replicas=replicas, nodes=stack.nodes,
             all_bound_s=bound[-1] - started if bound else None,
             first_running_s=min(watch.ready.values()) - started,
             timeline_s=watch.timeline(started),
             cpu_seconds=cpu, scheduler_cpu_ms_per_pod=1000 * cpu.get("scheduler", 0) / replicas,
             cpu_cores=cores)
        if not rollout:
            return
        # Let the status settle, then roll out a new image.
        await wait_rollout(client, ns, replicas, timeout, allow_timeout=True)
        meter = CpuMeter(stack.pids())
        profiler.start(stack.pids()[profiler.process], f"{profiler.process}_rollout",
                       replicas / 100 + 5)
        started = time.monotonic()
        await client.patch(DEPLOYMENTS, ns, "big", {"spec": {"template": {"spec": {
            "containers": [{"name": "app", "image": "app:2"}]}}}}, patch_type="strategic")
        try:
            await wait_rollout(client, ns, replicas, timeout)
        except TimeoutError as exc:
            emit("rollout_seconds", None, "s", "<= 20", False, replicas=replicas,
                 nodes=stack.nodes, error=str(exc), cpu_seconds=meter.cpu())
            return
        elapsed = time.monotonic() - started
        cpu = meter.cpu()
        cores = meter.cores()
        profiler.stop()
        emit("rollout_seconds", elapsed, "s", "<= 20", elapsed <= 20, replicas=replicas,
             nodes=stack.nodes, cpu_seconds=cpu, cpu_cores=cores)
    finally:
        profiler.stop()
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


async def wait_rollout(client: ApiClient, ns: str, replicas: int, timeout: float, *,
                       allow_timeout: bool = False) -> None:
    """``kubectl rollout status``'s condition for a RollingUpdate Deployment."""
    deadline = time.monotonic() + timeout
    s: Obj = {}
    while time.monotonic() < deadline:
        d = await client.get(DEPLOYMENTS, ns, "big")
        s = d.get("status") or {}
        if (s.get("observedGeneration", 0) >= d["metadata"].get("generation", 0)
                and s.get("updatedReplicas", 0) == replicas and s.get("replicas", 0) == replicas
                and s.get("availableReplicas", 0) == replicas):
            return
        await asyncio.sleep(0.1)
    if not allow_timeout:
        raise TimeoutError(f"rollout did not complete in {timeout:g}s: "
                           f"updated={s.get('updatedReplicas')} total={s.get('replicas')} "
                           f"available={s.get('availableReplicas')}")


async def run_cluster(root: Path, nodes: int, args: argparse.Namespace, schedule_pods: int,
                      schedule_target: float, replicas: int, profiler: Profiler) -> None:
    stack = Stack(root, nodes)
    try:
        stack.start()
        client = ApiClient.from_kubeconfig(stack.cluster.kubeconfig, user_agent="cluster-bench")
        try:
            ready = await wait_nodes_ready(client, nodes, timeout=120 + nodes / 50)
            log(f"{nodes} hollow nodes Ready after {ready:.1f}s")
            emit("hollow_nodes_ready_seconds", ready, "s", nodes=nodes)
            if "schedule" in args.only:
                await bench_schedule(stack, client, schedule_pods, schedule_target, profiler,
                                     args.timeout)
                if replicas and ({"deployment", "rollout"} & set(args.only)):
                    await clear_namespace(client, "bench-sched", args.timeout)
            elif replicas:
                # Started and synced before the Deployment's window, as after the
                # schedule bench: its imports and initial lists are not per-pod costs.
                stack.start_scheduler()
                await stack.scheduler_synced(60)
            if replicas and ({"deployment", "rollout"} & set(args.only)):
                await bench_deployment(stack, client, replicas, profiler, args.timeout,
                                       rollout="rollout" in args.only)
            # Idle: once what the runs above left behind (the scheduler's Event backlog,
            # terminating pods) has settled, over one whole Lease renewal interval.
            await asyncio.sleep(IDLE_SETTLE_S)
            meter = CpuMeter(stack.pids())
            await asyncio.sleep(IDLE_WINDOW_S)
            emit("idle_cpu_cores", sum(v for k, v in meter.cores().items()
                                       if k != "other_processes"), "cores", nodes=nodes,
                 cpu_cores=meter.cores())
        finally:
            await client.close()
    finally:
        stack.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a sanity check")
    parser.add_argument("--only", default="schedule,deployment,rollout")
    parser.add_argument("--nodes", default="", help="comma-separated node counts for schedule "
                        "(default 1000,5000; quick 100,500)")
    parser.add_argument("--pods", type=int, default=0, help="pending pods per scheduling run")
    parser.add_argument("--replicas", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--profile", type=Path, default=None, help="py-spy output directory")
    parser.add_argument("--profile-process", default="server",
                        choices=("server", "controllers", "scheduler", "hollow"),
                        help="the process profiled during the deployment and the rollout")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    args.only = {s.strip() for s in args.only.split(",") if s.strip()}
    sizes = [int(n) for n in args.nodes.split(",") if n] or ([100, 500] if args.quick
                                                             else [1000, 5000])
    pods = args.pods or (500 if args.quick else 3000)
    replicas = args.replicas or (300 if args.quick else 3000)
    targets = {1000: 1000.0, 5000: 700.0}
    root = Path(tempfile.mkdtemp(prefix="cluster-bench-"))
    profiler = Profiler(args.profile, args.profile_process)
    def interrupted(*_: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not skip cleanup
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    try:
        for i, nodes in enumerate(sizes):
            # The Deployment runs on the first (1,000-node) cluster, after the scheduling run.
            asyncio.run(run_cluster(root / f"n{nodes}", nodes, args, pods,
                                    targets.get(nodes, 1000.0), replicas if i == 0 else 0,
                                    profiler))
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
