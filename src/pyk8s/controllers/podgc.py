"""The pod garbage collector: remove pods nobody else will ever remove.

A periodic pass (upstream ``pkg/controller/podgc``, every 20 s):

* terminated pods (Succeeded / Failed) beyond ``terminated_pod_threshold`` (12500), oldest
  first — 0 disables it;
* pods bound to a node that no longer exists (confirmed with a live GET, since the node
  cache may lag a node that was just registered) — force-deleted, no kubelet will;
* pods being deleted that were never scheduled — force-deleted for the same reason.
"""

from __future__ import annotations

import logging

from pyk8s.client import ApiClient, InformerFactory
from pyk8s.client.clock import SYSTEM_CLOCK, Clock
from pyk8s.controllers import podutil
from pyk8s.controllers.base import Obj, is_deleting, meta
from pyk8s.machinery.errors import ApiError
from pyk8s.machinery.resources import CATALOGUE

NODES = CATALOGUE.resource("v1", "nodes")
PODS = CATALOGUE.resource("v1", "pods")

log = logging.getLogger("pyk8s.controllers.podgc")


class PodGCController:
    name = "podgc"

    def __init__(self, client: ApiClient, factory: InformerFactory, *,
                 clock: Clock = SYSTEM_CLOCK, period: float = 20.0,
                 terminated_pod_threshold: int = 12500) -> None:
        self.client = client
        self.clock = clock
        self.period = period
        self.threshold = terminated_pod_threshold
        self.pods = factory.informer(PODS)
        self.nodes = factory.informer(NODES)

    async def run(self, workers: int = 1) -> None:
        log.info("starting controller=%s", self.name)
        try:
            while True:
                try:
                    await self.gc_once()
                except ApiError as exc:
                    log.info("pod gc pass failed code=%s: %.200s", exc.code, exc.message)
                except Exception:
                    log.exception("pod gc pass crashed")
                await self.clock.sleep(self.period)
        finally:
            log.info("stopped controller=%s", self.name)

    async def gc_once(self) -> None:
        """One look at every cached pod sorts out the few each step must consider (a pass
        over thousands of running pods otherwise reads each of them three times)."""
        terminated: list[Obj] = []
        bound_elsewhere: list[Obj] = []
        unscheduled_deleting: list[Obj] = []
        node_cached = self.nodes.get
        for pod in self.pods.list():
            deleting = (pod.get("metadata") or {}).get("deletionTimestamp")
            if not deleting and (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                terminated.append(pod)
            node = (pod.get("spec") or {}).get("nodeName")
            if node:
                if node_cached(node) is None:
                    bound_elsewhere.append(pod)
            elif deleting:
                unscheduled_deleting.append(pod)
        await self._gc_terminated(terminated)
        await self._gc_orphaned(bound_elsewhere)
        await self._gc_unscheduled_terminating(unscheduled_deleting)

    async def _force_delete(self, pod: Obj, why: str) -> None:
        m = meta(pod)
        log.info("deleting pod=%s/%s: %s", m.get("namespace"), m.get("name"), why)
        try:
            await self.client.delete(PODS, m.get("namespace", ""), m.get("name", ""),
                                     grace_period_seconds=0, preconditions={"uid": m.get("uid")})
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise

    async def _gc_terminated(self, pods: list[Obj]) -> None:
        if self.threshold <= 0:
            return
        terminated = [p for p in pods if podutil.phase(p) in ("Succeeded", "Failed")
                      and not is_deleting(p)]
        excess = len(terminated) - self.threshold
        if excess <= 0:
            return
        terminated.sort(key=lambda p: (str(meta(p).get("creationTimestamp") or ""),
                                       str(meta(p).get("name") or "")))
        for pod in terminated[:excess]:
            await self._force_delete(pod, "terminated pods above threshold")

    async def _gc_orphaned(self, pods: list[Obj]) -> None:
        missing: dict[str, bool] = {}
        for pod in pods:
            node = (pod.get("spec") or {}).get("nodeName")
            if not node or self.nodes.get(node) is not None:
                continue
            if node not in missing:
                try:
                    await self.client.get(NODES, "", node)
                    missing[node] = False
                except ApiError as exc:
                    if exc.code != 404:
                        raise
                    missing[node] = True
            if missing[node]:
                await self._force_delete(pod, f"node {node} no longer exists")

    async def _gc_unscheduled_terminating(self, pods: list[Obj]) -> None:
        for pod in pods:
            if is_deleting(pod) and not (pod.get("spec") or {}).get("nodeName"):
                await self._force_delete(pod, "terminating and never scheduled")
