"""Probe thresholds and timing on a fake clock; real tcp/http probes on loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import pytest

from pyk8s.client.clock import FakeClock
from pyk8s.kubelet.prober import (
    Kind,
    ProbeSpec,
    ProbeState,
    ProbeWorker,
    Result,
    run_probe,
)

S, F = Result.SUCCESS, Result.FAILURE


def spec(**kw: Any) -> ProbeSpec:
    return ProbeSpec(handler={}, **kw)


class TestDefaults:
    def test_upstream_defaults(self) -> None:
        s = ProbeSpec.from_api({"exec": {"command": ["true"]}}, Kind.READINESS)
        assert (s.initial_delay, s.period, s.timeout, s.success_threshold,
                s.failure_threshold) == (0, 10, 1, 1, 3)

    def test_liveness_success_threshold_is_always_one(self) -> None:
        assert ProbeSpec.from_api({"successThreshold": 3}, Kind.LIVENESS).success_threshold == 1

    def test_initial_results(self) -> None:
        assert ProbeState(Kind.READINESS, spec()).result == F
        assert ProbeState(Kind.LIVENESS, spec()).result == S
        assert ProbeState(Kind.STARTUP, spec()).result == Result.UNKNOWN


class TestThresholds:
    def test_failure_reported_after_failure_threshold_in_a_row(self) -> None:
        state = ProbeState(Kind.LIVENESS, spec(failure_threshold=3))
        assert [state.observe(r) for r in (F, F, S, F, F)] == [False] * 5
        assert state.result == S
        assert state.observe(F) is True
        assert state.result == F and state.on_hold

    def test_readiness_needs_success_threshold(self) -> None:
        state = ProbeState(Kind.READINESS, spec(success_threshold=2, failure_threshold=1))
        assert state.observe(S) is False
        assert state.observe(S) is True and state.result == S
        assert state.observe(F) is True and state.result == F
        assert not state.on_hold  # readiness never stops probing


def make_worker(clock: FakeClock, kind: Kind, results: list[Result], s: ProbeSpec,
                startup_done: Callable[[], bool] = lambda: True) -> tuple[ProbeWorker, list[str]]:
    calls: list[str] = []

    async def probe() -> tuple[Result, str]:
        calls.append("probe")
        return (results.pop(0) if results else S), "output"

    worker = ProbeWorker(kind, s, "cid", clock.now(), probe, clock,
                         on_change=lambda: calls.append("change"),
                         on_failure=lambda k, out: calls.append(f"fail:{out}"),
                         startup_done=startup_done)
    return worker, calls


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_worker_waits_initial_delay_then_probes_every_period() -> None:
    async def go() -> None:
        clock = FakeClock()
        worker, calls = make_worker(clock, Kind.READINESS, [S, S],
                                    spec(initial_delay=5, period=10))
        worker.start()
        await settle()
        assert calls == []
        clock.advance(5)
        await settle()
        assert calls == ["probe", "change"] and worker.result == S
        clock.advance(9)
        await settle()
        assert calls.count("probe") == 1
        clock.advance(1)
        await settle()
        assert calls.count("probe") == 2
        worker.stop()
    asyncio.run(go())


def test_liveness_failure_after_threshold_then_on_hold() -> None:
    async def go() -> None:
        clock = FakeClock()
        worker, calls = make_worker(clock, Kind.LIVENESS, [F, F, F, F],
                                    spec(period=1, failure_threshold=3))
        worker.start()
        for _ in range(5):
            await settle()
            clock.advance(1)
        await settle()
        assert worker.result == F
        assert calls.count("probe") == 3  # on hold after the third failure
        assert calls.count("change") == 1 and calls.count("fail:output") == 3
        worker.stop()
    asyncio.run(go())


def test_liveness_waits_for_the_startup_probe() -> None:
    async def go() -> None:
        clock = FakeClock()
        started = False
        worker, calls = make_worker(clock, Kind.LIVENESS, [F], spec(period=1),
                                    startup_done=lambda: started)
        worker.start()
        await settle()
        clock.advance(1)
        await settle()
        assert calls == []
        started = True
        clock.advance(1)
        await settle()
        assert calls == ["probe", "fail:output"]
        worker.stop()
    asyncio.run(go())


class _Runtime:
    """Only what run_probe uses for tcp/http: nothing."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_tcp_probe_refused_and_accepted() -> None:
    async def go() -> None:
        port = free_port()
        s = ProbeSpec.from_api({"tcpSocket": {"port": port}}, Kind.READINESS)
        result, output = await run_probe(s, {}, "cid", "127.0.0.1", _Runtime())  # type: ignore[arg-type]
        assert result == F and output == f"dial tcp 127.0.0.1:{port}: connect: connection refused"
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
        async with server:
            result, _ = await run_probe(s, {}, "cid", "127.0.0.1", _Runtime())  # type: ignore[arg-type]
            assert result == S
    asyncio.run(go())


@pytest.mark.parametrize(("code", "expected"), [(200, S), (302, S), (500, F)])
def test_http_probe_status_codes(code: int, expected: Result) -> None:
    from aiohttp import web

    async def go() -> None:
        async def handler(request: web.Request) -> web.Response:
            assert request.headers["User-Agent"].startswith("kube-probe/")
            if code == 302:
                return web.Response(status=302, headers={"Location": "/ok"})
            return web.Response(status=code)

        async def ok(request: web.Request) -> web.Response:
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_get("/healthz", handler)
        app.router.add_get("/ok", ok)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        try:
            container = {"ports": [{"name": "http", "containerPort": port}]}
            s = ProbeSpec.from_api({"httpGet": {"path": "/healthz", "port": "http"}},
                                   Kind.READINESS)
            result, output = await run_probe(s, container, "cid", "127.0.0.1", _Runtime())  # type: ignore[arg-type]
            assert result == expected
            if expected == F:
                assert output == "HTTP probe failed with statuscode: 500"
        finally:
            await runner.cleanup()
    asyncio.run(go())
