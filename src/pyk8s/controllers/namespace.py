"""The namespace controller: empty a terminating namespace, then release it.

``kubectl delete namespace x`` only marks the namespace (deletionTimestamp, phase
Terminating); its ``spec.finalizers: [kubernetes]`` keeps it until this controller has deleted
every namespaced object in it — every stored namespaced kind of the catalogue that supports
list and delete (upstream ``pkg/controller/namespace/deletion``) — and seen them gone. Then
it PUTs ``/finalize`` without the ``kubernetes`` finalizer and the server deletes the
namespace. Objects that linger (finalizers, graceful pod deletion) make the sync come back
after a short delay rather than spin, and are reported in the namespace's conditions
(``NamespaceContentRemaining``, ``NamespaceFinalizersRemaining``) with upstream's wording, which
is what ``kubectl describe namespace`` shows while a deletion hangs.
"""

from __future__ import annotations

import asyncio
import copy
from collections import Counter
from dataclasses import dataclass, field

from pyk8s.client import ApiClient, InformerFactory
from pyk8s.client.clock import SYSTEM_CLOCK, Clock
from pyk8s.controllers.base import Obj, QueueController, is_deleting, key_of, meta
from pyk8s.machinery.errors import ApiError
from pyk8s.machinery.meta import rfc3339
from pyk8s.machinery.resources import CATALOGUE, Resource

NAMESPACES = CATALOGUE.resource("v1", "namespaces")
FINALIZER = "kubernetes"
RECHECK_SECONDS = 1.0

# (type, reason when fine, message when fine), in upstream's order.
_OK_CONDITIONS = (
    ("NamespaceDeletionDiscoveryFailure", "ResourcesDiscovered", "All resources successfully discovered"),
    ("NamespaceDeletionGroupVersionParsingFailure", "ParsedGroupVersions",
     "All legacy kube types successfully parsed"),
    ("NamespaceDeletionContentFailure", "ContentDeleted",
     "All content successfully deleted, may be waiting on finalization"),
    ("NamespaceContentRemaining", "ContentRemoved", "All content successfully removed"),
    ("NamespaceFinalizersRemaining", "ContentHasNoFinalizers", "All content-preserving finalizers finished"),
)


def deletable_resources() -> list[Resource]:
    return [r for r in CATALOGUE.stored() if r.namespaced
            and "list" in r.verbs and "delete" in r.verbs]


@dataclass
class Remaining:
    """What is left in a namespace after a deletion pass."""

    by_resource: Counter[str] = field(default_factory=Counter)
    by_finalizer: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.by_resource.values())


def conditions_for(remaining: Remaining, old: list[Obj], stamp: str) -> list[Obj]:
    """The namespace's deletion conditions, keeping transition times of unchanged ones."""
    wanted: dict[str, tuple[str, str, str]] = {t: ("False", r, m) for t, r, m in _OK_CONDITIONS}
    if remaining.failures:
        wanted["NamespaceDeletionContentFailure"] = (
            "True", "ContentDeletionFailed",
            f"Failed to delete all resource types, {len(remaining.failures)} remaining: "
            + ", ".join(sorted(remaining.failures)))
    if remaining.by_resource:
        parts = sorted(f"{plural} has {n} resource instances"
                       for plural, n in remaining.by_resource.items())
        wanted["NamespaceContentRemaining"] = (
            "True", "SomeResourcesRemain", "Some resources are remaining: " + ", ".join(parts))
    if remaining.by_finalizer:
        parts = sorted(f"{name} in {n} resource instances"
                       for name, n in remaining.by_finalizer.items())
        wanted["NamespaceFinalizersRemaining"] = (
            "True", "SomeFinalizersRemain",
            "Some content in the namespace has finalizers remaining: " + ", ".join(parts))
    previous = {c.get("type"): c for c in old}
    out = []
    for kind, _, _ in _OK_CONDITIONS:
        status, reason, message = wanted[kind]
        cond = {"type": kind, "status": status, "lastTransitionTime": stamp,
                "reason": reason, "message": message}
        before = previous.get(kind)
        if before is not None and before.get("status") == status:
            cond["lastTransitionTime"] = before.get("lastTransitionTime", stamp)
        out.append(cond)
    return out


class NamespaceController(QueueController):
    name = "namespace"

    def __init__(self, client: ApiClient, factory: InformerFactory, *,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(clock)
        self.client = client
        self.clock = clock
        self.informer = factory.informer(NAMESPACES)
        self.informer.add_handlers(on_add=self._maybe_enqueue,
                                   on_update=lambda old, new: self._maybe_enqueue(new))

    def _maybe_enqueue(self, ns: Obj) -> None:
        if is_deleting(ns):
            self.queue.add(key_of(ns))

    async def sync(self, key: str) -> float | None:
        cached = self.informer.get(key)
        if cached is None or not is_deleting(cached):
            return None
        if FINALIZER not in ((cached.get("spec") or {}).get("finalizers") or []):
            return None
        remaining = await self.delete_content(key)
        await self._write_conditions(cached, remaining)
        if remaining.total or remaining.failures:
            self.log.info("namespace=%s still has %d objects", key, remaining.total)
            return RECHECK_SECONDS
        ns = copy.deepcopy(cached)
        ns["spec"]["finalizers"] = [f for f in ns["spec"]["finalizers"] if f != FINALIZER]
        try:
            await self.client.update(NAMESPACES, ns, subresource="finalize")
        except ApiError as exc:
            if exc.code == 404:
                return None
            if exc.code != 409:
                raise
            fresh = await self.client.get(NAMESPACES, "", key)
            fresh.setdefault("spec", {})["finalizers"] = [
                f for f in (fresh["spec"].get("finalizers") or []) if f != FINALIZER]
            await self.client.update(NAMESPACES, fresh, subresource="finalize")
        self.log.info("namespace=%s emptied and finalized", key)
        return None

    async def delete_content(self, namespace: str) -> Remaining:
        """Delete everything in ``namespace``; what is still there afterwards."""
        remaining = Remaining()
        results = await asyncio.gather(*(self._delete_all(r, namespace, remaining)
                                         for r in deletable_resources()), return_exceptions=True)
        for resource, result in zip(deletable_resources(), results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                remaining.failures.append(f"{resource.plural}.{resource.group}")
        return remaining

    async def _delete_all(self, resource: Resource, namespace: str, remaining: Remaining) -> None:
        listed = await self.client.list(resource, namespace)
        items: list[Obj] = listed.get("items") or []
        for item in items:
            if is_deleting(item):
                continue
            try:
                await self.client.delete(resource, namespace, meta(item).get("name", ""),
                                         propagation_policy="Background")
            except ApiError as exc:
                if exc.code not in (404, 409):
                    raise
        if not items:
            return
        left = (await self.client.list(resource, namespace)).get("items") or []
        if left:
            remaining.by_resource[f"{resource.plural}.{resource.group}"] += len(left)
            for item in left:
                for finalizer in meta(item).get("finalizers") or []:
                    remaining.by_finalizer[finalizer] += 1

    async def _write_conditions(self, ns: Obj, remaining: Remaining) -> None:
        """Best effort: a conflict only delays the report to the next pass."""
        status = ns.get("status") or {}
        old = status.get("conditions") or []
        new = conditions_for(remaining, old, rfc3339(self.clock.now()))
        if new == old:
            return
        updated = copy.deepcopy(ns)
        updated.setdefault("status", {})["conditions"] = new
        try:
            await self.client.update(NAMESPACES, updated, subresource="status")
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise
