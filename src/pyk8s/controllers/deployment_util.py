"""Pure Deployment arithmetic (upstream ``pkg/controller/deployment/util``).

Everything here is a function of dicts and numbers: the pod-template hash, maxSurge and
maxUnavailable resolution with upstream's rounding, how far the new ReplicaSet may grow,
proportional scaling, revision bookkeeping in annotations, status and conditions. Keeping it
free of I/O is what lets the rollout rules be tested exhaustively without a server.
"""

from __future__ import annotations

import copy
import math
from datetime import datetime, timedelta
from typing import Any

import orjson

from pyk8s.machinery.meta import parse_rfc3339, rfc3339

Obj = dict[str, Any]

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
CHANGE_CAUSE = "kubernetes.io/change-cause"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
ROLLBACK_TO = "deprecated.deployment.rollback.to"
MAX_REV_HISTORY_CHARS = 2000
_NOT_COPIED = frozenset({LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS,
                         MAX_REPLICAS, ROLLBACK_TO})

# Progressing condition reasons, worded as upstream (kubectl and users match on them).
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"

_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


# -- the pod-template hash ---------------------------------------------------------------

def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for byte in data:
        h ^= byte
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def safe_encode(text: str) -> str:
    """apimachinery's ``rand.SafeEncodeString``: no vowels, so no words, no ambiguity."""
    return "".join(_SAFE_ALPHABET[ord(c) % len(_SAFE_ALPHABET)] for c in text)


def template_hash(template: Obj, collision_count: int | None = None) -> str:
    """A stable name suffix for a pod template (upstream hashes a dump of the Go struct
    with FNV-32a; we hash canonical JSON the same way and encode it the same way)."""
    data = orjson.dumps(template, option=orjson.OPT_SORT_KEYS)
    if collision_count is not None:
        data += str(collision_count).encode()
    return safe_encode(str(fnv32a(data)))


