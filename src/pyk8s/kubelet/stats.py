"""Resource usage for ``/stats/summary`` (upstream: the kubelet's Summary API, the source
``metrics-server`` and so ``kubectl top`` read).

Cumulative counters come from the runtime (``container_stats``: cgroup cpuacct/memory as
root, /proc otherwise) and, for the node, from ``/proc/stat`` and ``/proc/meminfo``. A rate
(``usageNanoCores``) needs two samples, so samples are taken on demand and kept: a request
compares with the previous sample when it is recent (at most ``max_age`` old); otherwise it
samples twice, ``min_window`` apart. A container first seen in the later sample is averaged
over its life. Requests closer together than ``min_window`` share one answer. Nothing runs in
the background, so an idle node pays nothing for stats nobody asks for.

The answer is upstream's ``Summary`` shape (``node``, ``pods[].podRef``, ``containers``,
``cpu``/``memory`` blocks) plus ``windowSeconds`` in CPU blocks: the interval the rate is over,
which the API server reports as the metrics' ``window``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyk8s.machinery.meta import rfc3339
from pyk8s.runtime import ContainerState, Runtime, RuntimeOperationError


@dataclass(frozen=True)
class Sample:
    at: float  # monotonic seconds
    cpu_ns: int
    working_set: int
    usage: int


def _ts(moment: datetime) -> str:
    return rfc3339(moment)


def node_sample(proc: Path = Path("/proc"), at: float | None = None) -> Sample:
    """The machine: busy CPU time (all but idle and iowait) and memory in use."""
    fields = (proc / "stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(v) for v in fields]
    busy = sum(ticks) - ticks[3] - (ticks[4] if len(ticks) > 4 else 0)
    cpu_ns = busy * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    mem: dict[str, int] = {}
    for line in (proc / "meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            mem[key] = int(parts[0]) * 1024
    usage = mem.get("MemTotal", 0) - mem.get("MemFree", 0)
    working = max(usage - mem.get("Inactive(file)", 0), 0)
    return Sample(time.monotonic() if at is None else at, cpu_ns, working, usage)


def _cpu_block(now: datetime, current: Sample, previous: Sample | None,
               started: float | None) -> dict[str, Any]:
    block: dict[str, Any] = {"time": _ts(now), "usageCoreNanoSeconds": current.cpu_ns}
    if previous is not None and current.at > previous.at:
        window = current.at - previous.at
        delta = max(current.cpu_ns - previous.cpu_ns, 0)
    elif started is not None and current.at > started:
        window, delta = current.at - started, current.cpu_ns
    else:
        return block
    block["usageNanoCores"] = int(delta / window)
    block["windowSeconds"] = round(window, 3)
    return block


def _memory_block(now: datetime, sample: Sample, total: int = 0) -> dict[str, Any]:
    block: dict[str, Any] = {"time": _ts(now), "usageBytes": sample.usage,
                             "workingSetBytes": sample.working_set}
    if total:
        block["availableBytes"] = max(total - sample.working_set, 0)
    return block


class StatsProvider:
    """``pods()`` returns the pods this node runs (API objects, for names and uids)."""

    def __init__(self, runtime: Runtime, node_name: str, pods: Callable[[], list[dict[str, Any]]],
                 *, min_window: float = 0.5, max_age: float = 30.0,
                 node_sampler: Callable[[], Sample] = node_sample,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.runtime = runtime
        self.node_name = node_name
        self._pods = pods
        self.min_window = min_window
        self.max_age = max_age
        self._node_sampler = node_sampler
        self._sleep = sleep
        self._monotonic = monotonic
        self._node: Sample | None = None
        self._containers: dict[str, Sample] = {}
        self._answer: tuple[float, dict[str, Any]] | None = None
        self._lock = asyncio.Lock()

    async def _sample_containers(self) -> dict[str, tuple[Any, Sample]]:
        out: dict[str, tuple[Any, Sample]] = {}
        for c in await self.runtime.list_containers():
            if c.state != ContainerState.RUNNING:
                continue
            try:
                st = await self.runtime.container_stats(c.id)
            except RuntimeOperationError:
                continue
            out[c.id] = (c, Sample(self._monotonic(), st.cpu_usage_core_nanoseconds,
                                   st.memory_working_set_bytes, st.memory_usage_bytes))
        return out

    async def summary(self) -> dict[str, Any]:
        async with self._lock:
            now = self._monotonic()
            if self._answer is not None and now - self._answer[0] < self.min_window:
                return self._answer[1]
            if self._node is None or now - self._node.at > self.max_age:
                self._node = self._node_sampler()
                self._containers = {cid: s for cid, (_, s) in
                                    (await self._sample_containers()).items()}
                await self._sleep(self.min_window)
            answer = await self._summarise()
            self._answer = (self._monotonic(), answer)
            return answer

    async def _summarise(self) -> dict[str, Any]:
        wall = datetime.now(UTC)
        node = self._node_sampler()
        containers = await self._sample_containers()
        mono_now, wall_now = self._monotonic(), time.time()
        total = _mem_total()
        node_block: dict[str, Any] = {
            "nodeName": self.node_name,
            "cpu": _cpu_block(wall, node, self._node, None),
            "memory": _memory_block(wall, node, total),
        }
        sandboxes = {sb.id: sb for sb in await self.runtime.list_pod_sandboxes()}
        by_uid = {p["metadata"].get("uid"): p for p in self._pods()}
        pods: dict[str, dict[str, Any]] = {}
        for cid, (status, sample) in containers.items():
            sandbox = sandboxes.get(status.sandbox_id)
            if sandbox is None:
                continue
            pod = by_uid.get(sandbox.config.pod_uid)
            meta = pod["metadata"] if pod else {"name": sandbox.config.name,
                                                "namespace": sandbox.config.namespace}
            started = None
            if status.started_at is not None:
                started = mono_now - (wall_now - status.started_at.timestamp())
            entry = pods.setdefault(sandbox.config.pod_uid, {
                "podRef": {"name": meta["name"], "namespace": meta.get("namespace", ""),
                           "uid": sandbox.config.pod_uid},
                "startTime": _ts(sandbox.created_at), "containers": []})
            entry["containers"].append({
                "name": status.name,
                "startTime": _ts(status.started_at or status.created_at),
                "cpu": _cpu_block(wall, sample, self._containers.get(cid), started),
                "memory": _memory_block(wall, sample)})
        for entry in pods.values():
            cs = entry["containers"]
            cpu: dict[str, Any] = {"time": _ts(wall), "usageCoreNanoSeconds": sum(
                c["cpu"]["usageCoreNanoSeconds"] for c in cs)}
            if all("usageNanoCores" in c["cpu"] for c in cs):
                cpu["usageNanoCores"] = sum(c["cpu"]["usageNanoCores"] for c in cs)
            entry["cpu"] = cpu
            entry["memory"] = {"time": _ts(wall),
                               "usageBytes": sum(c["memory"]["usageBytes"] for c in cs),
                               "workingSetBytes": sum(c["memory"]["workingSetBytes"] for c in cs)}
        self._node = node
        self._containers = {cid: s for cid, (_, s) in containers.items()}
        return {"node": node_block, "pods": list(pods.values())}


def _mem_total() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0
