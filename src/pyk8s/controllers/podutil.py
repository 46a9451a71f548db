"""Pod predicates shared by the workload controllers: active, ready, available, and the
order in which a ReplicaSet gives pods up (upstream's ``ActivePodsWithRanks``)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pyk8s.machinery.meta import parse_rfc3339

Obj = dict[str, Any]

DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def is_active(pod: Obj) -> bool:
    """Counts towards a controller's replicas: not terminal and not being deleted."""
    return phase(pod) not in ("Succeeded", "Failed") and not (
        pod.get("metadata") or {}).get("deletionTimestamp")


def condition(obj: Obj, kind: str) -> Obj | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return cond
    return None


def is_ready(pod: Obj) -> bool:
    cond = condition(pod, "Ready")
    return cond is not None and cond.get("status") == "True"


def ready_since(pod: Obj) -> datetime | None:
    cond = condition(pod, "Ready")
    if cond is None or cond.get("status") != "True":
        return None
    return parse_rfc3339(str(cond.get("lastTransitionTime") or ""))


def is_available(pod: Obj, min_ready_seconds: int, now: datetime) -> bool:
    """Ready for at least ``min_ready_seconds`` (upstream's IsPodAvailable)."""
    if not is_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = ready_since(pod)
    return since is not None and (now - since).total_seconds() >= min_ready_seconds


def restart_count(pod: Obj) -> int:
    return sum(int(c.get("restartCount") or 0)
               for c in (pod.get("status") or {}).get("containerStatuses") or [])


def deletion_cost(pod: Obj) -> int:
    """The ``controller.kubernetes.io/pod-deletion-cost`` annotation (0 when absent or bad)."""
    text = ((pod.get("metadata") or {}).get("annotations") or {}).get(DELETION_COST, "0")
    try:
        return int(text)
    except ValueError:
        return 0


def deletion_rank(pod: Obj, colocated: int) -> tuple[Any, ...]:
    """Sort key: pods that sort first are deleted first.

    Upstream's ``ActivePodsWithRanks`` order: unscheduled before scheduled; Pending before
    Unknown before Running; not ready before ready; lower pod-deletion-cost first; more pods
    of the set on the same node first; (both ready) more recently ready first; more restarts
    first; newer (or undated) first.
    """
    ready = is_ready(pod)
    _node, before, after = deletion_rank_parts(pod, ready, ready_since(pod) if ready else None)
    return (*before, -colocated, *after)


def deletion_rank_parts(pod: Obj, ready: bool, since: datetime | None
                        ) -> tuple[str, tuple[Any, ...], tuple[Any, ...]]:
    """:func:`deletion_rank` split around the co-located count, which depends on the other
    pods: (the pod's node, the fields before the count, the fields after it). A controller
    keeps these per pod object and adds the count when it ranks."""
    meta = pod.get("metadata") or {}
    node = str((pod.get("spec") or {}).get("nodeName") or "")
    created = parse_rfc3339(str(meta.get("creationTimestamp") or ""))
    before = (1 if node else 0, PHASE_RANK.get(phase(pod), 0), 1 if ready else 0,
              deletion_cost(pod))
    after = ((1, -since.timestamp()) if since else (0, 0.0), -restart_count(pod),
             (1, -created.timestamp()) if created else (0, 0.0))
    return node, before, after


def pod_factory(template: Obj, namespace: str, name_prefix: str,
                owner_ref: Obj) -> Callable[[], Obj]:
    """``pod_from_template`` for many pods at once: the template is copied once and the
    bodies share that private copy of the spec (they are sent, never changed)."""
    prototype = pod_from_template(template, namespace, name_prefix, owner_ref)
    spec = prototype["spec"]
    meta = prototype["metadata"]

    def body() -> Obj:
        return {"apiVersion": "v1", "kind": "Pod", "metadata": dict(meta), "spec": spec}

    return body


def pod_from_template(template: Obj, namespace: str, name_prefix: str, owner_ref: Obj) -> Obj:
    """A new pod for a controller: the template's labels, annotations, finalizers and spec,
    a generated name ``<prefix>-xxxxx`` and the controller's ownerReference."""
    tmeta = template.get("metadata") or {}
    meta: Obj = {"generateName": f"{name_prefix}-", "namespace": namespace,
                 "ownerReferences": [dict(owner_ref)]}
    for field in ("labels", "annotations"):
        if tmeta.get(field):
            meta[field] = dict(tmeta[field])
    if tmeta.get("finalizers"):
        meta["finalizers"] = list(tmeta["finalizers"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": copy.deepcopy(template.get("spec") or {})}
