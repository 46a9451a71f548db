"""A recording fake of the few ApiClient calls hollow nodes make, and a hand-fed informer."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from typing import Any

from pyk8s.machinery.errors import ApiError
from pyk8s.machinery.resources import Resource

Obj = dict[str, Any]


class FakeClient:
    """Stores objects by (plural, namespace, name); records every call; counts concurrency."""

    def __init__(self, latency: float = 0.0) -> None:
        self.objects: dict[tuple[str, str | None, str], Obj] = {}
        self.calls: list[tuple[str, str, str | None, str]] = []
        self.latency = latency
        self.in_flight = 0
        self.max_in_flight = 0
        self.fail: Callable[[str, str, str], ApiError | None] = lambda verb, plural, name: None
        self._uid = 0
        self._rv = 100

    async def _enter(self, verb: str, res: Resource, namespace: str | None, name: str) -> None:
        self.calls.append((verb, res.plural, namespace, name))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            else:
                await asyncio.sleep(0)
        finally:
            self.in_flight -= 1
        error = self.fail(verb, res.plural, name)
        if error is not None:
            raise error

    async def create(self, res: Resource, obj: Obj, *, namespace: str | None = None) -> Obj:
        meta = obj["metadata"]
        ns = namespace or meta.get("namespace") if res.namespaced else None
        await self._enter("create", res, ns, meta["name"])
        key = (res.plural, ns, meta["name"])
        if key in self.objects:
            raise ApiError(409, "AlreadyExists", f"{res.plural} {meta['name']!r} already exists")
        self._uid += 1
        stored = copy.deepcopy(obj)
        stored["metadata"]["uid"] = f"uid-{self._uid}"
        self.objects[key] = stored
        return copy.deepcopy(stored)

    async def patch(self, res: Resource, namespace: str | None, name: str, body: Any, *,
                    patch_type: str = "merge", subresource: str = "") -> Obj:
        await self._enter(f"patch{'/' + subresource if subresource else ''}", res, namespace, name)
        key = (res.plural, namespace, name)
        if key not in self.objects:
            raise ApiError(404, "NotFound", f"{res.plural} {name!r} not found")
        target = self.objects[key]
        for part, value in body.items():
            if isinstance(value, dict):
                target.setdefault(part, {}).update(value)
            else:
                target[part] = value
        self._rv += 1
        target.setdefault("metadata", {})["resourceVersion"] = str(self._rv)
        return copy.deepcopy(target)

    async def delete(self, res: Resource, namespace: str | None, name: str, *,
                     grace_period_seconds: int | None = None,
                     preconditions: dict[str, str] | None = None) -> Obj:
        await self._enter("delete", res, namespace, name)
        obj = self.objects.pop((res.plural, namespace, name), None)
        if obj is None:
            raise ApiError(404, "NotFound", f"{res.plural} {name!r} not found")
        return obj

    def verbs(self, verb: str, plural: str) -> list[str]:
        return [name for v, p, _, name in self.calls if v == verb and p == plural]


class FakeInformer:
    """The Informer surface PodSimulator uses, fed by hand with ``upsert``/``remove``."""

    def __init__(self) -> None:
        self.items: dict[str, Obj] = {}
        self.handlers: list[tuple[Any, Any, Any]] = []

    def add_handlers(self, on_add: Any = None, on_update: Any = None, on_delete: Any = None) -> None:
        self.handlers.append((on_add, on_update, on_delete))

    def list(self) -> list[Obj]:
        return list(self.items.values())

    def get(self, key: str) -> Obj | None:
        return self.items.get(key)

    async def run(self) -> None:
        await asyncio.Event().wait()

    def upsert(self, pod: Obj) -> None:
        key = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
        old = self.items.get(key)
        self.items[key] = pod
        for on_add, on_update, _ in self.handlers:
            if old is None:
                on_add(pod)
            else:
                on_update(old, pod)

    def remove(self, pod: Obj) -> None:
        key = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
        if self.items.pop(key, None) is not None:
            for _, _, on_delete in self.handlers:
                on_delete(pod)
