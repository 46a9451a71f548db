"""The pod printer: upstream's ``printPod``, the most intricate row kubectl shows.

STATUS is not ``status.phase`` but a summary that walks init containers first (``Init:1/3``,
``Init:CrashLoopBackOff``), then the app containers from last to first (so the first
container's waiting or terminated reason wins), and finally deletion (``Terminating``).
RESTARTS counts only what is relevant at that stage and says when the last restart was
(``3 (5m ago)``). Sidecars (init containers with ``restartPolicy: Always``) count as
containers in READY and RESTARTS once started.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ._common import (
    AGE_COLUMN,
    NAME_COLUMN,
    NONE,
    Obj,
    age,
    as_int,
    as_map,
    as_str,
    column,
    get,
    maps,
    name_of,
    parse_time,
    since,
)

COLUMNS = (
    NAME_COLUMN,
    column("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
    column("Status", "string", "The aggregate status of the containers in this pod."),
    column(
        "Restarts",
        "string",
        "The number of times the containers in this pod have been restarted and when the last"
        " container in this pod has restarted.",
    ),
    AGE_COLUMN,
    column(
        "IP",
        "string",
        "podIP address allocated to the pod. Routable at least within the cluster. Empty if not"
        " yet allocated.",
        priority=1,
    ),
    column(
        "Node",
        "string",
        "NodeName indicates in which node this pod is scheduled. If empty, this pod is a"
        " candidate for scheduling by the scheduler defined in schedulerName. Once this field is"
        " set, the kubelet for this node becomes responsible for the lifecycle of this pod. This"
        " field should not be used to express a desire for the pod to be scheduled on a specific"
        " node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename",
        priority=1,
    ),
    column(
        "Nominated Node",
        "string",
        "nominatedNodeName is set only when this pod preempts other pods on the node, but it"
        " cannot be scheduled right away as preemption victims receive their graceful"
        " termination periods. This field does not guarantee that the pod will be scheduled on"
        " this node. Scheduler may decide to place the pod elsewhere if other nodes become"
        " available sooner. Scheduler may also decide to give the resources on this node to a"
        " higher priority pod that is created after preemption. As a result, this field may be"
        " different than PodSpec.nodeName when the pod is scheduled.",
        priority=1,
    ),
    column(
        "Readiness Gates",
        "string",
        "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready"
        " when all its containers are ready AND all conditions specified in the readiness gates"
        ' have status equal to "True" More info:'
        " https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates",
        priority=1,
    ),
)

_TERMINAL_PHASES = ("Succeeded", "Failed")
_NODE_LOST = "NodeLost"  # the reason the node lifecycle controller gives unreachable pods


def _is_sidecar(container: Obj | None) -> bool:
    return container is not None and container.get("restartPolicy") == "Always"


def _condition_true(status: Obj, type_: str) -> bool:
    for cond in maps(status.get("conditions")):
        if cond.get("type") == type_:
            return cond.get("status") == "True"
    return False


def _has_ready_condition(status: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in maps(status.get("conditions"))
    )


def _terminated_reason(terminated: Obj, prefix: str) -> str:
    reason = as_str(terminated.get("reason"))
    if reason:
        return prefix + reason
    signal = as_int(terminated.get("signal"))
    if signal != 0:
        return f"{prefix}Signal:{signal}"
    return f"{prefix}ExitCode:{as_int(terminated.get('exitCode'))}"


def _last_finished(container_status: Obj) -> datetime | None:
    return parse_time(get(container_status, "lastState", "terminated", "finishedAt"))


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _readiness_gates(spec: Obj, status: Obj) -> str:
    gates = maps(spec.get("readinessGates"))
    if not gates:
        return NONE
    conditions = maps(status.get("conditions"))
    satisfied = 0
    for gate in gates:
        for cond in conditions:
            if cond.get("type") == gate.get("conditionType"):
                if cond.get("status") == "True":
                    satisfied += 1
                break
    return f"{satisfied}/{len(gates)}"


def _pod_ip(status: Obj) -> str:
    # The v1→internal conversion makes podIP authoritative over podIPs[0].
    ip = as_str(status.get("podIP"))
    if not ip:
        ips = maps(status.get("podIPs"))
        ip = as_str(ips[0].get("ip")) if ips else ""
    return ip or NONE


def cells(pod: Obj, now: datetime) -> list[Any]:
    spec = as_map(pod.get("spec"))
    status = as_map(pod.get("status"))
    phase = as_str(status.get("phase"))
    reason = as_str(status.get("reason")) or phase
    for cond in maps(status.get("conditions")):
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    init_specs = maps(spec.get("initContainers"))
    init_by_name = {as_str(c.get("name")): c for c in init_specs}
    total = len(maps(spec.get("containers"))) + sum(1 for c in init_specs if _is_sidecar(c))
    ready = 0
    restarts = 0
    sidecar_restarts = 0
    last_restart: datetime | None = None
    last_sidecar_restart: datetime | None = None

    initializing = False
    for index, cs in enumerate(maps(status.get("initContainerStatuses"))):
        count = as_int(cs.get("restartCount"))
        finished = _last_finished(cs)
        restarts += count
        last_restart = _later(last_restart, finished)
        sidecar = _is_sidecar(init_by_name.get(as_str(cs.get("name"))))
        if sidecar:
            sidecar_restarts += count
            last_sidecar_restart = _later(last_sidecar_restart, finished)
        state = as_map(cs.get("state"))
        terminated = state.get("terminated")
        waiting = state.get("waiting")
        if isinstance(terminated, Mapping) and as_int(terminated.get("exitCode")) == 0:
            continue
        if sidecar and cs.get("started") is True:
            if cs.get("ready") is True:
                ready += 1
            continue
        if isinstance(terminated, Mapping):
            reason = _terminated_reason(terminated, "Init:")
        elif isinstance(waiting, Mapping) and as_str(waiting.get("reason")) not in (
            "",
            "PodInitializing",
        ):
            reason = "Init:" + as_str(waiting.get("reason"))
        else:
            reason = f"Init:{index}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or _condition_true(status, "Initialized"):
        restarts = sidecar_restarts
        last_restart = last_sidecar_restart
        has_running = False
        for cs in reversed(maps(status.get("containerStatuses"))):
            restarts += as_int(cs.get("restartCount"))
            last_restart = _later(last_restart, _last_finished(cs))
            state = as_map(cs.get("state"))
            waiting = state.get("waiting")
            terminated = state.get("terminated")
            if isinstance(waiting, Mapping) and as_str(waiting.get("reason")):
                reason = as_str(waiting.get("reason"))
            elif isinstance(terminated, Mapping):
                reason = _terminated_reason(terminated, "")
            elif cs.get("ready") is True and isinstance(state.get("running"), Mapping):
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if _has_ready_condition(status) else "NotReady"

    deleting = get(pod, "metadata", "deletionTimestamp") is not None
    if deleting and as_str(status.get("reason")) == _NODE_LOST:
        reason = "Unknown"
    elif deleting and phase not in _TERMINAL_PHASES:
        reason = "Terminating"

    restarts_cell = str(restarts)
    if restarts != 0 and last_restart is not None:
        restarts_cell = f"{restarts} ({since(last_restart, now)} ago)"

    return [
        name_of(pod),
        f"{ready}/{total}",
        reason,
        restarts_cell,
        age(pod, now),
        _pod_ip(status),
        as_str(spec.get("nodeName")) or NONE,
        as_str(status.get("nominatedNodeName")) or NONE,
        _readiness_gates(spec, status),
    ]


def conditions(pod: Obj) -> list[dict[str, str]]:
    """Upstream marks rows of finished pods ``Completed`` so clients may de-emphasise them."""
    phase = get(pod, "status", "phase")
    if phase == "Succeeded":
        message = "The pod has completed successfully."
    elif phase == "Failed":
        message = "The pod failed."
    else:
        return []
    return [{"type": "Completed", "status": "True", "reason": phase, "message": message}]
