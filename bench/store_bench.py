#!/usr/bin/env python3
"""Benchmarks of the state store, and of a real etcd for comparison.

Each figure is one JSON line on stdout (progress goes to stderr):

* ``creates`` / ``updates``: sustained writes per second with ``--writers`` concurrent
  asyncio writers (16, as the API server target assumes), with p50/p99 write latency;
* ``range``: one read of 10,000 keys (1 KiB values by default), p50 and p99 over repeats;
* write figures also give ``bench_cpu_cores`` (this process, which for the SQLite store
  includes the store) and, for etcd, ``server_cpu_cores``, since a shared or small machine
  is often CPU-bound rather than disk-bound;
* ``watch_fanout``: with ``--watchers`` watchers following a prefix while the writers create
  keys, the delay from a write's submission to each watcher receiving its event (p50/p99),
  and the write rate meanwhile.

Targets: the SQLite store in-process on uvloop (``synchronous=FULL``, the default, and
``NORMAL``), and, when the ``etcd`` binary is on PATH (Debian: ``apt-get install
etcd-server``), a single-member etcd started on free loopback ports in a temporary directory
and driven through its HTTP/JSON gRPC gateway with aiohttp: ``put`` is ``/v3/kv/put``;
``creates``/``updates`` are ``/v3/kv/txn`` compare-and-put, which is what kube-apiserver sends.
The etcd client is Python too, so its figures include JSON and HTTP costs on this machine's
CPUs that a Go client over gRPC would not pay.

    .venv/bin/python bench/store_bench.py                 # everything, ~1 minute
    .venv/bin/python bench/store_bench.py --seconds 2     # shorter phases
    .venv/bin/python bench/store_bench.py --only sqlite-full,etcd
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import orjson
import uvloop

REPO = Path(__file__).resolve().parent.parent
if str(REPO / "src") not in sys.path:
    sys.path.insert(0, str(REPO / "src"))

from pyk8s.storage import Store, open_store  # noqa: E402
from pyk8s.storage._sqlite_sql import prefix_end  # noqa: E402

TARGETS = ("sqlite-full", "sqlite-normal", "etcd")


@dataclass(frozen=True)
class Settings:
    seconds: float
    writers: int
    watchers: int
    value_size: int
    range_keys: int
    range_repeats: int


def log(message: str) -> None:
    print(f"[store-bench] {message}", file=sys.stderr, flush=True)


def emit(figure: str, target: str, **fields: Any) -> None:
    record: dict[str, Any] = {"figure": figure, "target": target}
    for name, value in fields.items():
        record[name] = round(value, 3) if isinstance(value, float) else value
    print(orjson.dumps(record).decode(), flush=True)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


class Target(Protocol):
    """What the bench drives: the store contract reduced to what it measures."""

    name: str

    async def create(self, key: str, value: bytes) -> int: ...

    async def update(self, key: str, value: bytes, expected: int) -> int: ...

    async def count_range(self, prefix: str) -> int: ...

    def watch(self, prefix: str) -> AsyncIterator[str]: ...

    def server_cpu(self) -> float | None:
        """CPU seconds used so far by a server in another process (None: in-process)."""
        ...

    async def close(self) -> None: ...


class StoreTarget:
    """A pyk8s store, in-process."""

    def __init__(self, name: str, store: Store) -> None:
        self.name = name
        self.store = store

    async def create(self, key: str, value: bytes) -> int:
        return (await self.store.create(key, value)).mod_revision

    async def update(self, key: str, value: bytes, expected: int) -> int:
        return (await self.store.update(key, value, expected_revision=expected)).mod_revision

    async def count_range(self, prefix: str) -> int:
        return len((await self.store.list(prefix)).kvs)

    async def watch(self, prefix: str) -> AsyncIterator[str]:
        async for event in self.store.watch(prefix, from_revision=0):
            yield event.kv.key

    def server_cpu(self) -> float | None:
        return None

    async def close(self) -> None:
        await self.store.close()


def _b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


class EtcdTarget:
    """An etcd member driven through its JSON gateway (``/v3/...``)."""

    def __init__(
        self, url: str, session: aiohttp.ClientSession, proc: subprocess.Popen[bytes], data_dir: str
    ) -> None:
        self.name = "etcd"
        self.url = url
        self.session = session
        self.proc = proc
        self.data_dir = data_dir

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self.session.post(self.url + path, data=orjson.dumps(body)) as resp:
            payload = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"etcd {path}: {resp.status} {payload[:200]!r}")
            result: dict[str, Any] = orjson.loads(payload)
            return result

    async def put(self, key: str, value: bytes) -> int:
        reply = await self._post("/v3/kv/put", {"key": _b64(key), "value": _b64(value)})
        return int(reply["header"]["revision"])

    async def _txn(self, key: str, value: bytes, compare: dict[str, Any]) -> int:
        reply = await self._post(
            "/v3/kv/txn",
            {
                "compare": [{"key": _b64(key), **compare}],
                "success": [{"request_put": {"key": _b64(key), "value": _b64(value)}}],
            },
        )
        if not reply.get("succeeded"):
            raise RuntimeError(f"etcd txn on {key} did not succeed")
        return int(reply["header"]["revision"])

    async def create(self, key: str, value: bytes) -> int:
        return await self._txn(key, value, {"target": "CREATE", "create_revision": "0"})

    async def update(self, key: str, value: bytes, expected: int) -> int:
        return await self._txn(key, value, {"target": "MOD", "mod_revision": str(expected)})

    async def count_range(self, prefix: str) -> int:
        end = prefix_end(prefix)
        assert end is not None
        reply = await self._post("/v3/kv/range", {"key": _b64(prefix), "range_end": _b64(end)})
        return len(reply.get("kvs", []))

    async def watch(self, prefix: str) -> AsyncIterator[str]:
        end = prefix_end(prefix)
        assert end is not None
        body = {"create_request": {"key": _b64(prefix), "range_end": _b64(end)}}
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self.session.post(
            self.url + "/v3/watch", data=orjson.dumps(body), timeout=timeout
        ) as resp:
            async for line in resp.content:
                if not line.strip():
                    continue
                result = orjson.loads(line).get("result", {})
                for event in result.get("events", []):
                    yield base64.b64decode(event["kv"]["key"]).decode()

    def server_cpu(self) -> float | None:
        try:
            with open(f"/proc/{self.proc.pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def close(self) -> None:
        await self.session.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def start_etcd(binary: str, connections: int) -> EtcdTarget:
    data_dir = tempfile.mkdtemp(prefix="pyk8s-etcd-bench-")
    client, peer = f"http://127.0.0.1:{_free_port()}", f"http://127.0.0.1:{_free_port()}"
    logfile = open(os.path.join(data_dir, "etcd.log"), "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            binary,
            "--name",
            "bench",
            "--data-dir",
            os.path.join(data_dir, "data"),
            "--listen-client-urls",
            client,
            "--advertise-client-urls",
            client,
            "--listen-peer-urls",
            peer,
            "--initial-advertise-peer-urls",
            peer,
            "--initial-cluster",
            f"bench={peer}",
            "--initial-cluster-state",
            "new",
        ],
        stdout=logfile,
        stderr=subprocess.STDOUT,
    )
    logfile.close()
    connector = aiohttp.TCPConnector(limit=connections + 64)
    session = aiohttp.ClientSession(connector=connector)
    target = EtcdTarget(client, session, proc, data_dir)
    deadline = time.monotonic() + 20
    while True:
        try:
            await target.put("/bench-ready", b"")
            return target
        except (aiohttp.ClientError, RuntimeError):
            if proc.poll() is not None or time.monotonic() > deadline:
                await target.close()
                raise RuntimeError("etcd did not start; see its log") from None
            await asyncio.sleep(0.1)


# -- phases ------------------------------------------------------------------------------


@dataclass
class Run:
    ops: int
    seconds: float
    latencies: list[float]
    bench_cpu: float  # CPU seconds of this process (for in-process stores: the store too)
    server_cpu: float | None  # CPU seconds of a separate server process (etcd)


async def sustained(
    target: Target, settings: Settings, write: Callable[[int, int], Awaitable[None]]
) -> Run:
    """Run ``write(writer, i)`` in ``settings.writers`` loops for ``settings.seconds``."""
    latencies: list[float] = []
    deadline = time.perf_counter() + settings.seconds

    async def loop(w: int) -> None:
        i = 0
        while True:
            t0 = time.perf_counter()
            if t0 >= deadline:
                return
            await write(w, i)
            latencies.append(time.perf_counter() - t0)
            i += 1

    server0 = target.server_cpu()
    cpu0 = time.process_time()
    start = time.perf_counter()
    await asyncio.gather(*(loop(w) for w in range(settings.writers)))
    elapsed = time.perf_counter() - start
    server1 = target.server_cpu()
    server = server1 - server0 if server0 is not None and server1 is not None else None
    return Run(len(latencies), elapsed, latencies, time.process_time() - cpu0, server)


def emit_writes(figure: str, target: str, settings: Settings, run: Run) -> None:
    extra = {} if run.server_cpu is None else {"server_cpu_cores": run.server_cpu / run.seconds}
    emit(
        figure,
        target,
        ops_per_s=run.ops / run.seconds,
        ops=run.ops,
        seconds=run.seconds,
        writers=settings.writers,
        p50_ms=percentile(run.latencies, 50) * 1000,
        p99_ms=percentile(run.latencies, 99) * 1000,
        value_bytes=settings.value_size,
        bench_cpu_cores=run.bench_cpu / run.seconds,
        **extra,
    )


async def bench_writes(target: Target, settings: Settings) -> None:
    value = os.urandom(settings.value_size)
    log(f"{target.name}: creates for {settings.seconds}s")
    revisions: dict[tuple[int, int], int] = {}

    async def create(w: int, i: int) -> None:
        revisions[w, i] = await target.create(f"/bench/c/{w:02d}/{i:08d}", value)

    emit_writes("creates", target.name, settings, await sustained(target, settings, create))

    log(f"{target.name}: updates for {settings.seconds}s")
    per_writer = 64
    current = {
        (w, i): revisions[w, i]
        for w in range(settings.writers)
        for i in range(per_writer)
        if (w, i) in revisions
    }

    async def update(w: int, i: int) -> None:
        slot = (w, i % per_writer)
        if slot not in current:
            current[slot] = await target.create(f"/bench/c/{w:02d}/{slot[1]:08d}", value)
            return
        current[slot] = await target.update(f"/bench/c/{w:02d}/{slot[1]:08d}", value, current[slot])

    emit_writes("updates", target.name, settings, await sustained(target, settings, update))

    if isinstance(target, EtcdTarget):
        log(f"{target.name}: puts for {settings.seconds}s")

        async def put(w: int, i: int) -> None:
            await target.put(f"/bench/p/{w:02d}/{i:08d}", value)

        emit_writes("puts", target.name, settings, await sustained(target, settings, put))


async def bench_range(target: Target, settings: Settings) -> None:
    value = os.urandom(settings.value_size)
    n = settings.range_keys
    log(f"{target.name}: loading {n} keys for the range read")
    sem = asyncio.Semaphore(settings.writers)

    async def create(i: int) -> None:
        async with sem:
            await target.create(f"/bench/r/{i:08d}", value)

    await asyncio.gather(*(create(i) for i in range(n)))
    timings = []
    for _ in range(settings.range_repeats):
        t0 = time.perf_counter()
        got = await target.count_range("/bench/r/")
        timings.append(time.perf_counter() - t0)
        assert got == n, f"range returned {got} keys, expected {n}"
    emit(
        "range",
        target.name,
        keys=n,
        value_bytes=settings.value_size,
        p50_ms=percentile(timings, 50) * 1000,
        p99_ms=percentile(timings, 99) * 1000,
        keys_per_s=n / percentile(timings, 50),
        repeats=len(timings),
    )


async def bench_watch(target: Target, settings: Settings) -> None:
    value = os.urandom(settings.value_size)
    log(f"{target.name}: {settings.watchers} watchers, creates for {settings.seconds}s")
    submitted: dict[str, float] = {}
    delays: list[float] = []
    received = [0] * settings.watchers
    ready = [asyncio.Event() for _ in range(settings.watchers)]

    async def follow(n: int) -> None:
        stream = target.watch("/bench/w/")
        with contextlib.suppress(asyncio.CancelledError):
            async for key in _announce(stream, ready[n]):
                delays.append(time.perf_counter() - submitted[key])
                received[n] += 1

    followers = [asyncio.ensure_future(follow(n)) for n in range(settings.watchers)]
    # The watches are live once a marker write has reached every one of them.
    for m in range(300):
        await target.create(f"/bench/w/marker/{m}", b"")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in ready)), 0.1)
            break
    else:
        raise RuntimeError("watches did not start")
    await asyncio.sleep(0.2)
    delays.clear()
    received[:] = [0] * settings.watchers

    async def create(w: int, i: int) -> None:
        key = f"/bench/w/{w:02d}/{i:08d}"
        submitted[key] = time.perf_counter()
        await target.create(key, value)

    run = await sustained(target, settings, create)
    ops = run.ops
    drain_deadline = time.perf_counter() + 10
    while sum(received) < ops * settings.watchers and time.perf_counter() < drain_deadline:
        await asyncio.sleep(0.01)
    for task in followers:
        task.cancel()
    await asyncio.gather(*followers, return_exceptions=True)
    emit(
        "watch_fanout",
        target.name,
        watchers=settings.watchers,
        writers=settings.writers,
        writes_per_s=ops / run.seconds,
        events_expected=ops * settings.watchers,
        events_received=sum(received),
        delay_p50_ms=percentile(delays, 50) * 1000,
        delay_p99_ms=percentile(delays, 99) * 1000,
        write_p50_ms=percentile(run.latencies, 50) * 1000,
    )


async def _announce(stream: AsyncIterator[str], ready: asyncio.Event) -> AsyncIterator[str]:
    """Pass keys through; the marker write only sets ``ready``."""
    async for key in stream:
        if key.startswith("/bench/w/marker/"):
            ready.set()
            continue
        yield key


# -- driver ------------------------------------------------------------------------------


async def run_target(name: str, settings: Settings) -> None:
    temp = tempfile.mkdtemp(prefix="pyk8s-store-bench-")
    target: Target
    try:
        if name == "etcd":
            binary = shutil.which("etcd")
            if binary is None:
                emit(
                    "skipped", "etcd", reason="no etcd binary on PATH (apt-get install etcd-server)"
                )
                return
            version = subprocess.run([binary, "--version"], capture_output=True, text=True)
            log(f"starting {version.stdout.splitlines()[0] if version.stdout else binary}")
            target = await start_etcd(binary, settings.writers + settings.watchers)
        else:
            sync = "FULL" if name == "sqlite-full" else "NORMAL"
            store = await open_store(
                f"sqlite://{temp}/state.db", synchronous=sync, compact_interval=0
            )
            target = StoreTarget(name, store)
        try:
            await bench_writes(target, settings)
            await bench_range(target, settings)
            await bench_watch(target, settings)
        finally:
            await target.close()
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each write phase")
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--watchers", type=int, default=10)
    parser.add_argument("--value-size", type=int, default=1024)
    parser.add_argument("--range-keys", type=int, default=10_000)
    parser.add_argument("--range-repeats", type=int, default=10)
    parser.add_argument("--only", default=",".join(TARGETS), help="comma-separated targets")
    args = parser.parse_args()
    settings = Settings(
        args.seconds,
        args.writers,
        args.watchers,
        args.value_size,
        args.range_keys,
        args.range_repeats,
    )
    for name in args.only.split(","):
        if name not in TARGETS:
            parser.error(f"unknown target {name!r}; choose from {', '.join(TARGETS)}")
        uvloop.run(run_target(name, settings))


if __name__ == "__main__":
    main()
