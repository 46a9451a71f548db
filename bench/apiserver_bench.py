#!/usr/bin/env python3
"""Benchmarks of the pyk8s API server against the figures the issue sets as targets.

Each figure starts its own real ``pyk8s server`` (``tests.cluster.Cluster``, a child process
on a free port, durable SQLite store in a temporary directory), drives it over HTTPS with
aiohttp using the admin client certificate, prints one JSON object per line on stdout, and
stops the server. Progress goes to stderr. Everything (servers, helper processes, the
temporary directory) is cleaned up on exit, failure, Ctrl-C or SIGTERM.

    .venv/bin/python bench/apiserver_bench.py                    # everything, about a minute
    .venv/bin/python bench/apiserver_bench.py --quick            # small numbers, ~30 s
    .venv/bin/python bench/apiserver_bench.py --only creates,list
    .venv/bin/python bench/apiserver_bench.py --only creates --profile /tmp/prof

Benches (``--only`` names): ready, creates, paced, list, rss, watch, ops. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import math
import multiprocessing as mp
import os
import re
import resource
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, fields, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

if TYPE_CHECKING:
    from tests.cluster import Cluster

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # for ``tests.cluster`` (also in spawned helper processes)
    sys.path.insert(0, str(REPO))

BENCHES = ("ready", "creates", "paced", "list", "rss", "watch", "ops")
PACED_CONNECTIONS = 64
NOISY_OTHER_CORES = 0.25
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
# What kubectl 1.32 sends for ``kubectl get``.
TABLE_ACCEPT = ("application/json;as=Table;v=v1;g=meta.k8s.io,"
                "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")


@dataclass
class Settings:
    clients: int = 16             # concurrent closed-loop clients (creates)
    client_procs: int = 1         # processes the closed-loop clients are spread over
    create_pods: int = 10_000     # creates: stop after this many pods ...
    create_seconds: float = 10.0  # ... or after this long
    paced_rate: float = 500.0     # paced: creates per second, open loop
    paced_seconds: float = 10.0
    list_pods: int = 10_000       # list/rss: pods stored
    list_repeats: int = 5
    watchers: int = 1000
    watch_procs: int = 1          # processes the watchers are spread over
    watch_writes: int = 20
    watch_interval: float = 0.2
    ops_count: int = 2000         # ops: requests of each kind per round
    ops_rounds: int = 3           # ops: rounds (the median is the figure)
    ops_watchers: int = 4         # ops: watches of every pod, lease and node held meanwhile


QUICK = Settings(create_pods=3000, create_seconds=3.0, paced_seconds=3.0, list_pods=2000,
                 list_repeats=3, watchers=200, watch_writes=5, ops_count=500, ops_rounds=2)


# -- small helpers -----------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def emit(figure: str, value: float | None, unit: str, target: str = "",
         met: bool | None = None, **extra: Any) -> None:
    """One figure, one JSON line on stdout."""
    record: dict[str, Any] = {"figure": figure, "value": _round(value), "unit": unit}
    if target:
        record["target"] = target
    if met is not None:
        record["meets_target"] = met
    record.update({k: _round(v) for k, v in extra.items()})
    cpu = extra.get("cpu_cores")
    if isinstance(cpu, dict) and "other_processes" in cpu:
        # Other work on the machine took CPU the server and clients needed: take the figure
        # with a grain of salt (and rerun when the machine is quiet).
        record["noisy"] = cpu["other_processes"] > NOISY_OTHER_CORES
    print(orjson.dumps(record).decode(), flush=True)


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4) if abs(value) < 100 else round(value, 1)
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_round(v) for v in value]
    return value


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def ms_summary(seconds: list[float]) -> dict[str, float]:
    if not seconds:
        return {}
    return {"p50_ms": percentile(seconds, 50) * 1e3, "p90_ms": percentile(seconds, 90) * 1e3,
            "p99_ms": percentile(seconds, 99) * 1e3, "max_ms": max(seconds) * 1e3}


def ssl_context(pki: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    context.load_cert_chain(pki / "admin.crt", pki / "admin.key")
    return context


def client_session(pki: Path, limit: int) -> aiohttp.ClientSession:
    """Keep-alive HTTPS session with the admin certificate; ``limit`` 0 = unlimited."""
    connector = aiohttp.TCPConnector(ssl=ssl_context(pki), limit=limit, limit_per_host=0,
                                     keepalive_timeout=300)
    return aiohttp.ClientSession(connector=connector,
                                 timeout=aiohttp.ClientTimeout(total=None, sock_connect=30))


def run_async(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency of pyk8s
        return asyncio.run(coro)
    return uvloop.run(coro)


def pod_body(name: str) -> bytes:
    return orjson.dumps({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]},
    })


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/<pid>/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields_ = text[text.rindex(")") + 2:].split()
    return (int(fields_[11]) + int(fields_[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU time all cores spent busy (not idle/iowait), from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """Cores used over a window by the server, by the bench's own processes (this one and
    its helpers) and by everything else on the machine (other people's work skews results)."""

    def __init__(self, server_pid: int, bench_pids: list[int]) -> None:
        self.server_pid = server_pid
        self.bench_pids = [os.getpid(), *bench_pids]
        self._start = self._sample()

    def _sample(self) -> tuple[float, float, float, float]:
        bench = 0.0
        for pid in self.bench_pids:
            with contextlib.suppress(OSError):
                bench += cpu_seconds(pid)
        return time.monotonic(), machine_busy_seconds(), cpu_seconds(self.server_pid), bench

    def cores(self) -> dict[str, float]:
        end = self._sample()
        elapsed = end[0] - self._start[0]
        busy, server, bench = (end[i] - self._start[i] for i in (1, 2, 3))
        return {"server": server / elapsed, "bench_clients": bench / elapsed,
                "other_processes": max(0.0, busy - server - bench) / elapsed,
                "machine_cores": float(os.cpu_count() or 0)}


def rss_mib(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak RSS) of a process, in MiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(rest.split()[0]) / 1024
    return out


def recv(conn: Connection, timeout: float, what: str) -> Any:
    if not conn.poll(timeout):
        raise TimeoutError(f"no answer from the {what} process in {timeout:.0f}s")
    message = conn.recv()
    if isinstance(message, dict) and "error" in message:
        raise RuntimeError(f"{what} process failed: {message['error']}")
    return message


@contextlib.contextmanager
def helper_processes(target: Callable[..., None], args_list: list[tuple[Any, ...]],
                     what: str) -> Iterator[tuple[list[Connection], list[int]]]:
    """Spawned helper processes, each with a pipe; always joined or terminated."""
    context = mp.get_context("spawn")
    procs, conns = [], []
    try:
        for args in args_list:
            parent, child = context.Pipe()
            proc = context.Process(target=target, args=(*args, child), daemon=True,
                                   name=f"bench-{what}")
            proc.start()
            child.close()
            procs.append(proc)
            conns.append(parent)
        yield conns, [proc.pid for proc in procs if proc.pid is not None]
        for proc in procs:  # done: they exit by themselves after answering
            proc.join(timeout=10)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for conn in conns:
            conn.close()


class Servers:
    """The servers the benches started, so that all of them are stopped whatever happens."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.live: list[Cluster] = []
        self.count = 0

    def start(self, name: str, data_dir: Path | None = None) -> Cluster:
        from tests.cluster import Cluster

        if data_dir is None:
            self.count += 1
            data_dir = self.root / f"{self.count}-{name}"
        elif (data_dir / "server.log").exists():
            # Cluster.start() looks for "ready at" anywhere in the (appended) log, so a
            # restart must begin with a fresh log or it "is ready" at once.
            (data_dir / "server.log").rename(data_dir / f"server.log.{time.time_ns()}")
        cluster = Cluster(data_dir)
        self.live.append(cluster)
        log(f"starting server {data_dir.name} on {cluster.url}")
        cluster.start()
        return cluster

    def stop(self, cluster: Cluster) -> None:
        cluster.stop()
        if cluster in self.live:
            self.live.remove(cluster)

    def stop_all(self) -> None:
        for cluster in list(self.live):
            try:
                self.stop(cluster)
            except Exception as exc:  # keep stopping the others
                log(f"stopping {cluster.url} failed: {exc}")


def pki_of(cluster: Cluster) -> Path:
    return cluster.data_dir / "pki"


def self_reported_ready(cluster: Cluster) -> float | None:
    found = re.findall(rb"ready at \S+ \(([\d.]+)s\)", cluster.log_path.read_bytes())
    return float(found[-1]) if found else None


async def warm_up(session: aiohttp.ClientSession, url: str, connections: int) -> None:
    """Open ``connections`` keep-alive connections (TLS handshakes off the clock)."""
    async def one() -> None:
        async with session.get(f"{url}/api/v1/namespaces/default") as resp:
            await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"warm-up GET failed: {resp.status} {await resp.text()}")
    await asyncio.gather(*(one() for _ in range(connections)))


async def count_pods(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(f"{url}/api/v1/pods?limit=1", headers=JSON_HEADERS) as resp:
        body = orjson.loads(await resp.read())
    return len(body["items"]) + int(body["metadata"].get("remainingItemCount") or 0)


# -- closed-loop creates (in helper processes) ---------------------------------------------


async def closed_loop(session: aiohttp.ClientSession, url: str, clients: int, total: int,
                      deadline: float, prefix: str) -> dict[str, Any]:
    """``clients`` coroutines POST pods back to back until ``total`` or ``deadline``."""
    latencies: list[float] = []
    issued = 0
    errors = 0
    first_error = ""
    target = f"{url}/api/v1/namespaces/default/pods"

    async def client() -> None:
        nonlocal issued, errors, first_error
        while issued < total and time.monotonic() < deadline:
            name = f"{prefix}-{issued}"
            issued += 1
            body = pod_body(name)
            started = time.monotonic()
            async with session.post(target, data=body, headers=JSON_HEADERS) as resp:
                answer = await resp.read()
                status = resp.status
            if status == 201:
                latencies.append(time.monotonic() - started)
            else:
                errors += 1
                first_error = first_error or f"{status} {answer[:300]!r}"

    await asyncio.gather(*(client() for _ in range(clients)))
    return {"latencies": latencies, "errors": errors, "first_error": first_error,
            "end": time.monotonic()}


def creates_worker(url: str, pki: Path, clients: int, total: int, duration: float, prefix: str,
                   conn: Connection) -> None:
    """Helper process: warm up, say ready, wait for the start time, run, report."""
    async def main() -> dict[str, Any]:
        async with client_session(pki, clients) as session:
            await warm_up(session, url, clients)
            conn.send({"ready": True})
            start_at = await asyncio.get_running_loop().run_in_executor(None, conn.recv)
            await asyncio.sleep(max(0.0, start_at - time.monotonic()))
            return await closed_loop(session, url, clients, total, start_at + duration, prefix)
    try:
        conn.send(run_async(main()))
    except BaseException as exc:
        with contextlib.suppress(Exception):
            conn.send({"error": repr(exc)})
        raise


def run_creates(cluster: Cluster, clients: int, total: int, duration: float, prefix: str,
                procs: int, profile: Path | None = None) -> dict[str, Any]:
    """Closed-loop creates spread over ``procs`` helper processes; merged results."""
    assert cluster.proc is not None
    pid = cluster.proc.pid
    procs = max(1, min(procs, clients))
    args = [(cluster.url, pki_of(cluster), clients // procs + (k < clients % procs),
             total // procs + (k < total % procs), duration, f"{prefix}{k}") for k in range(procs)]
    profiler = None
    with helper_processes(creates_worker, args, "creates") as (conns, pids):
        for conn in conns:
            recv(conn, 120, "creates")
        if profile is not None:
            profiler = start_profiler(pid, duration, profile, "creates")
        start_at = time.monotonic() + 0.2
        for conn in conns:
            conn.send(start_at)
        time.sleep(0.2)
        meter = CpuMeter(pid, pids)
        results = [recv(conn, duration + 300, "creates") for conn in conns]
        cpu = meter.cores()
    latencies = [x for r in results for x in r["latencies"]]
    elapsed = max(r["end"] for r in results) - start_at
    merged = {
        "created": len(latencies), "seconds": elapsed,
        "per_second": len(latencies) / elapsed if elapsed > 0 else 0.0,
        "errors": sum(r["errors"] for r in results),
        "first_error": next((r["first_error"] for r in results if r["first_error"]), ""),
        "latencies": latencies,
        "cpu_cores": cpu,
    }
    finish_profiler(profiler, "creates")
    return merged


def fill_pods(cluster: Cluster, wanted: int, clients: int, procs: int) -> int:
    """Create pods until ``wanted`` are stored; returns how many are stored."""
    async def count() -> int:
        async with client_session(pki_of(cluster), 1) as session:
            return await count_pods(session, cluster.url)
    have = run_async(count())
    if have < wanted:
        log(f"filling: {have} pods stored, creating {wanted - have} more")
        result = run_creates(cluster, clients, wanted - have, 3600.0,
                             f"fill{time.monotonic_ns()}-", procs)
        if result["errors"]:
            raise RuntimeError(f"fill failed: {result['first_error']}")
        have = run_async(count())
    return int(have)


# -- profiling (py-spy) ------------------------------------------------------------------


def start_profiler(pid: int, duration: float, out_dir: Path,
                   name: str) -> tuple[subprocess.Popen[bytes], Path] | None:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        log("py-spy not found (pip install py-spy); not profiling")
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    seconds = max(1, int(duration if math.isfinite(duration) else 10))
    # --gil: only the thread holding the GIL, i.e. where Python CPU time goes (waits for a
    # socket, the queue or fsync are not samples); --nonblocking: do not pause the server.
    command = [py_spy, "record", "--pid", str(pid), "--rate", "250", "--duration", str(seconds),
               "--gil", "--nonblocking", "--function", "--format", "raw",
               "--output", str(out_dir / f"{name}.raw.txt")]
    log(f"profiling: {' '.join(command)}")
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return proc, out_dir / f"{name}.raw.txt"


def finish_profiler(profiler: tuple[subprocess.Popen[bytes], Path] | None,
                    name: str) -> None:
    """Wait for py-spy, then emit ``profile_<name>`` and log the top functions."""
    if profiler is None:
        return
    proc, raw = profiler
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    if proc.returncode != 0 or not raw.exists():
        emit(f"profile_{name}", None, "samples", error=err.decode(errors="replace")[-500:])
        return
    report = summarize_profile(raw)
    emit(f"profile_{name}", report.get("samples"), "samples", **report)
    for title in ("self_pct", "inclusive_pct"):
        log(f"profile of {name}, {title}:")
        for frame, pct in report.get(title, []):
            log(f"  {pct:5.1f}%  {frame}")


def summarize_profile(raw: Path, top: int = 15) -> dict[str, Any]:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
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


# -- benches -----------------------------------------------------------------------------


def bench_ready(servers: Servers, cfg: Settings) -> None:
    """Process start to the first successful ``kubectl get ns``: a first start (PKI is
    generated) and a restart of the same data directory."""
    if shutil.which("kubectl") is None:
        emit("ready_seconds", None, "s", "<= 1", None, error="kubectl is not installed")
        return
    results = {}
    data_dir: Path | None = None
    for phase in ("first_start", "restart"):
        started = time.monotonic()
        cluster = servers.start("ready", data_dir)
        log_seen = time.monotonic() - started
        cluster.kubectl("get", "ns")
        first_kubectl = time.monotonic() - started
        again = time.monotonic()
        cluster.kubectl("get", "ns")
        results[phase] = {"to_first_kubectl_get_ns": first_kubectl,
                          "to_ready_log_line": log_seen,
                          "self_reported": self_reported_ready(cluster),
                          "kubectl_get_ns_warm_cache": time.monotonic() - again}
        data_dir = cluster.data_dir
        servers.stop(cluster)
    value = results["first_start"]["to_first_kubectl_get_ns"]
    emit("ready_seconds", value, "s", "<= 1", value <= 1.0,
         restart=results["restart"]["to_first_kubectl_get_ns"], detail=results)


def bench_creates(servers: Servers, cfg: Settings, profile: Path | None,
                  keep_for_list: bool) -> Cluster | None:
    cluster = servers.start("creates")
    assert cluster.proc is not None
    empty_rss = rss_mib(cluster.proc.pid)
    log(f"creates: {cfg.clients} clients in {cfg.client_procs} process(es), "
        f"up to {cfg.create_pods} pods or {cfg.create_seconds:.0f}s")
    result = run_creates(cluster, cfg.clients, cfg.create_pods, cfg.create_seconds, "c",
                         cfg.client_procs, profile)
    rate = result["per_second"]
    emit("creates_per_second", rate, "1/s", ">= 2000", rate >= 2000,
         clients=cfg.clients, client_processes=cfg.client_procs, created=result["created"],
         seconds=result["seconds"], errors=result["errors"], first_error=result["first_error"],
         **ms_summary(result["latencies"]), cpu_cores=result["cpu_cores"],
         server_cpu_us_per_create=result["cpu_cores"]["server"] * result["seconds"]
         / max(1, result["created"]) * 1e6,
         profiled=profile is not None,
         server_rss_mib_before=empty_rss.get("VmRSS"))
    if keep_for_list:
        return cluster
    servers.stop(cluster)
    return None


def bench_paced(servers: Servers, cfg: Settings) -> None:
    """Open loop: create i is due at t0 + i/rate whatever happened to the earlier ones."""
    cluster = servers.start("paced")
    assert cluster.proc is not None
    pid = cluster.proc.pid
    count = int(cfg.paced_rate * cfg.paced_seconds)
    log(f"paced: {count} creates at {cfg.paced_rate:.0f}/s")

    async def main() -> dict[str, Any]:
        target = f"{cluster.url}/api/v1/namespaces/default/pods"
        from_due: list[float] = []
        from_send: list[float] = []
        lateness: list[float] = []
        errors: list[str] = []
        in_flight = peak = 0
        # A bounded pool, opened beforehand: an unbounded one answers a latency spike with
        # new TLS handshakes (costly for the server) and measures those instead.
        async with client_session(pki_of(cluster), PACED_CONNECTIONS) as session:
            await warm_up(session, cluster.url, PACED_CONNECTIONS)
            for i in range(50):  # the first requests of a process are slower
                async with session.post(target, data=pod_body(f"pwarm-{i}"),
                                        headers=JSON_HEADERS) as resp:
                    await resp.read()

            async def one(i: int, due: float) -> None:
                nonlocal in_flight, peak
                in_flight += 1
                peak = max(peak, in_flight)
                sent = time.monotonic()
                async with session.post(target, data=pod_body(f"p-{i}"),
                                        headers=JSON_HEADERS) as resp:
                    answer = await resp.read()
                    status = resp.status
                done = time.monotonic()
                in_flight -= 1
                if status != 201:
                    errors.append(f"{status} {answer[:300]!r}")
                    return
                from_due.append(done - due)
                from_send.append(done - sent)
                lateness.append(sent - due)

            meter = CpuMeter(pid, [])
            t0 = time.monotonic() + 0.05
            tasks = []
            for i in range(count):
                due = t0 + i / cfg.paced_rate
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(i, due)))
            await asyncio.gather(*tasks)
            elapsed = time.monotonic() - t0
            return {"from_due": from_due, "from_send": from_send, "lateness": lateness,
                    "errors": errors, "elapsed": elapsed, "cpu_cores": meter.cores(),
                    "peak_in_flight": peak}

    try:
        r = run_async(main())
    finally:
        servers.stop(cluster)
    due = ms_summary(r["from_due"])
    p99 = due.get("p99_ms", float("nan"))
    emit("p99_create_latency_ms_at_500_per_s", p99, "ms", "<= 20", p99 <= 20,
         rate=cfg.paced_rate, requests=count, achieved_per_second=len(r["from_due"]) / r["elapsed"],
         errors=len(r["errors"]), first_error=r["errors"][0] if r["errors"] else "",
         from_scheduled_time=due, from_actual_send=ms_summary(r["from_send"]),
         client_send_lateness=ms_summary(r["lateness"]), peak_in_flight=r["peak_in_flight"],
         connections=PACED_CONNECTIONS, cpu_cores=r["cpu_cores"])


def bench_list_rss(servers: Servers, cfg: Settings, which: set[str],
                   cluster: Cluster | None) -> None:
    if cluster is None:
        cluster = servers.start("list")
    assert cluster.proc is not None
    try:
        stored = fill_pods(cluster, cfg.list_pods, cfg.clients, cfg.client_procs)
        rss_after_creates = rss_mib(cluster.proc.pid)
        if "list" in which:
            list_figures(cluster, cfg, stored)
        rss_after_lists = rss_mib(cluster.proc.pid)
        if "rss" in which:
            # A restart holds the same pods without the garbage of having created them.
            servers.stop(cluster)
            started = time.monotonic()
            cluster = servers.start("list", cluster.data_dir)
            restart_ready = time.monotonic() - started
            time.sleep(1.0)
            assert cluster.proc is not None
            rss_restart = rss_mib(cluster.proc.pid)
            value = rss_after_lists["VmRSS"]
            emit("rss_mib_10k_pods", value, "MiB", "<= 200", value <= 200, pods=stored,
                 after_creates=rss_after_creates["VmRSS"], after_lists=value,
                 peak_hwm=rss_after_lists["VmHWM"], after_restart=rss_restart["VmRSS"],
                 restart_ready_seconds=restart_ready,
                 restart_self_reported=self_reported_ready(cluster))
    finally:
        servers.stop(cluster)


def list_figures(cluster: Cluster, cfg: Settings, stored: int) -> None:
    url = cluster.url

    async def timed(session: aiohttp.ClientSession, path: str,
                    accept: str) -> tuple[float, bytes]:
        started = time.monotonic()
        async with session.get(url + path, headers={"Accept": accept}) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"GET {path}: {resp.status} {body[:300]!r}")
        return time.monotonic() - started, body

    async def paged(session: aiohttp.ClientSession) -> tuple[float, int, int]:
        """What ``kubectl get pods -A`` requests: Tables in chunks of 500."""
        started = time.monotonic()
        rows = pages = 0
        token = ""
        while True:
            path = "/api/v1/pods?limit=500" + (f"&continue={token}" if token else "")
            _, body = await timed(session, path, TABLE_ACCEPT)
            page = orjson.loads(body)
            rows += len(page["rows"])
            pages += 1
            token = page["metadata"].get("continue", "")
            if not token:
                return time.monotonic() - started, rows, pages

    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with client_session(pki_of(cluster), 2) as session:
            await warm_up(session, url, 1)
            for form, accept in (("json", "application/json"), ("table", TABLE_ACCEPT)):
                times = []
                body = b""
                for _ in range(cfg.list_repeats):
                    seconds, body = await timed(session, "/api/v1/pods", accept)
                    times.append(seconds)
                parsed = orjson.loads(body)
                out[form] = {"times": times, "bytes": len(body),
                             "items": len(parsed.get("items", parsed.get("rows", [])))}
            out["paged"] = [await paged(session) for _ in range(cfg.list_repeats)]
        return out

    log(f"list: {stored} pods stored")
    r = run_async(main())
    kubectl_times = []
    for _ in range(max(1, min(3, cfg.list_repeats))):
        started = time.monotonic()
        result = cluster.kubectl("get", "pods", "-A", "--no-headers")
        kubectl_times.append(time.monotonic() - started)
        kubectl_rows = len(result.stdout.splitlines())
    median = percentile(r["json"]["times"], 50)
    table = r["table"]
    emit("list_10k_pods_seconds", median, "s", "<= 0.3", median <= 0.3, pods=stored,
         json_times=r["json"]["times"], json_bytes=r["json"]["bytes"], items=r["json"]["items"],
         table_median=percentile(table["times"], 50), table_times=table["times"],
         table_bytes=table["bytes"], table_rows=table["items"],
         table_paged_500_median=percentile([p[0] for p in r["paged"]], 50),
         table_paged_pages=r["paged"][0][2], table_paged_rows=r["paged"][0][1],
         kubectl_get_pods_A_median=percentile(kubectl_times, 50), kubectl_rows=kubectl_rows)


# -- watch fan-out -------------------------------------------------------------------------


def watch_worker(url: str, pki: Path, count: int, resource_version: str, prefix: str,
                 expected: int, grace: float, conn: Connection) -> None:
    """Helper process: hold ``count`` watches; timestamp (CLOCK_MONOTONIC, comparable across
    processes) each event named ``<prefix><i>``; report per write index the receive times."""
    async def main() -> dict[str, Any]:
        received: list[list[float]] = [[] for _ in range(expected)]
        seen = [0] * count
        opened = failed = complete = 0
        first_error = ""
        reader_errors: list[str] = []
        all_open = asyncio.Event()
        all_done = asyncio.Event()
        gate = asyncio.Semaphore(64)  # TLS handshakes in flight
        path = (f"{url}/api/v1/namespaces/default/configmaps?watch=1"
                f"&resourceVersion={resource_version}&timeoutSeconds=3600")

        async def watch(index: int) -> None:
            nonlocal opened, failed, complete, first_error
            try:
                async with gate:
                    resp = await session.get(path, headers={"Accept": "application/json"})
                if resp.status != 200:
                    raise RuntimeError(f"{resp.status} {(await resp.read())[:300]!r}")
            except Exception as exc:
                failed += 1
                first_error = first_error or repr(exc)
                if opened + failed == count:
                    all_open.set()
                return
            opened += 1
            if opened + failed == count:
                all_open.set()
            try:
                while True:
                    line = await resp.content.readline()
                    now = time.monotonic()
                    if not line:
                        return
                    name = orjson.loads(line)["object"]["metadata"].get("name", "")
                    if name.startswith(prefix):
                        received[int(name[len(prefix):])].append(now)
                        seen[index] += 1
                        if seen[index] == expected:
                            complete += 1
                            if complete == count:
                                all_done.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                reader_errors.append(repr(exc))
            finally:
                resp.release()

        async with client_session(pki, 0) as session:
            tasks = [asyncio.create_task(watch(i)) for i in range(count)]
            await all_open.wait()
            conn.send({"opened": opened, "failed": failed, "first_error": first_error})
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # writes done
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(all_done.wait(), grace)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return {"received": received, "complete": complete, "reader_errors": reader_errors}
    try:
        conn.send(run_async(main()))
    except BaseException as exc:
        with contextlib.suppress(Exception):
            conn.send({"error": repr(exc)})
        raise


def bench_watch(servers: Servers, cfg: Settings, profile: Path | None) -> None:
    cluster = servers.start("watch")
    assert cluster.proc is not None
    pid = cluster.proc.pid
    url = cluster.url
    prefix = "fanout-"
    procs = max(1, min(cfg.watch_procs, cfg.watchers))

    async def current_rv() -> str:
        async with client_session(pki_of(cluster), 1) as session, session.get(
                f"{url}/api/v1/namespaces/default/configmaps", headers=JSON_HEADERS) as resp:
            return str(orjson.loads(await resp.read())["metadata"]["resourceVersion"])

    async def writes(pids: list[int]) -> tuple[list[float], list[float], dict[str, float],
                                               float]:
        sent: list[float] = []
        answered: list[float] = []
        async with client_session(pki_of(cluster), 1) as session:
            await warm_up(session, url, 1)
            meter = CpuMeter(pid, pids)
            server_cpu = cpu_seconds(pid)
            t0 = time.monotonic() + 0.1
            for i in range(cfg.watch_writes):
                await asyncio.sleep(max(0.0, t0 + i * cfg.watch_interval - time.monotonic()))
                body = orjson.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                                     "metadata": {"name": f"{prefix}{i}"},
                                     "data": {"sent": str(time.time())}})
                start = time.monotonic()
                async with session.post(f"{url}/api/v1/namespaces/default/configmaps",
                                        data=body, headers=JSON_HEADERS) as resp:
                    answer = await resp.read()
                    if resp.status != 201:
                        raise RuntimeError(f"configmap create: {resp.status} {answer[:300]!r}")
                answered.append(time.monotonic())
                sent.append(start)
            await asyncio.sleep(0.5)
            return sent, answered, meter.cores(), cpu_seconds(pid) - server_cpu

    try:
        rv = run_async(current_rv())
        shares = [cfg.watchers // procs + (k < cfg.watchers % procs) for k in range(procs)]
        args = [(url, pki_of(cluster), n, rv, prefix, cfg.watch_writes, 10.0) for n in shares]
        log(f"watch: opening {cfg.watchers} watches in {procs} process(es)")
        with helper_processes(watch_worker, args, "watch") as (conns, pids):
            started = time.monotonic()
            hellos = [recv(conn, 300, "watch") for conn in conns]
            open_seconds = time.monotonic() - started
            opened = sum(h["opened"] for h in hellos)
            failed = sum(h["failed"] for h in hellos)
            log(f"watch: {opened} open ({failed} failed) in {open_seconds:.1f}s; "
                f"{cfg.watch_writes} writes every {cfg.watch_interval * 1e3:.0f} ms")
            time.sleep(1.0)
            rss_watching = rss_mib(pid)
            profiler = None
            if profile is not None:
                profiler = start_profiler(pid, cfg.watch_writes * cfg.watch_interval + 0.5,
                                          profile, "watch")
            sent, answered, cpu, server_cpu = run_async(writes(pids))
            finish_profiler(profiler, "watch")
            for conn in conns:
                conn.send("done")
            reports = [recv(conn, 120, "watch") for conn in conns]
    finally:
        servers.stop(cluster)
    delays: list[float] = []
    from_send: list[float] = []
    last_per_write: list[float] = []
    for i in range(cfg.watch_writes):
        times = [t for rep in reports for t in rep["received"][i]]
        delays.extend(t - answered[i] for t in times)
        from_send.extend(t - sent[i] for t in times)
        if times:
            last_per_write.append(max(times) - answered[i])
    expected = opened * cfg.watch_writes
    summary = ms_summary(delays)
    p99 = summary.get("p99_ms", float("nan"))
    emit("watch_fanout", p99, "ms (p99, POST response -> watcher receives)", "<= 100",
         p99 <= 100 if delays else False, watchers=cfg.watchers, watcher_processes=procs,
         opened=opened, failed=failed, first_error=next(
             (h["first_error"] for h in hellos if h["first_error"]), ""),
         reader_errors=sum(len(r["reader_errors"]) for r in reports),
         first_reader_error=next((r["reader_errors"][0] for r in reports if r["reader_errors"]), ""),
         writes=cfg.watch_writes, events_expected=expected, events_received=len(delays),
         missed=expected - len(delays), **summary, min_ms=min(delays) * 1e3 if delays else None,
         from_post_sent=ms_summary(from_send), last_watcher_per_write=ms_summary(last_per_write),
         open_seconds=open_seconds, server_rss_mib_watching=rss_watching.get("VmRSS"),
         cpu_cores=cpu, server_cpu_ms_per_write=server_cpu / cfg.watch_writes * 1e3,
         server_cpu_us_per_delivered_event=server_cpu / max(1, len(delays)) * 1e6)


# -- per-request CPU of what a scheduled pod costs ---------------------------------------

OPS = ("create", "binding", "event", "pod_status", "lease", "node_status")
OPS_NODES = 100
OPS_CONCURRENCY = 8  # requests in flight; the components allowed 8 until 2026-11-28 (now 64), kept for comparable figures


def _ops_requests(kind: str, round_: int, count: int) -> list[tuple[str, str, bytes, str]]:
    """(method, path, body, content type) of ``count`` requests of one kind, shaped as the
    scheduler, the controllers and the hollow nodes send them."""
    from datetime import UTC, datetime, timedelta

    from pyk8s.hollow import objects as hollow

    now = datetime.now(UTC) + timedelta(hours=round_)
    ns = "/api/v1/namespaces/bench-ops"
    merge = "application/merge-patch+json"
    out = []
    for i in range(count):
        pod = f"r{round_}-{i:05}"
        node = f"ops-{i % OPS_NODES}"
        if kind == "create":
            body = {"apiVersion": "v1", "kind": "Pod", "metadata": {
                "name": pod, "labels": {"app": "ops"}, "ownerReferences": [{
                    "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "ops",
                    "uid": "00000000-0000-0000-0000-000000000001", "controller": True,
                    "blockOwnerDeletion": True}]},
                "spec": {"containers": [{"name": "app", "image": "app:1", "resources": {
                    "requests": {"cpu": "100m", "memory": "128Mi"}}}]}}
            out.append(("POST", f"{ns}/pods", orjson.dumps(body), "application/json"))
        elif kind == "binding":
            body = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
            out.append(("POST", f"{ns}/pods/{pod}/binding", orjson.dumps(body),
                        "application/json"))
        elif kind == "event":
            stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
            body = {"apiVersion": "v1", "kind": "Event",
                    "metadata": {"name": f"{pod}.{round_:04}{i:012x}", "namespace": "bench-ops"},
                    "involvedObject": {"apiVersion": "v1", "kind": "Pod",
                                       "namespace": "bench-ops", "name": pod,
                                       "uid": "00000000-0000-0000-0000-000000000002",
                                       "resourceVersion": "1"},
                    "reason": "Scheduled", "type": "Normal",
                    "message": f"Successfully assigned bench-ops/{pod} to {node}",
                    "source": {"component": "default-scheduler"},
                    "reportingComponent": "default-scheduler", "reportingInstance": "bench",
                    "action": "Binding", "firstTimestamp": stamp, "lastTimestamp": stamp,
                    "count": 1}
            out.append(("POST", f"{ns}/events", orjson.dumps(body), "application/json"))
        elif kind == "pod_status":
            fake = {"metadata": {"uid": "00000000-0000-0000-0000-000000000003"},
                    "spec": {"containers": [{"name": "app", "image": "app:1"}]},
                    "status": {"conditions": [{"type": "PodScheduled", "status": "True",
                                               "lastProbeTime": None,
                                               "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}
            status = hollow.running_status(fake, hollow.node_ip(i % OPS_NODES),
                                           f"10.64.0.{i % 250 + 2}", now)
            out.append(("PATCH", f"{ns}/pods/{pod}/status", orjson.dumps({"status": status}),
                        merge))
        elif kind == "lease":  # every renewal a new time, or most would be no-ops
            spec = hollow.lease_spec(node, 40, now + timedelta(microseconds=i))
            out.append(("PATCH", f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/"
                                 f"leases/{node}", orjson.dumps({"spec": spec}), merge))
        elif kind == "node_status":
            body = {"status": {"conditions": hollow.node_conditions(now + timedelta(seconds=i),
                                                                    now)}}
            out.append(("PATCH", f"/api/v1/nodes/{node}/status", orjson.dumps(body), merge))
    return out


async def _ops_setup(session: aiohttp.ClientSession, url: str) -> None:
    from datetime import UTC, datetime

    from pyk8s.hollow import objects as hollow
    from pyk8s.hollow.settings import HollowNodeSettings

    async def post(path: str, body: Any) -> None:
        async with session.post(url + path, data=orjson.dumps(body), headers=JSON_HEADERS) as r:
            if r.status not in (201, 409):
                raise RuntimeError(f"setup POST {path}: {r.status} {(await r.read())[:300]!r}")

    await post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                      "metadata": {"name": "bench-ops"}})
    settings = HollowNodeSettings(prefix="ops")
    now = datetime.now(UTC)
    for i in range(OPS_NODES):
        await post("/api/v1/nodes", hollow.node_object(settings, i, now))
        await post("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                   hollow.lease_object(f"ops-{i}", 40, now))


async def _ops_watch(session: aiohttp.ClientSession, url: str, path: str,
                     seen: list[int]) -> None:
    async with session.get(f"{url}{path}?watch=1&resourceVersion=0",
                           timeout=aiohttp.ClientTimeout(total=None)) as resp:
        async for _line in resp.content:
            seen[0] += 1


def bench_ops(servers: Servers, cfg: Settings, profile: Path | None) -> None:
    """Server CPU per request of each kind a scheduled pod costs, with watchers attached:
    ``ops_watchers`` watches of all pods, of leases and of nodes (as the scheduler, the
    controller manager and the hollow nodes hold them), read in this process."""
    cluster = servers.start("ops")
    assert cluster.proc is not None
    pid = cluster.proc.pid
    log(f"ops: {cfg.ops_count} requests per kind x {cfg.ops_rounds} rounds, "
        f"{cfg.ops_watchers} watchers each of pods, leases and nodes")

    async def main() -> dict[str, list[dict[str, float]]]:
        results: dict[str, list[dict[str, float]]] = {k: [] for k in OPS}
        async with client_session(pki_of(cluster), 0) as session:
            url = cluster.url
            await _ops_setup(session, url)
            seen = [0]
            watches = [asyncio.create_task(_ops_watch(session, url, path, seen))
                       for path in ("/api/v1/pods", "/apis/coordination.k8s.io/v1/leases",
                                    "/api/v1/nodes") for _ in range(cfg.ops_watchers)]
            await warm_up(session, url, OPS_CONCURRENCY)
            await asyncio.sleep(0.5)
            profiler = None
            try:
                for round_ in range(cfg.ops_rounds):
                    for kind in OPS:
                        requests = _ops_requests(kind, round_, cfg.ops_count)
                        if profile is not None and round_ == cfg.ops_rounds - 1:
                            profiler = start_profiler(pid, 30, profile, f"ops_{kind}")
                        results[kind].append(await _ops_round(session, url, pid, requests))
                        if profiler is not None:
                            profiler[0].send_signal(signal.SIGINT)
                            finish_profiler(profiler, f"ops_{kind}")
                            profiler = None
            finally:
                for task in watches:
                    task.cancel()
                await asyncio.gather(*watches, return_exceptions=True)
        return results

    results = run_async(main())
    servers.stop(cluster)
    for kind, rounds in results.items():
        per_op = sorted(r["server_cpu_us"] for r in rounds)
        value = per_op[len(per_op) // 2]
        emit(f"ops_{kind}_server_cpu_us", value, "us", rounds=per_op,
             per_second=[r["per_second"] for r in rounds],
             other_processes_cores=[r["other_cores"] for r in rounds])


async def _ops_round(session: aiohttp.ClientSession, url: str, pid: int,
                     requests: list[tuple[str, str, bytes, str]]) -> dict[str, float]:
    queue = list(reversed(requests))
    failures: list[str] = []

    async def worker() -> None:
        while queue:
            method, path, body, ctype = queue.pop()
            async with session.request(method, url + path, data=body, headers={
                    "Content-Type": ctype, "Accept": "application/json"}) as resp:
                answer = await resp.read()
                if resp.status >= 300 and not failures:
                    failures.append(f"{method} {path}: {resp.status} {answer[:300]!r}")

    await asyncio.sleep(0.3)  # the previous round's watch events are delivered
    meter = CpuMeter(pid, [])
    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(OPS_CONCURRENCY)))
    elapsed = time.monotonic() - started
    await asyncio.sleep(0.3)  # fan-out of the last writes is counted too
    cores = meter.cores()
    if failures:
        raise RuntimeError(failures[0])
    window = elapsed + 0.3
    return {"server_cpu_us": cores["server"] * window / len(requests) * 1e6,
            "per_second": len(requests) / elapsed, "other_cores": cores["other_processes"]}


# -- main --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, Settings]:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small numbers, ~30 s in all")
    parser.add_argument("--only", default=",".join(BENCHES),
                        help=f"comma-separated benches (default all): {','.join(BENCHES)}")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="py-spy the server during the creates and watch benches; "
                             "raw stacks into DIR (see README)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    for field in fields(Settings):
        parser.add_argument("--" + field.name.replace("_", "-"), type=type(field.default),
                            default=None, help=f"default {field.default} ({QUICK.__dict__[field.name]} with --quick)")
    args = parser.parse_args(argv)
    cfg = replace(QUICK) if args.quick else Settings()
    for field in fields(Settings):
        value = getattr(args, field.name)
        if value is not None:
            setattr(cfg, field.name, value)
    unknown = set(args.only.split(",")) - set(BENCHES)
    if unknown:
        parser.error(f"unknown bench(es) {', '.join(sorted(unknown))}; known: {', '.join(BENCHES)}")
    return args, cfg


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args, cfg = parse_args(argv)
    which = set(args.only.split(","))
    signal.signal(signal.SIGTERM, _terminate)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, 4 * cfg.watchers + 1024) if hard != resource.RLIM_INFINITY else 4 * cfg.watchers + 1024
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    root = Path(tempfile.mkdtemp(prefix="pyk8s-bench-"))
    servers = Servers(root)
    started = time.monotonic()
    status = 0
    try:
        log(f"settings {cfg}; temporary directory {root}")
        if "ready" in which:
            bench_ready(servers, cfg)
        kept = None
        if "creates" in which:
            kept = bench_creates(servers, cfg, args.profile,
                                 keep_for_list=bool(which & {"list", "rss"}))
        if which & {"list", "rss"}:
            bench_list_rss(servers, cfg, which, kept)
        if "paced" in which:
            bench_paced(servers, cfg)
        if "watch" in which:
            bench_watch(servers, cfg, args.profile)
        if "ops" in which:
            bench_ops(servers, cfg, args.profile)
    except KeyboardInterrupt:
        log("interrupted")
        status = 130
    except Exception as exc:
        log(f"failed: {exc!r}")
        for cluster in servers.live:
            with contextlib.suppress(OSError):
                log(f"{cluster.log_path} (tail):\n{cluster.log_path.read_text()[-2000:]}")
        status = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip cleanup
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        servers.stop_all()
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        log(f"done in {time.monotonic() - started:.0f}s")
    return status


if __name__ == "__main__":
    sys.exit(main())
