"""Container lifecycle hooks: ``postStart`` and ``preStop`` (upstream
``pkg/kubelet/lifecycle/handlers.go``, ``killContainer`` in kuberuntime_container.go).

A hook is an exec, httpGet or sleep action. ``preStop`` runs before SIGTERM and eats into the
grace period; whatever is left (at least :data:`MINIMUM_GRACE` seconds, as upstream) is what
the container gets between SIGTERM and SIGKILL. A failed ``postStart`` kills the container;
the restart policy decides what happens next.
"""

from __future__ import annotations

from typing import Any

from pyk8s.client.clock import Clock
from pyk8s.kubelet.prober import Kind, ProbeSpec, Result, run_probe
from pyk8s.runtime import Runtime

Obj = dict[str, Any]
MINIMUM_GRACE = 2


def describe(hook: Obj) -> str:
    if "exec" in hook:
        return f"Exec lifecycle hook ({(hook['exec'] or {}).get('command') or []})"
    if "httpGet" in hook:
        return f"HTTP lifecycle hook ({(hook['httpGet'] or {}).get('path') or '/'})"
    return "lifecycle hook"


async def run_hook(hook: Obj, container: Obj, container_id: str, pod_ip: str,
                   runtime: Runtime, timeout: float, clock: Clock) -> str | None:
    """Run one hook; None on success, else what went wrong (for the event)."""
    if "sleep" in hook:
        seconds = float((hook["sleep"] or {}).get("seconds") or 0)
        await clock.sleep(min(seconds, timeout) if timeout > 0 else seconds)
        return None
    if not any(k in hook for k in ("exec", "httpGet")):
        return "unsupported lifecycle hook action"
    spec = ProbeSpec(handler=hook, timeout=max(timeout, 1))
    result, output = await run_probe(spec, container, container_id, pod_ip, runtime)
    return None if result == Result.SUCCESS else output


async def pre_stop(hook: Obj | None, container: Obj, container_id: str, pod_ip: str,
                   runtime: Runtime, grace: float, clock: Clock) -> tuple[float, str | None]:
    """Run ``preStop`` within the grace period; (grace left for SIGTERM, error or None)."""
    error = None
    if hook and grace > 0:
        started = clock.monotonic()
        error = await run_hook(hook, container, container_id, pod_ip, runtime, grace, clock)
        grace -= clock.monotonic() - started
    return max(grace, MINIMUM_GRACE), error


__all__ = ["MINIMUM_GRACE", "Kind", "describe", "pre_stop", "run_hook"]