def _without_hash(template: Obj) -> Obj:
    t = copy.deepcopy(template or {})
    labels = (t.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
        if not labels:
            t["metadata"].pop("labels")
    meta = t.get("metadata")
    if isinstance(meta, dict) and not meta:
        t.pop("metadata")
    return t


def equal_ignore_hash(a: Obj, b: Obj) -> bool:
    """Templates equal except for the pod-template-hash label."""
    return _without_hash(a) == _without_hash(b)


# -- maxSurge / maxUnavailable -------------------------------------------------------------

def scaled_value(value: Any, total: int, round_up: bool) -> int:
    """intstr's GetScaledValueFromIntOrPercent."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    text = str(value)
    if not text.endswith("%"):
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"invalid value for IntOrString: invalid value {text!r}") from None
    try:
        percent = int(text[:-1])
    except ValueError:
        raise ValueError(f"invalid value for IntOrString: invalid value {text!r}") from None
    exact = percent * total / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def replicas(obj: Obj) -> int:
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def is_rolling(d: Obj) -> bool:
    return ((d.get("spec") or {}).get("strategy") or {}).get("type", "RollingUpdate") != "Recreate"


def fenceposts(d: Obj) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) as numbers; both zero is not allowed, so 1 unavailable."""
    rolling = ((d.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}
    desired = replicas(d)
    surge = scaled_value(rolling.get("maxSurge", "25%"), desired, True)
    unavailable = scaled_value(rolling.get("maxUnavailable", "25%"), desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_surge(d: Obj) -> int:
    return fenceposts(d)[0] if is_rolling(d) else 0


def max_unavailable(d: Obj) -> int:
    desired = replicas(d)
    if not is_rolling(d) or desired == 0:
        return 0
    return min(fenceposts(d)[1], desired)


# -- counting ReplicaSets ------------------------------------------------------------------

def spec_total(sets: list[Obj]) -> int:
    return sum(replicas(rs) for rs in sets if rs is not None)


def status_total(sets: list[Obj], field: str) -> int:
    return sum(int((rs.get("status") or {}).get(field) or 0) for rs in sets if rs is not None)


def active(sets: list[Obj]) -> list[Obj]:
    return [rs for rs in sets if rs is not None and replicas(rs) > 0]


def created_key(rs: Obj) -> tuple[str, str]:
    meta = rs.get("metadata") or {}
    return (str(meta.get("creationTimestamp") or ""), str(meta.get("name") or ""))


def revision(rs: Obj) -> int:
    try:
        return int(((rs.get("metadata") or {}).get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def max_revision(sets: list[Obj]) -> int:
    return max((revision(rs) for rs in sets), default=0)


def new_rs_replicas(d: Obj, all_sets: list[Obj], new_rs_count: int) -> int:
    """How many replicas the new ReplicaSet may have now (upstream NewRSNewReplicas)."""
    desired = replicas(d)
    if not is_rolling(d):
        return desired
    surge, _ = fenceposts(d)
    current = spec_total(all_sets)
    max_total = desired + surge
    if current >= max_total:
        return new_rs_count
    scale_up = min(max_total - current, desired - new_rs_count)
    return new_rs_count + scale_up


def is_saturated(d: Obj, rs: Obj | None) -> bool:
    if rs is None:
        return False
    desired = ((rs.get("metadata") or {}).get("annotations") or {}).get(DESIRED_REPLICAS)
    return (desired == str(replicas(d)) and replicas(rs) == replicas(d)
            and int((rs.get("status") or {}).get("availableReplicas") or 0) == replicas(d))


def find_active_or_latest(new_rs: Obj | None, old_sets: list[Obj]) -> Obj | None:
    if new_rs is None and not old_sets:
        return None
    olds = sorted(old_sets, key=created_key, reverse=True)
    live = active([*olds, new_rs] if new_rs is not None else olds)
    if not live:
        return new_rs if new_rs is not None else olds[0]
    if len(live) == 1:
        return live[0]
    return None


def _round_half_away(x: float) -> int:
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def proportion(rs: Obj, d: Obj, to_add: int, added: int) -> int:
    """This ReplicaSet's share of a scaling event (upstream GetProportion)."""
    size = replicas(rs)
    if size == 0 or to_add == 0 or to_add == added:
        return 0
    if replicas(d) == 0:
        fraction = -size
    else:
        total = replicas(d) + max_surge(d)
        annotated = ((rs.get("metadata") or {}).get("annotations") or {}).get(MAX_REPLICAS)
        try:
            base = int(annotated) if annotated is not None else 0
        except ValueError:
            base = 0
        if base <= 0:
            base = int((d.get("status") or {}).get("replicas") or 0) or size
        fraction = _round_half_away(size * total / base) - size
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def proportional_sizes(d: Obj, sets: list[Obj]) -> tuple[dict[str, int], str]:
    """New sizes for the active ReplicaSets of a rolling Deployment being scaled mid-rollout."""
    live = active(sets)
    allowed = replicas(d) + max_surge(d) if replicas(d) > 0 else 0
    to_add = allowed - spec_total(live)
    op = ""
    if to_add > 0:
        live.sort(key=lambda rs: (-replicas(rs), _neg_created(rs)))
        op = "up"
    elif to_add < 0:
        live.sort(key=lambda rs: (-replicas(rs), created_key(rs)))
        op = "down"
    sizes: dict[str, int] = {}
    added = 0
    for rs in live:
        name = rs["metadata"]["name"]
        if to_add != 0:
            share = proportion(rs, d, to_add, added)
            sizes[name] = replicas(rs) + share
            added += share
        else:
            sizes[name] = replicas(rs)
    if live and to_add != 0:
        first = live[0]["metadata"]["name"]
        sizes[first] = max(sizes[first] + to_add - added, 0)
    return sizes, op


def _neg_created(rs: Obj) -> tuple[float, str]:
    created = parse_rfc3339(created_key(rs)[0])
    return (-(created.timestamp() if created else 0.0), str(rs["metadata"].get("name", "")))


# -- annotations ------------------------------------------------------------------------

def copy_annotations(d: Obj, rs: Obj) -> bool:
    """Copy the deployment's own annotations (change-cause, ...) onto the ReplicaSet."""
    source = (d.get("metadata") or {}).get("annotations") or {}
    target = rs["metadata"].setdefault("annotations", {})
    changed = False
    for k, v in source.items():
        if k in _NOT_COPIED or target.get(k) == v:
            continue
        target[k] = v
        changed = True
    return changed


def set_replicas_annotations(rs: Obj, desired: int, max_replicas: int) -> bool:
    ann = rs["metadata"].setdefault("annotations", {})
    changed = False
    for k, v in ((DESIRED_REPLICAS, str(desired)), (MAX_REPLICAS, str(max_replicas))):
        if ann.get(k) != v:
            ann[k] = v
            changed = True
    return changed


def set_new_rs_annotations(d: Obj, rs: Obj, new_revision: int, exists: bool) -> bool:
    """Upstream SetNewReplicaSetAnnotations: copy annotations, raise the revision, keep the
    revisions a reused (rolled-back-to) ReplicaSet had in ``revision-history``."""
    changed = copy_annotations(d, rs)
    ann = rs["metadata"].setdefault("annotations", {})
    old_text = ann.get(REVISION)
    try:
        old = int(old_text) if old_text is not None else 0
    except ValueError:
        return changed
    if old < new_revision:
        ann[REVISION] = str(new_revision)
        changed = True
        if old_text is not None:
            history = ann.get(REVISION_HISTORY, "")
            revisions = history.split(",") if history else []
            total = len(history) + len(old_text) + 1
            start = 0
            while total > MAX_REV_HISTORY_CHARS and start < len(revisions):
                total -= len(revisions[start]) + 1
                start += 1
            if total <= MAX_REV_HISTORY_CHARS:
                ann[REVISION_HISTORY] = ",".join([*revisions[start:], old_text])
    if not exists and set_replicas_annotations(rs, replicas(d), replicas(d) + max_surge(d)):
        changed = True
    return changed


# -- status and conditions ----------------------------------------------------------------

def get_condition(status: Obj, kind: str) -> Obj | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == kind:
            return cond
    return None


def new_condition(kind: str, status: str, reason: str, message: str, now: datetime) -> Obj:
    stamp = rfc3339(now)
    return {"type": kind, "status": status, "lastUpdateTime": stamp,
            "lastTransitionTime": stamp, "reason": reason, "message": message}


def set_condition(status: Obj, cond: Obj) -> None:
    """Upstream SetDeploymentCondition: same status and reason is no change; same status
    keeps the original transition time."""
    current = get_condition(status, cond["type"])
    if current is not None and current.get("status") == cond["status"] \
            and current.get("reason") == cond["reason"]:
        return
    if current is not None and current.get("status") == cond["status"]:
        cond = {**cond, "lastTransitionTime": current.get("lastTransitionTime")}
    others = [c for c in status.get("conditions") or [] if c.get("type") != cond["type"]]
    status["conditions"] = [*others, cond]


def remove_condition(status: Obj, kind: str) -> None:
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != kind]
    if conditions:
        status["conditions"] = conditions
    else:
        status.pop("conditions", None)


def calculate_status(all_sets: list[Obj], new_rs: Obj | None, d: Obj, now: datetime) -> Obj:
    available = status_total(all_sets, "availableReplicas")
    unavailable = max(spec_total(all_sets) - available, 0)
    old = d.get("status") or {}
    status: Obj = {
        "observedGeneration": int((d.get("metadata") or {}).get("generation") or 0),
        "replicas": status_total(all_sets, "replicas"),
        "updatedReplicas": status_total([new_rs] if new_rs is not None else [], "replicas"),
        "readyReplicas": status_total(all_sets, "readyReplicas"),
        "availableReplicas": available,
        "unavailableReplicas": unavailable,
    }
    if old.get("collisionCount") is not None:
        status["collisionCount"] = old["collisionCount"]
    if old.get("conditions"):
        status["conditions"] = copy.deepcopy(old["conditions"])
    if available >= replicas(d) - max_unavailable(d):
        set_condition(status, new_condition("Available", "True", MIN_AVAILABLE,
                                            "Deployment has minimum availability.", now))
    else:
        set_condition(status, new_condition("Available", "False", MIN_UNAVAILABLE,
                                            "Deployment does not have minimum availability.", now))
    return status


def has_progress_deadline(d: Obj) -> bool:
    deadline = (d.get("spec") or {}).get("progressDeadlineSeconds")
    return deadline is not None and deadline != 2**31 - 1


def deployment_complete(d: Obj, status: Obj) -> bool:
    want = replicas(d)
    return (int(status.get("updatedReplicas") or 0) == want
            and int(status.get("replicas") or 0) == want
            and int(status.get("availableReplicas") or 0) == want
            and int(status.get("observedGeneration") or 0)
            >= int((d.get("metadata") or {}).get("generation") or 0))


def deployment_progressing(d: Obj, status: Obj) -> bool:
    old = d.get("status") or {}

    def g(s: Obj, f: str) -> int:
        return int(s.get(f) or 0)

    return (g(status, "updatedReplicas") > g(old, "updatedReplicas")
            or g(status, "replicas") - g(status, "updatedReplicas")
            < g(old, "replicas") - g(old, "updatedReplicas")
            or g(status, "readyReplicas") > g(old, "readyReplicas")
            or g(status, "availableReplicas") > g(old, "availableReplicas"))


def deadline_at(d: Obj, status: Obj) -> datetime | None:
    """When the Progressing condition in ``status`` times out (None: it cannot)."""
    if not has_progress_deadline(d):
        return None
    cond = get_condition(status, "Progressing")
    if cond is None or cond.get("reason") in (NEW_RS_AVAILABLE, TIMED_OUT):
        return None
    since = parse_rfc3339(str(cond.get("lastUpdateTime") or ""))
    if since is None:
        return None
    return since + timedelta(seconds=int(d["spec"]["progressDeadlineSeconds"]))


def timed_out(d: Obj, status: Obj, now: datetime) -> bool:
    cond = get_condition(status, "Progressing")
    if not has_progress_deadline(d) or cond is None:
        return False
    if cond.get("reason") == TIMED_OUT:
        return True
    at = deadline_at(d, status)
    return at is not None and at < now
