"""Informers: list + watch + local cache + handlers, as client-go's shared informers.

An informer lists a resource, then watches from the list's resourceVersion, keeping a cache
of current objects. Handlers are called synchronously on the event loop with cached objects
(which they must not mutate) and are expected only to enqueue keys. A watch that ends is
resumed from the last seen resourceVersion; a 410 (or any error) leads to a fresh list,
whose differences from the cache are delivered as add/update/delete, so no change is lost
even across an outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import Any

from pyk8s.client.rest import ApiClient
from pyk8s.machinery.errors import ApiError
from pyk8s.machinery.resources import Resource

log = logging.getLogger("pyk8s.client.informer")

Obj = dict[str, Any]
AddHandler = Callable[[Obj], None]
UpdateHandler = Callable[[Obj, Obj], None]
DeleteHandler = Callable[[Obj], None]
IndexFunc = Callable[[Obj], list[str]]


def object_key(obj: Obj) -> str:
    meta = obj.get("metadata", {})
    namespace = meta.get("namespace")
    return f"{namespace}/{meta.get('name')}" if namespace else str(meta.get("name"))


class Informer:
    def __init__(self, client: ApiClient, resource: Resource, *, namespace: str | None = None,
                 label_selector: str = "", field_selector: str = "",
                 resync_period: float = 0.0) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.resync_period = resync_period
        self._items: dict[str, Obj] = {}
        self._handlers: list[tuple[AddHandler | None, UpdateHandler | None, DeleteHandler | None]] = []
        self._index_funcs: dict[str, IndexFunc] = {}
        self._indices: dict[str, dict[str, set[str]]] = {}
        self._synced = asyncio.Event()
        self.resource_version = ""

    # -- cache -----------------------------------------------------------------------------

    @property
    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        await self._synced.wait()

    def get(self, key: str) -> Obj | None:
        return self._items.get(key)

    def list(self) -> list[Obj]:
        return list(self._items.values())

    def keys(self) -> list[str]:
        return list(self._items)

    def add_handlers(self, on_add: AddHandler | None = None, on_update: UpdateHandler | None = None,
                     on_delete: DeleteHandler | None = None) -> None:
        self._handlers.append((on_add, on_update, on_delete))
        if self.has_synced and on_add is not None:
            for obj in list(self._items.values()):
                self._call(on_add, obj)

    def add_index(self, name: str, func: IndexFunc) -> None:
        self._index_funcs[name] = func
        index: dict[str, set[str]] = {}
        for key, obj in self._items.items():
            for value in self._index_values(func, obj):
                index.setdefault(value, set()).add(key)
        self._indices[name] = index

    def by_index(self, name: str, value: str) -> list[Obj]:
        keys = self._indices.get(name, {}).get(value, ())
        return [self._items[k] for k in keys if k in self._items]

    @staticmethod
    def _index_values(func: IndexFunc, obj: Obj) -> list[str]:
        try:
            return func(obj)
        except Exception:
            log.exception("index function failed")
            return []

    def _reindex(self, key: str, old: Obj | None, new: Obj | None) -> None:
        for name, func in self._index_funcs.items():
            index = self._indices[name]
            old_values = self._index_values(func, old) if old is not None else []
            new_values = self._index_values(func, new) if new is not None else []
            if old_values == new_values:  # most updates (a status change) move nothing
                continue
            for value in old_values:
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]
            for value in new_values:
                index.setdefault(value, set()).add(key)

    # -- delivery --------------------------------------------------------------------------

    @staticmethod
    def _call(handler: Callable[..., None], *args: Obj) -> None:
        try:
            handler(*args)
        except Exception:
            log.exception("informer handler failed")

    def _upsert(self, obj: Obj) -> None:
        key = object_key(obj)
        old = self._items.get(key)
        self._items[key] = obj
        self._reindex(key, old, obj)
        for on_add, on_update, _ in self._handlers:
            if old is None and on_add is not None:
                self._call(on_add, obj)
            elif old is not None and on_update is not None:
                self._call(on_update, old, obj)

    def _remove(self, key: str, last: Obj | None = None) -> None:
        old = self._items.pop(key, None)
        if old is None:
            return
        self._reindex(key, old, None)
        for _, _, on_delete in self._handlers:
            if on_delete is not None:
                self._call(on_delete, last or old)

    # -- list and watch --------------------------------------------------------------------

    async def _list(self) -> None:
        result = await self.client.list(self.resource, self.namespace,
                                        label_selector=self.label_selector,
                                        field_selector=self.field_selector)
        fresh = {object_key(item): item for item in result.get("items") or []}
        for key in [k for k in self._items if k not in fresh]:
            self._remove(key)
        for item in fresh.values():
            old = self._items.get(object_key(item))
            if old is None or old.get("metadata", {}).get("resourceVersion") != item["metadata"].get("resourceVersion"):
                self._upsert(item)
        self.resource_version = result.get("metadata", {}).get("resourceVersion", "")
        self._synced.set()

    async def _watch(self) -> None:
        while True:
            async for event in self.client.watch(
                self.resource, self.namespace, resource_version=self.resource_version,
                label_selector=self.label_selector, field_selector=self.field_selector,
                timeout_seconds=random.randint(300, 600), allow_bookmarks=True,
            ):
                kind = event.get("type")
                obj = event.get("object") or {}
                rv = obj.get("metadata", {}).get("resourceVersion")
                if kind in ("ADDED", "MODIFIED"):
                    obj.setdefault("apiVersion", self.resource.api_version)
                    obj.setdefault("kind", self.resource.kind)
                    self._upsert(obj)
                elif kind == "DELETED":
                    self._remove(object_key(obj), obj)
                if rv:
                    self.resource_version = rv

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self.resync_period)
            for obj in list(self._items.values()):
                for _, on_update, _ in self._handlers:
                    if on_update is not None:
                        self._call(on_update, obj, obj)

    async def run(self) -> None:
        resync = asyncio.create_task(self._resync()) if self.resync_period > 0 else None
        delay = 0.2
        try:
            while True:
                try:
                    await self._list()
                    delay = 0.2
                    await self._watch()
                except asyncio.CancelledError:
                    raise
                except ApiError as err:
                    if err.code != 410:
                        log.warning("%s informer: %s; re-listing in %.1fs", self.resource.plural,
                                    err.message[:200], delay)
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, 10.0)
                except Exception:
                    log.exception("%s informer failed; re-listing", self.resource.plural)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)
        finally:
            if resync is not None:
                resync.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await resync


class InformerFactory:
    """One shared informer per (resource, namespace), as client-go's SharedInformerFactory."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client
        self._informers: dict[tuple[Resource, str | None], Informer] = {}
        self._tasks: dict[tuple[Resource, str | None], asyncio.Task[None]] = {}

    def informer(self, resource: Resource, namespace: str | None = None) -> Informer:
        key = (resource, namespace)
        if key not in self._informers:
            self._informers[key] = Informer(self.client, resource, namespace=namespace)
        return self._informers[key]

    async def start(self) -> None:
        for key, informer in self._informers.items():
            if key not in self._tasks:
                self._tasks[key] = asyncio.create_task(informer.run(),
                                                       name=f"informer-{key[0].plural}")

    async def wait_synced(self) -> None:
        await asyncio.gather(*(i.wait_synced() for i in self._informers.values()))

    async def stop(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
