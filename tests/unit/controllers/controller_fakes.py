"""An in-memory API server and informers, for testing controllers without sockets.

``FakeApi`` implements the part of ``pyk8s.client.ApiClient`` controllers use, with the
server rules they depend on: resourceVersions and 409 on a stale one, generateName, uids,
generation bumps on spec changes, ``/status`` writes, merge and JSON patches, and deletion
with finalizers, propagation policies and graceful deletion of bound pods.

Watch events are *not* delivered at once: they wait in a queue until ``flush()``, which is
how tests reproduce a controller acting on a cache that lags its own writes (the reason
expectations exist). ``FakeFactory`` hands out ``FakeInformer``\\ s fed by that queue.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import random
from collections.abc import Callable
from typing import Any

from pyk8s.client import FakeClock
from pyk8s.machinery import patch as patches
from pyk8s.machinery.errors import ApiError
from pyk8s.machinery.meta import rfc3339
from pyk8s.machinery.resources import Resource

Obj = dict[str, Any]
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def obj_key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name')}" if ns else str(meta.get("name"))


class FakeInformer:
    def __init__(self, resource: Resource, namespace: str | None) -> None:
        self.resource = resource
        self.namespace = namespace
        self.items: dict[str, Obj] = {}
        self.handlers: list[tuple[Any, Any, Any]] = []
        self.index_funcs: dict[str, Callable[[Obj], list[str]]] = {}
        self.has_synced = True

    async def wait_synced(self) -> None:
        return None

    def get(self, key: str) -> Obj | None:
        return self.items.get(key)

    def list(self) -> list[Obj]:
        return list(self.items.values())

    def add_handlers(self, on_add: Any = None, on_update: Any = None, on_delete: Any = None) -> None:
        self.handlers.append((on_add, on_update, on_delete))
        if on_add is not None:
            for obj in list(self.items.values()):
                on_add(obj)

    def add_index(self, name: str, func: Callable[[Obj], list[str]]) -> None:
        self.index_funcs[name] = func

    def by_index(self, name: str, value: str) -> list[Obj]:
        func = self.index_funcs[name]
        return [o for o in self.items.values() if value in func(o)]

    def deliver(self, kind: str, obj: Obj) -> None:
        if self.namespace is not None and (obj.get("metadata") or {}).get("namespace") != self.namespace:
            return
        key = obj_key(obj)
        old = self.items.get(key)
        if kind == "DELETED":
            if old is None:
                return
            del self.items[key]
            for _, _, on_delete in self.handlers:
                if on_delete:
                    on_delete(obj)
            return
        self.items[key] = obj
        for on_add, on_update, _ in self.handlers:
            if old is None and on_add:
                on_add(obj)
            elif old is not None and on_update:
                on_update(old, obj)


class FakeFactory:
    def __init__(self, api: FakeApi) -> None:
        self.api = api

    def informer(self, resource: Resource, namespace: str | None = None) -> FakeInformer:
        return self.api.informer(resource, namespace)

    async def start(self) -> None:
        return None

    async def wait_synced(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class FakeApi:
    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock()
        self.store: dict[tuple[str, str], tuple[Resource, Obj]] = {}
        self.rv = itertools.count(100)
        self.pending: list[tuple[Resource, str, Obj]] = []
        self.informers: dict[tuple[str, str | None], FakeInformer] = {}
        self.calls: list[tuple[str, str, str]] = []  # (verb, plural, name)
        self.fail: Callable[[str, Resource, Obj], ApiError | None] | None = None

    # -- informers -----------------------------------------------------------------

    def informer(self, resource: Resource, namespace: str | None = None) -> FakeInformer:
        key = (resource.plural + "." + resource.group, namespace)
        if key not in self.informers:
            inf = FakeInformer(resource, namespace)
            for res, obj in self.store.values():
                if res == resource:
                    inf.deliver("ADDED", copy.deepcopy(obj))
            self.informers[key] = inf
        return self.informers[key]

    def flush(self) -> int:
        """Deliver every pending watch event; how many there were."""
        delivered = 0
        while self.pending:
            resource, kind, obj = self.pending.pop(0)
            for inf in list(self.informers.values()):
                if inf.resource == resource:
                    inf.deliver(kind, copy.deepcopy(obj))
            delivered += 1
        return delivered

    def _emit(self, resource: Resource, kind: str, obj: Obj) -> None:
        self.pending.append((resource, kind, copy.deepcopy(obj)))

    # -- helpers for tests -----------------------------------------------------------

    def objects(self, resource: Resource, namespace: str | None = None) -> list[Obj]:
        return [copy.deepcopy(o) for res, o in self.store.values() if res == resource
                and (namespace is None or o["metadata"].get("namespace") == namespace)]

    def seed(self, resource: Resource, obj: Obj) -> Obj:
        """Create and deliver at once (setting up a scene)."""
        created = self._create(resource, obj)
        self.flush()
        return created

    def count(self, verb: str, plural: str) -> int:
        return sum(1 for v, p, _ in self.calls if v == verb and p == plural)

    # -- the API ----------------------------------------------------------------------

    def _skey(self, resource: Resource, namespace: str | None, name: str) -> tuple[str, str]:
        ns = namespace if resource.namespaced else ""
        return (resource.plural + "." + resource.group, f"{ns or ''}/{name}")

    def _check_fail(self, verb: str, resource: Resource, obj: Obj) -> None:
        if self.fail is not None:
            err = self.fail(verb, resource, obj)
            if err is not None:
                raise err

    def _current(self, resource: Resource, namespace: str | None, name: str) -> Obj:
        found = self.store.get(self._skey(resource, namespace, name))
        if found is None:
            raise ApiError(404, "NotFound", f'{resource.plural} "{name}" not found')
        return found[1]

    async def get(self, resource: Resource, namespace: str | None, name: str) -> Obj:
        self.calls.append(("get", resource.plural, name))
        return copy.deepcopy(self._current(resource, namespace, name))

    async def list(self, resource: Resource, namespace: str | None = None, **_: Any) -> Obj:
        return {"items": self.objects(resource, namespace or None), "metadata": {}}

    def _create(self, resource: Resource, obj: Obj, namespace: str | None = None) -> Obj:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if resource.namespaced:
            meta["namespace"] = namespace or meta.get("namespace") or "default"
        if not meta.get("name"):
            meta["name"] = meta.get("generateName", "") + "".join(
                random.choice(_ALPHABET) for _ in range(5))
        key = self._skey(resource, meta.get("namespace"), meta["name"])
        if key in self.store:
            raise ApiError(409, "AlreadyExists", f'{resource.plural} "{meta["name"]}" already exists')
        meta["uid"] = f"uid-{meta['name']}-{next(self.rv)}"
        meta["creationTimestamp"] = rfc3339(self.clock.now())
        meta["generation"] = 1
        meta["resourceVersion"] = str(next(self.rv))
        obj.setdefault("apiVersion", resource.api_version)
        obj.setdefault("kind", resource.kind)
        self.store[key] = (resource, obj)
        self._emit(resource, "ADDED", obj)
        return copy.deepcopy(obj)

    async def create(self, resource: Resource, obj: Obj, *, namespace: str | None = None) -> Obj:
        self.calls.append(("create", resource.plural, (obj.get("metadata") or {}).get("name", "")))
        self._check_fail("create", resource, obj)
        return self._create(resource, obj, namespace)

    def _write(self, resource: Resource, current: Obj, new: Obj) -> Obj:
        meta = new["metadata"]
        if (new.get("spec") != current.get("spec")):
            meta["generation"] = int(current["metadata"].get("generation") or 1) + 1
        else:
            meta["generation"] = current["metadata"].get("generation")
        for field in ("uid", "creationTimestamp", "deletionTimestamp", "namespace", "name"):
            if current["metadata"].get(field) is not None:
                meta[field] = current["metadata"][field]
        key = self._skey(resource, meta.get("namespace"), meta["name"])
        held = resource.kind == "Namespace" and (new.get("spec") or {}).get("finalizers")
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and not held and \
                not meta.get("deletionGracePeriodSeconds"):
            del self.store[key]
            meta["resourceVersion"] = str(next(self.rv))
            self._emit(resource, "DELETED", new)
            return copy.deepcopy(new)
        meta["resourceVersion"] = str(next(self.rv))
        self.store[key] = (resource, new)
        self._emit(resource, "MODIFIED", new)
        return copy.deepcopy(new)

    async def update(self, resource: Resource, obj: Obj, *, subresource: str = "") -> Obj:
        meta = obj["metadata"]
        self.calls.append(("update" + (f"/{subresource}" if subresource else ""),
                           resource.plural, meta["name"]))
        self._check_fail("update", resource, obj)
        current = self._current(resource, meta.get("namespace"), meta["name"])
        if meta.get("resourceVersion") and meta["resourceVersion"] != current["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", "the object has been modified")
        if subresource == "status":
            new = copy.deepcopy(current)
            new["status"] = copy.deepcopy(obj.get("status"))
        elif subresource == "finalize":
            new = copy.deepcopy(current)
            new.setdefault("spec", {})["finalizers"] = list((obj.get("spec") or {}).get("finalizers") or [])
            if not new["spec"]["finalizers"]:
                key = self._skey(resource, None, meta["name"])
                del self.store[key]
                self._emit(resource, "DELETED", new)
                return new
        else:
            new = copy.deepcopy(obj)
            if resource.has_status:
                if current.get("status") is not None:
                    new["status"] = copy.deepcopy(current["status"])
                else:
                    new.pop("status", None)
        return self._write(resource, current, new)

    async def patch(self, resource: Resource, namespace: str | None, name: str, body: Any, *,
                    patch_type: str = "merge", subresource: str = "", **_: Any) -> Obj:
        self.calls.append(("patch" + (f"/{subresource}" if subresource else ""), resource.plural, name))
        current = self._current(resource, namespace, name)
        if patch_type == "json":
            new = patches.json_patch(current, body)
        else:
            new = patches.json_merge_patch(current, body)
        return self._write(resource, current, new)

    async def delete(self, resource: Resource, namespace: str | None, name: str, *,
                     grace_period_seconds: int | None = None, propagation_policy: str | None = None,
                     preconditions: dict[str, str] | None = None) -> Obj:
        self.calls.append(("delete", resource.plural, name))
        current = self._current(resource, namespace, name)
        self._check_fail("delete", resource, current)
        if preconditions and preconditions.get("uid") not in (None, current["metadata"]["uid"]):
            raise ApiError(409, "Conflict", "Precondition failed: UID")
        new = copy.deepcopy(current)
        meta = new["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if propagation_policy == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        elif propagation_policy == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
        elif propagation_policy == "Background":
            finalizers = [f for f in finalizers if f not in ("orphan", "foregroundDeletion")]
        grace = grace_period_seconds
        if grace is None:
            bound = resource.kind == "Pod" and (current.get("spec") or {}).get("nodeName")
            grace = 30 if bound else 0
        key = self._skey(resource, namespace, name)
        held = resource.kind == "Namespace" and (current.get("spec") or {}).get("finalizers")
        if grace == 0 and not finalizers and not held:
            del self.store[key]
            self._emit(resource, "DELETED", current)
            return current
        if finalizers:
            meta["finalizers"] = finalizers
        if not meta.get("deletionTimestamp"):
            meta["deletionTimestamp"] = rfc3339(self.clock.now())
            meta["deletionGracePeriodSeconds"] = grace
        meta["resourceVersion"] = str(next(self.rv))
        self.store[key] = (resource, new)
        self._emit(resource, "MODIFIED", new)
        return copy.deepcopy(new)

    async def close(self) -> None:
        return None


class NullRecorder:
    """An EventRecorder that keeps events in a list."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, str]] = []

    def event(self, obj: Obj, resource: Resource, type_: str, reason: str, message: str) -> None:
        self.events.append((obj["metadata"].get("name", ""), type_, reason, message))

    def reasons(self) -> list[str]:
        return [e[2] for e in self.events]

    async def close(self) -> None:
        return None


async def drain(*controllers: Any) -> int:
    """Process every key queued now on each controller; how many were processed."""
    processed = 0
    for controller in controllers:
        while len(controller.queue):
            key = await controller.queue.get()
            try:
                await controller.process(key)
            finally:
                controller.queue.done(key)
            processed += 1
    return processed


async def settle(api: FakeApi, *controllers: Any, rounds: int = 100) -> None:
    """Deliver events and run syncs until nothing moves."""
    for _ in range(rounds):
        moved = api.flush()
        moved += await drain(*controllers)
        if not moved:
            return
    raise AssertionError("controllers did not settle")


def ready(pod: Obj, at: str = "2026-01-01T00:00:00Z") -> Obj:
    status = pod.setdefault("status", {})
    status["phase"] = "Running"
    status["conditions"] = [{"type": "Ready", "status": "True", "lastTransitionTime": at}]
    return pod


async def kubelet_ready_all(api: FakeApi, resource: Resource, namespace: str = "default") -> None:
    """What a kubelet would do: report every pod Running and Ready."""
    for pod in api.objects(resource, namespace):
        if (pod.get("status") or {}).get("phase") != "Running":
            await api.update(resource, ready(pod), subresource="status")


async def advance(clock: FakeClock, seconds: float) -> None:
    """Move the fake clock and let the tasks it wakes (requeue-after timers) run."""
    for _ in range(5):
        await asyncio.sleep(0)
    clock.advance(seconds)
    for _ in range(5):
        await asyncio.sleep(0)
