"""Liveness, readiness and startup probes (upstream ``pkg/kubelet/prober``).

Three layers, so the timing logic is testable on a fake clock without processes or sockets:

* :func:`run_probe` performs one probe (exec through the runtime, httpGet with aiohttp,
  tcpSocket) and returns (result, output);
* :class:`ProbeState` applies the thresholds: a result is *reported* only after
  ``successThreshold`` / ``failureThreshold`` consecutive identical outcomes;
* :class:`ProbeWorker` is one asyncio task per (container, probe kind): waits
  ``initialDelaySeconds`` after the container started, probes every ``periodSeconds``, and
  tells the pod worker when the reported result changes. Liveness and readiness wait for the
  startup probe to succeed; a failed liveness/startup probe puts the worker on hold until the
  container is replaced (the pod worker restarts it), as upstream.

Initial results (upstream): readiness Failure, liveness Success, startup Unknown.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp

from pyk8s.client.clock import Clock
from pyk8s.runtime import Runtime, RuntimeOperationError

log = logging.getLogger("pyk8s.kubelet.prober")

Obj = dict[str, Any]
USER_AGENT = "kube-probe/1.32"


class Result(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    UNKNOWN = "unknown"


class Kind(enum.Enum):
    LIVENESS = "liveness"
    READINESS = "readiness"
    STARTUP = "startup"

    @property
    def title(self) -> str:
        return self.value.capitalize()


INITIAL = {Kind.READINESS: Result.FAILURE, Kind.LIVENESS: Result.SUCCESS,
           Kind.STARTUP: Result.UNKNOWN}


@dataclass(frozen=True)
class ProbeSpec:
    """A ``v1.Probe`` with upstream's defaults filled in."""

    handler: Obj
    initial_delay: float = 0
    period: float = 10
    timeout: float = 1
    success_threshold: int = 1
    failure_threshold: int = 3

    @classmethod
    def from_api(cls, probe: Obj, kind: Kind) -> ProbeSpec:
        success = int(probe.get("successThreshold") or 1)
        if kind != Kind.READINESS:
            success = 1  # liveness and startup must use 1 (validation enforces it upstream)
        return cls(handler=probe, initial_delay=float(probe.get("initialDelaySeconds") or 0),
                   period=float(probe.get("periodSeconds") or 10),
                   timeout=float(probe.get("timeoutSeconds") or 1),
                   success_threshold=success,
                   failure_threshold=int(probe.get("failureThreshold") or 3))


def _port(value: Any, container: Obj) -> int:
    """An int, a numeric string, or the name of one of the container's ports."""
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    for p in container.get("ports") or []:
        if p.get("name") == value:
            return int(p["containerPort"])
    raise ValueError(f"unknown port {value!r}")


async def run_probe(spec: ProbeSpec, container: Obj, container_id: str, pod_ip: str,
                    runtime: Runtime) -> tuple[Result, str]:
    """One probe attempt; the output is what the Unhealthy event says on failure."""
    h = spec.handler
    try:
        if "exec" in h:
            command = (h["exec"] or {}).get("command") or []
            res = await runtime.exec_sync(container_id, command, spec.timeout)
            if res.timed_out:
                return Result.FAILURE, f"command {command!r} timed out"
            output = (res.stdout + res.stderr).decode(errors="replace").strip()
            if res.exit_code == 0:
                return Result.SUCCESS, output
            return Result.FAILURE, output or f"command {command!r} exited with {res.exit_code}"
        if "httpGet" in h:
            return await _http(h["httpGet"], container, pod_ip, spec.timeout)
        if "tcpSocket" in h:
            return await _tcp(h["tcpSocket"], container, pod_ip, spec.timeout)
        if "grpc" in h:
            return Result.UNKNOWN, "grpc probes are not supported"
    except RuntimeOperationError as exc:
        return Result.FAILURE, exc.message
    except ValueError as exc:
        return Result.FAILURE, str(exc)
    return Result.UNKNOWN, "the probe has no handler"


