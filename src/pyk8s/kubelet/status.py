"""Pod status from what the runtime reports: container statuses, phase, conditions.

Pure functions, as upstream's ``generateAPIPodStatus``/``convertToAPIContainerStatuses``
(kubelet_pods.go), ``getPhase`` and ``pkg/kubelet/status/generate.go``: given the pod, the
runtime's containers and the probe results, they say what ``pod.status`` must be. Writing it
to the API server (and not writing when nothing changed) is the pod worker's job.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pyk8s.machinery.meta import rfc3339
from pyk8s.runtime import ContainerState, ContainerStatus

Obj = dict[str, Any]

CONTAINER_ID_SCHEME = "process"


@dataclass(frozen=True)
class ContainerView:
    """What the kubelet knows of one container of the spec."""

    name: str
    image: str
    latest: ContainerStatus | None = None
    """The newest runtime container of this name (highest attempt)."""
    previous: ContainerStatus | None = None
    waiting: tuple[str, str] | None = None
    """(reason, message) the worker decided on: CrashLoopBackOff, CreateContainerError, ..."""
    ready: bool = False
    started: bool = False
    restart_count: int = 0


def _time(moment: datetime | None) -> str | None:
    return rfc3339(moment) if moment else None


def terminated_state(c: ContainerStatus, scheme: str = CONTAINER_ID_SCHEME) -> Obj:
    out: Obj = {"exitCode": c.exit_code, "reason": c.reason or ("Completed" if c.exit_code == 0
                                                              else "Error"),
                "startedAt": _time(c.started_at), "finishedAt": _time(c.finished_at),
                "containerID": f"{scheme}://{c.id}"}
    if c.message:
        out["message"] = c.message
    return out


def container_status(view: ContainerView, default_waiting: str = "ContainerCreating",
                     scheme: str = CONTAINER_ID_SCHEME) -> Obj:
    """One entry of ``containerStatuses`` (upstream ``convertContainerStatus``)."""
    latest = view.latest
    out: Obj = {"name": view.name, "image": view.image, "imageID": "",
                "ready": False, "restartCount": view.restart_count, "started": False,
                "state": {}, "lastState": {}}
    if latest is not None:
        out["containerID"] = f"{scheme}://{latest.id}"
        out["imageID"] = latest.image_ref
    if latest is not None and latest.state == ContainerState.RUNNING:
        out["state"] = {"running": {"startedAt": _time(latest.started_at)}}
        out["ready"] = view.ready
        out["started"] = view.started
    elif view.waiting is not None:
        reason, message = view.waiting
        out["state"] = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
        if latest is not None and latest.state == ContainerState.EXITED:
            out["lastState"] = {"terminated": terminated_state(latest, scheme)}
    elif latest is not None and latest.state == ContainerState.EXITED:
        out["state"] = {"terminated": terminated_state(latest, scheme)}
    else:
        out["state"] = {"waiting": {"reason": default_waiting}}
    if not out["lastState"] and view.previous is not None \
            and view.previous.state == ContainerState.EXITED:
        out["lastState"] = {"terminated": terminated_state(view.previous, scheme)}
    return out


def _find(statuses: Iterable[Obj], name: str) -> Obj | None:
    return next((s for s in statuses if s.get("name") == name), None)


def get_phase(spec: Obj, init_statuses: list[Obj], statuses: list[Obj],
              pod_is_terminal: bool) -> str:
    """Upstream ``getPhase`` (kubelet_pods.go), without sidecar init containers."""
    pending_init = failed_init = 0
    for c in spec.get("initContainers") or []:
        s = _find(init_statuses, c["name"])
        state = (s or {}).get("state") or {}
        if s is None or "running" in state:
            pending_init += 1
        elif "terminated" in state:
            if state["terminated"].get("exitCode", 0) != 0:
                failed_init += 1
        elif "waiting" in state:
            last = (s.get("lastState") or {}).get("terminated")
            if last is not None:
                if last.get("exitCode", 0) != 0:
                    failed_init += 1
            else:
                pending_init += 1
        else:
            pending_init += 1
    unknown = running = waiting = stopped = succeeded = 0
    for c in spec.get("containers") or []:
        s = _find(statuses, c["name"])
        state = (s or {}).get("state") or {}
        if s is None:
            unknown += 1
        elif "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            if state["terminated"].get("exitCode", 0) == 0:
                succeeded += 1
        elif "waiting" in state:
            if (s.get("lastState") or {}).get("terminated") is not None:
                stopped += 1
            else:
                waiting += 1
        else:
            unknown += 1
    policy = spec.get("restartPolicy", "Always")
    if failed_init > 0 and policy == "Never":
        return "Failed"
    if pending_init > 0 or waiting > 0:
        return "Pending"
    if running > 0 and unknown == 0:
        return "Running"
    if running == 0 and stopped > 0 and unknown == 0:
        if pod_is_terminal:
            return "Succeeded" if stopped == succeeded else "Failed"
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def _names(names: list[str]) -> str:
    return "[" + " ".join(names) + "]"


def pod_conditions(spec: Obj, phase: str, init_statuses: list[Obj], statuses: list[Obj],
                   sandbox_ready: bool) -> list[Obj]:
    """PodReadyToStartContainers, Initialized, ContainersReady and Ready (upstream
    ``generate.go``), without lastTransitionTime (see :func:`merge_conditions`)."""
    conditions: list[Obj] = [
        {"type": "PodReadyToStartContainers", "status": "True" if sandbox_ready else "False"}]
    incomplete = []
    for c in spec.get("initContainers") or []:
        s = _find(init_statuses, c["name"])
        terminated = ((s or {}).get("state") or {}).get("terminated")
        if terminated is None or terminated.get("exitCode", 0) != 0:
            incomplete.append(c["name"])
    if incomplete and phase not in ("Running", "Succeeded"):
        conditions.append({"type": "Initialized", "status": "False",
                           "reason": "ContainersNotInitialized",
                           "message": f"containers with incomplete status: {_names(incomplete)}"})
    else:
        conditions.append({"type": "Initialized", "status": "True"})

    unknown = [c["name"] for c in spec.get("containers") or [] if _find(statuses, c["name"]) is None]
    unready = [c["name"] for c in spec.get("containers") or []
               if (s := _find(statuses, c["name"])) is not None and not s.get("ready")]
    ready: Obj
    if phase == "Succeeded" and not unknown:
        ready = {"status": "False", "reason": "PodCompleted"}
    elif unknown or unready:
        parts = []
        if unknown:
            parts.append(f"containers with unknown status: {_names(unknown)}")
        if unready:
            parts.append(f"containers with unready status: {_names(unready)}")
        ready = {"status": "False", "reason": "ContainersNotReady", "message": ", ".join(parts)}
    else:
        ready = {"status": "True"}
    conditions.append({"type": "ContainersReady", **ready})
    conditions.append({"type": "Ready", **ready})
    return conditions


OWNED_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready")


def merge_conditions(old: list[Obj], new: list[Obj], now: datetime) -> list[Obj]:
    """The kubelet's conditions replace its own old ones; others' (PodScheduled,
    DisruptionTarget, ...) are kept. ``lastTransitionTime`` moves only when status does."""
    by_type = {c.get("type"): c for c in old}
    out: list[Obj] = []
    for cond in new:
        prev = by_type.get(cond["type"])
        since = rfc3339(now)
        if prev is not None and prev.get("status") == cond["status"]:
            since = prev.get("lastTransitionTime") or since
        out.append({**cond, "lastProbeTime": None, "lastTransitionTime": since})
    ours = {c["type"] for c in new}
    kept = [c for c in old if c.get("type") not in ours]
    if not any(c.get("type") == "PodScheduled" for c in kept):
        kept.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                     "lastTransitionTime": rfc3339(now)})
    order = {t: i for i, t in enumerate(("PodReadyToStartContainers", "Initialized", "Ready",
                                         "ContainersReady", "PodScheduled"))}
    return sorted(kept + out, key=lambda c: order.get(c.get("type", ""), 99))


def restart_needed(policy: str, exit_code: int) -> bool:
    """Should an exited container be started again? (upstream ``ShouldContainerBeRestarted``)"""
    if policy == "Never":
        return False
    if policy == "OnFailure":
        return exit_code != 0
    return True


def latest_by_name(containers: Iterable[ContainerStatus]
                   ) -> Mapping[str, tuple[ContainerStatus, ContainerStatus | None]]:
    """name -> (newest, the one before it), ordered by attempt then creation time."""
    groups: dict[str, list[ContainerStatus]] = {}
    for c in containers:
        groups.setdefault(c.name, []).append(c)
    out = {}
    for name, items in groups.items():
        items.sort(key=lambda c: (c.attempt, c.created_at), reverse=True)
        out[name] = (items[0], items[1] if len(items) > 1 else None)
    return out
