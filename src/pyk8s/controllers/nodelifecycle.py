"""The node lifecycle controller: notice silent nodes, taint them, evict their pods.

Every ``monitor_period`` it looks at each node (upstream ``pkg/controller/nodelifecycle``):

* **Health.** A node is heard from when its Lease in ``kube-node-lease`` is renewed or its
  Ready condition's heartbeat moves. The time is taken from *our* clock when we notice the
  change (upstream's probe timestamp), so clock skew between machines does not matter. Silent
  for longer than the grace period (40 s; nodes that never reported get the startup grace) →
  its conditions become ``Unknown`` / ``NodeStatusUnknown`` and its pods are marked not ready.
* **Taints.** Ready=Unknown → ``node.kubernetes.io/unreachable`` (NoSchedule and NoExecute);
  Ready=False → ``node.kubernetes.io/not-ready`` (both effects); Ready=True → neither;
  pressure conditions → their NoSchedule taints; ``spec.unschedulable`` →
  ``node.kubernetes.io/unschedulable:NoSchedule``. Other taints are never touched, and a node
  that has never reported Ready keeps what it registered with.
* **Eviction.** A pod on a node with NoExecute taints is deleted at once unless it tolerates
  every one; with tolerations, after the smallest ``tolerationSeconds`` counted from the
  taints' ``timeAdded`` (no ``tolerationSeconds``: never).

It is a periodic pass rather than a work queue, because its input is the passage of time;
all time comes from the injected clock, so tests run it on a fake one.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pyk8s.client import ApiClient, InformerFactory
from pyk8s.client.clock import SYSTEM_CLOCK, Clock
from pyk8s.controllers import indexes, podutil
from pyk8s.controllers.base import Obj, is_deleting, meta
from pyk8s.controllers.events import EventRecorder
from pyk8s.machinery.errors import ApiError
from pyk8s.machinery.meta import parse_rfc3339, rfc3339
from pyk8s.machinery.resources import CATALOGUE

NODES = CATALOGUE.resource("v1", "nodes")
PODS = CATALOGUE.resource("v1", "pods")
LEASES = CATALOGUE.resource("coordination.k8s.io/v1", "leases")
LEASE_NAMESPACE = "kube-node-lease"

UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
# NoSchedule taints that mirror node conditions (upstream nodeConditionToTaintKeyStatusMap).
CONDITION_TAINTS: dict[tuple[str, str], str] = {
    ("Ready", "False"): NOT_READY,
    ("Ready", "Unknown"): UNREACHABLE,
    ("MemoryPressure", "True"): "node.kubernetes.io/memory-pressure",
    ("DiskPressure", "True"): "node.kubernetes.io/disk-pressure",
    ("PIDPressure", "True"): "node.kubernetes.io/pid-pressure",
    ("NetworkUnavailable", "True"): "node.kubernetes.io/network-unavailable",
}
MANAGED_TAINTS = frozenset({*CONDITION_TAINTS.values(), UNSCHEDULABLE})
NODE_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")

log = logging.getLogger("pyk8s.controllers.nodelifecycle")


def tolerates(toleration: Obj, taint: Obj) -> bool:
    """Upstream ``Toleration.ToleratesTaint``."""
    if toleration.get("effect") and toleration.get("effect") != taint.get("effect"):
        return False
    if toleration.get("key") and toleration.get("key") != taint.get("key"):
        return False
    if toleration.get("operator") == "Exists":
        return True
    return (toleration.get("value") or "") == (taint.get("value") or "")


def eviction_time(pod: Obj, taints: list[Obj], first_seen: datetime) -> datetime | None:
    """When ``pod`` must go because of NoExecute ``taints`` (None: it may stay forever)."""
    no_execute = [t for t in taints if t.get("effect") == "NoExecute"]
    if not no_execute:
        return None
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    used: list[Obj] = []
    for taint in no_execute:
        matching = [t for t in tolerations if tolerates(t, taint)]
        if not matching:
            return datetime.min.replace(tzinfo=first_seen.tzinfo)
        used.extend(matching)
    seconds = [int(t["tolerationSeconds"]) for t in used if t.get("tolerationSeconds") is not None]
    if not seconds:
        return None
    added = [parse_rfc3339(str(t.get("timeAdded") or "")) for t in no_execute]
    start = max((a for a in added if a is not None), default=first_seen)
    return start + timedelta(seconds=max(min(seconds), 0))


def wanted_taints(node: Obj) -> list[tuple[str, str]] | None:
    """(key, effect) of the taints this controller owns that ``node`` should carry; None
    while the node has never reported Ready (whatever it registered with stays)."""
    ready = podutil.condition(node, "Ready")
    if ready is None:
        return None
    wanted = []
    for cond in (node.get("status") or {}).get("conditions") or []:
        key = CONDITION_TAINTS.get((str(cond.get("type")), str(cond.get("status"))))
        if key is not None:
            wanted.append((key, "NoSchedule"))
    if ready.get("status") == "Unknown":
        wanted.append((UNREACHABLE, "NoExecute"))
    elif ready.get("status") == "False":
        wanted.append((NOT_READY, "NoExecute"))
    if (node.get("spec") or {}).get("unschedulable"):
        wanted.append((UNSCHEDULABLE, "NoSchedule"))
    return wanted


@dataclass
class _Health:
    probe: float
    heartbeat: Any
    renew: Any
    # The cached node and Lease objects these were read from, and the grace that applied:
    # a pass that finds the very same objects needs only the clock.
    node: Obj | None = None
    lease: Obj | None = None
    grace: float = 0.0


class NodeLifecycleController:
    name = "nodelifecycle"

    def __init__(self, client: ApiClient, factory: InformerFactory, *,
                 clock: Clock = SYSTEM_CLOCK, monitor_period: float = 5.0,
                 grace_period: float = 40.0, startup_grace_period: float = 60.0,
                 recorder: EventRecorder | None = None) -> None:
        self.client = client
        self.clock = clock
        self.monitor_period = monitor_period
        self.grace_period = grace_period
        self.startup_grace_period = startup_grace_period
        self.recorder = recorder or EventRecorder(client, "node-controller")
        self.nodes = factory.informer(NODES)
        self.leases = factory.informer(LEASES, namespace=LEASE_NAMESPACE)
        self.pods = indexes.ensure(factory.informer(PODS), indexes.NODE_NAME)
        self._health: dict[str, _Health] = {}
        self._first_tainted: dict[str, datetime] = {}
        # node name -> the cached object last found carrying exactly the taints it should:
        # the same object next pass needs no second look (a pass visits every node).
        self._taints_right: dict[str, Obj] = {}

    async def run(self, workers: int = 1) -> None:
        log.info("starting controller=%s grace=%.0fs", self.name, self.grace_period)
        try:
            while True:
                try:
                    await self.monitor_once()
                except ApiError as exc:
                    log.info("monitor pass failed code=%s: %.200s", exc.code, exc.message)
                except Exception:
                    log.exception("monitor pass crashed")
                await self.clock.sleep(self.monitor_period)
        finally:
            log.info("stopped controller=%s", self.name)

    async def monitor_once(self) -> None:
        seen = set()
        for cached in self.nodes.list():
            name = str(meta(cached).get("name"))
            seen.add(name)
            if self._quiet(name, cached):
                continue
            try:
                node = await self._check_health(cached)
                node = await self._reconcile_taints(node)
                await self._evict(node)
            except ApiError as exc:
                # Usually a conflict with the kubelet's own status write; the next pass
                # sees the newer node. One node's trouble must not stall the others.
                level = logging.DEBUG if exc.code in (404, 409) else logging.INFO
                log.log(level, "node=%s not reconciled this pass code=%s: %.200s",
                        name, exc.code, exc.message)
        for gone in set(self._health) - seen:
            del self._health[gone]
        for gone in set(self._first_tainted) - seen:
            del self._first_tainted[gone]
        for gone in set(self._taints_right) - seen:
            del self._taints_right[gone]

    def _quiet(self, name: str, node: Obj) -> bool:
        """Nothing to do for this node this pass, decided without reading it: the node and
        its Lease are the objects the last pass checked (so its heartbeats have not moved)
        and still within grace, its taints were found right, and it has no NoExecute taint
        to evict for. Most nodes, most passes."""
        health = self._health.get(name)
        return (health is not None and health.node is node
                and health.lease is self.leases.get(f"{LEASE_NAMESPACE}/{name}")
                and self.clock.monotonic() - health.probe <= health.grace
                and self._taints_right.get(name) is node and name not in self._first_tainted)

    async def _check_health(self, node: Obj) -> Obj:
        name = str(meta(node).get("name"))
        ready = podutil.condition(node, "Ready")
        heartbeat = ready.get("lastHeartbeatTime") if ready is not None else None
        lease = self.leases.get(f"{LEASE_NAMESPACE}/{name}")
        renew = (lease.get("spec") or {}).get("renewTime") if lease is not None else None
        now = self.clock.monotonic()
        health = self._health.get(name)
        if health is None:
            health = self._health[name] = _Health(now, heartbeat, renew)
        elif health.heartbeat != heartbeat or health.renew != renew:
            health.probe, health.heartbeat, health.renew = now, heartbeat, renew
        grace = self.grace_period if ready is not None else self.startup_grace_period
        health.node, health.lease, health.grace = node, lease, grace
        if now - health.probe <= grace:
            return node
        if ready is not None and ready.get("status") == "Unknown" and all(
                podutil.condition(node, c) is not None for c in NODE_CONDITIONS):
            return node
        return await self._mark_unknown(node, was_ready=ready is not None and ready.get("status") == "True")

    async def _mark_unknown(self, node: Obj, was_ready: bool) -> Obj:
        updated = copy.deepcopy(node)
        stamp = rfc3339(self.clock.now())
        conditions = updated.setdefault("status", {}).setdefault("conditions", [])
        for kind in NODE_CONDITIONS:
            cond = next((c for c in conditions if c.get("type") == kind), None)
            if cond is None:
                conditions.append({
                    "type": kind, "status": "Unknown", "reason": "NodeStatusNeverUpdated",
                    "message": "Kubelet never posted node status.",
                    "lastHeartbeatTime": meta(node).get("creationTimestamp"),
                    "lastTransitionTime": stamp})
            elif cond.get("status") != "Unknown":
                cond.update(status="Unknown", reason="NodeStatusUnknown",
                            message="Kubelet stopped posting node status.",
                            lastTransitionTime=stamp)
        written = await self.client.update(NODES, updated, subresource="status")
        name = str(meta(node).get("name"))
        log.info("node=%s stopped posting status; marked Unknown", name)
        self.recorder.event(node, NODES, "Normal", "NodeNotReady",
                            f"Node {name} status is now: NodeNotReady")
        if was_ready:
            await self._mark_pods_not_ready(name)
        return written

    async def _mark_pods_not_ready(self, node_name: str) -> None:
        stamp = rfc3339(self.clock.now())
        for pod in self.pods.by_index(indexes.NODE_NAME, node_name):
            if not podutil.is_ready(pod):
                continue
            updated = copy.deepcopy(pod)
            for cond in updated["status"]["conditions"]:
                if cond.get("type") == "Ready":
                    cond.update(status="False", lastTransitionTime=stamp)
            try:
                await self.client.update(PODS, updated, subresource="status")
            except ApiError as exc:
                if exc.code not in (404, 409):
                    raise

    async def _reconcile_taints(self, node: Obj) -> Obj:
        name = str(meta(node).get("name"))
        if self._taints_right.get(name) is node:
            return node
        wanted = wanted_taints(node)
        if wanted is None:
            return node
        existing = list((node.get("spec") or {}).get("taints") or [])
        kept = [t for t in existing if t.get("key") not in MANAGED_TAINTS
                or (t.get("key"), t.get("effect")) in wanted]
        present = {(t.get("key"), t.get("effect")) for t in kept}
        for key, effect in wanted:
            if (key, effect) not in present:
                taint: Obj = {"key": key, "effect": effect}
                if effect == "NoExecute":
                    taint["timeAdded"] = rfc3339(self.clock.now())
                kept.append(taint)
        if kept == existing:
            self._taints_right[name] = node
            return node
        updated = copy.deepcopy(node)
        if kept:
            updated.setdefault("spec", {})["taints"] = kept
        else:
            updated.setdefault("spec", {}).pop("taints", None)
        log.info("node=%s taints now %s", meta(node).get("name"),
                 ",".join(f"{t['key']}:{t['effect']}" for t in kept) or "none")
        return await self.client.update(NODES, updated)

    async def _evict(self, node: Obj) -> None:
        name = str(meta(node).get("name"))
        taints = [t for t in (node.get("spec") or {}).get("taints") or []
                  if t.get("effect") == "NoExecute"]
        if not taints:
            self._first_tainted.pop(name, None)
            return
        now = self.clock.now()
        first = self._first_tainted.setdefault(name, now)
        for pod in self.pods.by_index(indexes.NODE_NAME, name):
            if is_deleting(pod) or podutil.phase(pod) in ("Succeeded", "Failed"):
                continue
            at = eviction_time(pod, taints, first)
            if at is None or at > now:
                continue
            pm = meta(pod)
            log.info("evicting pod=%s/%s from tainted node=%s", pm.get("namespace"), pm.get("name"), name)
            self.recorder.event(pod, PODS, "Normal", "TaintManagerEviction",
                                f"Marking for deletion Pod {pm.get('namespace')}/{pm.get('name')}")
            try:
                await self.client.delete(PODS, pm.get("namespace", ""), pm.get("name", ""),
                                         preconditions={"uid": pm.get("uid")})
            except ApiError as exc:
                if exc.code not in (404, 409):
                    raise
