"""``/stats/summary``: rates from two samples of cumulative counters, on a fake clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pyk8s.kubelet.stats import Sample, StatsProvider, node_sample
from pyk8s.runtime import (
    ContainerState,
    ContainerStats,
    ContainerStatus,
    PodSandbox,
    PodSandboxConfig,
    SandboxState,
)

STARTED = datetime.now(UTC) - timedelta(seconds=100)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


class FakeRuntime:
    """One pod ("default/web", uid u1) with one running container whose CPU counter the
    test advances."""

    def __init__(self) -> None:
        self.cpu_ns = 0
        self.memory = 10 * 1024 * 1024

    async def list_containers(self, sandbox_id: str | None = None) -> list[ContainerStatus]:
        return [ContainerStatus("c1", "s1", "app", 0, ContainerState.RUNNING, "img", "img",
                                STARTED, started_at=STARTED),
                ContainerStatus("c0", "s1", "app", 0, ContainerState.EXITED, "img", "img",
                                STARTED)]

    async def container_stats(self, container_id: str) -> ContainerStats:
        return ContainerStats(container_id, datetime.now(UTC), self.cpu_ns, self.memory,
                              self.memory + 4096)

    async def list_pod_sandboxes(self) -> list[PodSandbox]:
        return [PodSandbox("s1", PodSandboxConfig("u1", "web", "default"), SandboxState.READY,
                           STARTED)]


def provider(runtime: FakeRuntime, clock: Clock, node_cpu: list[int]) -> StatsProvider:
    def sampler() -> Sample:
        return Sample(clock(), node_cpu[0], 500, 800)

    pods = [{"metadata": {"name": "web", "namespace": "default", "uid": "u1"}}]
    return StatsProvider(runtime, "node-1", lambda: pods, min_window=0.5, max_age=30,  # type: ignore[arg-type]
                         node_sampler=sampler, sleep=clock.sleep, monotonic=clock)


def test_first_request_samples_twice_a_window_apart() -> None:
    runtime, clock, node_cpu = FakeRuntime(), Clock(), [0]

    async def scenario() -> None:
        stats = provider(runtime, clock, node_cpu)
        original_sleep = clock.sleep

        async def busy_sleep(seconds: float) -> None:  # work happens during the window
            runtime.cpu_ns += 250_000_000
            node_cpu[0] += 1_000_000_000
            await original_sleep(seconds)

        stats._sleep = busy_sleep
        summary = await stats.summary()
        assert summary["node"]["nodeName"] == "node-1"
        assert summary["node"]["cpu"]["usageNanoCores"] == 2_000_000_000
        assert summary["node"]["cpu"]["windowSeconds"] == 0.5
        (pod,) = summary["pods"]
        assert pod["podRef"] == {"name": "web", "namespace": "default", "uid": "u1"}
        (container,) = pod["containers"]  # the exited one is not reported
        assert container["name"] == "app"
        assert container["cpu"]["usageNanoCores"] == 500_000_000
        assert container["memory"]["workingSetBytes"] == 10 * 1024 * 1024
        assert pod["cpu"]["usageNanoCores"] == 500_000_000

    asyncio.run(scenario())


def test_later_requests_rate_against_the_previous_sample_and_share_close_answers() -> None:
    runtime, clock, node_cpu = FakeRuntime(), Clock(), [0]

    async def scenario() -> None:
        stats = provider(runtime, clock, node_cpu)
        await stats.summary()
        clock.now += 10
        runtime.cpu_ns += 1_000_000_000  # 1 s of CPU over 10 s
        summary = await stats.summary()
        cpu = summary["pods"][0]["containers"][0]["cpu"]
        assert cpu["usageNanoCores"] == 100_000_000 and cpu["windowSeconds"] == 10
        runtime.cpu_ns += 5_000_000_000
        clock.now += 0.1
        assert await stats.summary() is summary  # within min_window: the same answer

    asyncio.run(scenario())


def test_node_sample_reads_proc(tmp_path: Path) -> None:
    (tmp_path / "stat").write_text("cpu  100 0 50 1000 10 0 0 0 0 0\ncpu0 1 2 3 4\n")
    (tmp_path / "meminfo").write_text(
        "MemTotal: 1000 kB\nMemFree: 400 kB\nInactive(file): 100 kB\n")
    sample = node_sample(tmp_path, at=1.0)
    assert sample.usage == 600 * 1024 and sample.working_set == 500 * 1024
    assert sample.cpu_ns > 0