async def _http(action: Obj, container: Obj, pod_ip: str, timeout: float) -> tuple[Result, str]:
    scheme = str(action.get("scheme") or "HTTP").lower()
    host = action.get("host") or pod_ip
    port = _port(action.get("port"), container)
    path = action.get("path") or "/"
    if not path.startswith("/"):
        path = "/" + path
    url = f"{scheme}://{host}:{port}{path}"
    headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    for hdr in action.get("httpHeaders") or []:
        headers[hdr.get("name", "")] = hdr.get("value", "")
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session, \
                session.get(url, headers=headers, ssl=False, allow_redirects=True) as resp:
            body = (await resp.content.read(10 * 1024)).decode(errors="replace")
            if 200 <= resp.status < 400:
                return Result.SUCCESS, body
            return Result.FAILURE, f"HTTP probe failed with statuscode: {resp.status}"
    except TimeoutError:
        return Result.FAILURE, (f'Get "{url}": context deadline exceeded '
                                "(Client.Timeout exceeded while awaiting headers)")
    except aiohttp.ClientConnectorError as exc:
        reason = "connection refused" if isinstance(exc.os_error, ConnectionRefusedError) \
            else (exc.os_error.strerror or str(exc.os_error)).lower()
        return Result.FAILURE, f'Get "{url}": dial tcp {host}:{port}: connect: {reason}'
    except aiohttp.ClientError as exc:
        return Result.FAILURE, f'Get "{url}": {exc}'


async def _tcp(action: Obj, container: Obj, pod_ip: str, timeout: float) -> tuple[Result, str]:
    host = action.get("host") or pod_ip
    port = _port(action.get("port"), container)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except TimeoutError:
        return Result.FAILURE, f"dial tcp {host}:{port}: i/o timeout"
    except OSError as exc:
        reason = "connection refused" if isinstance(exc, ConnectionRefusedError) \
            else (exc.strerror or str(exc)).lower()
        return Result.FAILURE, f"dial tcp {host}:{port}: connect: {reason}"
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return Result.SUCCESS, ""


class ProbeState:
    """Thresholds: the reported result changes only after enough consecutive outcomes."""

    def __init__(self, kind: Kind, spec: ProbeSpec) -> None:
        self.kind = kind
        self.spec = spec
        self.result = INITIAL[kind]
        self._last: Result | None = None
        self._run = 0
        self.on_hold = False

    def observe(self, result: Result) -> bool:
        """Record one outcome; True when the reported result changed."""
        if result == Result.UNKNOWN:
            return False
        if result == self._last:
            self._run += 1
        else:
            self._last, self._run = result, 1
        if (result == Result.FAILURE and self._run < self.spec.failure_threshold) or \
                (result == Result.SUCCESS and self._run < self.spec.success_threshold):
            return False
        changed = result != self.result
        self.result = result
        if self.kind in (Kind.LIVENESS, Kind.STARTUP) and result == Result.FAILURE:
            self.on_hold = True  # the container gets restarted; stop probing this one
            self._run = 0
        return changed


ProbeFunc = Callable[[], "asyncio.Future[tuple[Result, str]] | Any"]


class ProbeWorker:
    """Probes one container periodically; see the module docstring."""

    def __init__(self, kind: Kind, spec: ProbeSpec, container_id: str,
                 started_at: datetime | None, probe: ProbeFunc, clock: Clock,
                 on_change: Callable[[], None], on_failure: Callable[[Kind, str], None],
                 startup_done: Callable[[], bool]) -> None:
        self.kind = kind
        self.state = ProbeState(kind, spec)
        self.container_id = container_id
        self.started_at = started_at
        self.probe = probe
        self.clock = clock
        self.on_change = on_change
        self.on_failure = on_failure
        self.startup_done = startup_done
        self.task: asyncio.Task[None] | None = None

    @property
    def result(self) -> Result:
        return self.state.result

    def start(self) -> None:
        self.task = asyncio.create_task(self.run(), name=f"probe-{self.kind.value}")

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()

    async def run(self) -> None:
        spec = self.state.spec
        if spec.initial_delay > 0:
            elapsed = 0.0
            if self.started_at is not None:
                elapsed = max((self.clock.now() - self.started_at).total_seconds(), 0.0)
            if elapsed < spec.initial_delay:
                await self.clock.sleep(spec.initial_delay - elapsed)
        while True:
            await self.do_probe()
            await self.clock.sleep(spec.period)

    async def do_probe(self) -> None:
        if self.state.on_hold:
            return
        if self.kind == Kind.STARTUP and self.state.result == Result.SUCCESS:
            return  # started: the startup probe is done for this container
        if self.kind != Kind.STARTUP and not self.startup_done():
            return
        try:
            result, output = await self.probe()
        except Exception as exc:  # a probe bug must not kill the worker
            log.warning("probe error kind=%s container=%s: %s", self.kind.value,
                        self.container_id[:12], exc)
            return
        if result == Result.FAILURE:
            self.on_failure(self.kind, output)
        if self.state.observe(result):
            self.on_change()
