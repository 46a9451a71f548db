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
TransformFunc = Callable[[Obj], Obj]


def strip_managed_fields(obj: Obj) -> Obj:
    """An informer transform dropping ``metadata.managedFields`` (client-go's
    TransformStripManagedFields): components that never read them cache a third fewer
    objects, which the garbage collector then never traverses."""
    meta = obj.get("metadata")
    if meta is not None and "managedFields" in meta:
        del meta["managedFields"]
    return obj


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
        self._indexed: dict[str, dict[str, list[str]]] = {}
        """Per index, each cached key's values: an update compares with these rather than
        calling every index function on the old object again."""
        self._index_list: list[tuple[IndexFunc, dict[str, set[str]], dict[str, list[str]]]] = []
        self._transform: TransformFunc | None = None
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

    def set_transform(self, transform: TransformFunc | None) -> None:
        """Apply ``transform`` to every object before it is cached and handed to handlers
        (client-go's SharedInformer.SetTransform), e.g. to drop managedFields a component
        never reads. It may mutate and return the object it gets (which is the informer's
        own freshly decoded copy). Set it before the informer runs."""
        if self.has_synced or self._items:
            raise RuntimeError("set_transform after the informer has started")
        self._transform = transform

    def add_index(self, name: str, func: IndexFunc) -> None:
        self._index_funcs[name] = func
        index: dict[str, set[str]] = {}
        indexed: dict[str, list[str]] = {}
        for key, obj in self._items.items():
            values = indexed[key] = self._index_values(func, obj)
            for value in values:
                index.setdefault(value, set()).add(key)
        self._indices[name] = index
        self._indexed[name] = indexed
        self._index_list = [(f, self._indices[n], self._indexed[n])
                            for n, f in self._index_funcs.items()]

    def by_index(self, name: str, value: str) -> list[Obj]:
        keys = self._indices.get(name, {}).get(value, ())
        items = self._items
        return [items[k] for k in keys if k in items]

    @staticmethod
    def _index_values(func: IndexFunc, obj: Obj) -> list[str]:
        try:
            return func(obj)
        except Exception:
            log.exception("index function failed")
            return []

    def _reindex(self, key: str, new: Obj | None) -> None:
        for func, index, indexed in self._index_list:
            old_values = indexed.get(key)
            if new is None:
                if old_values is None:
                    continue
                del indexed[key]
                new_values: list[str] = []
            else:
                new_values = self._index_values(func, new)
                if old_values == new_values:  # most updates (a status change) move nothing
                    continue
                indexed[key] = new_values
            for value in old_values or ():
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]
            for value in new_values:
                keys = index.get(value)
                if keys is None:
                    index[value] = {key}
                else:
                    keys.add(key)

    # -- delivery --------------------------------------------------------------------------

    @staticmethod
    def _call(handler: Callable[..., None], *args: Obj) -> None:
        try:
            handler(*args)
        except Exception:
            log.exception("informer handler failed")

    def _upsert(self, obj: Obj, key: str | None = None) -> None:
        if key is None:
            key = object_key(obj)
        old = self._items.get(key)
        self._items[key] = obj
        if self._index_list:
            self._reindex(key, obj)
        call = self._call
        if old is None:
            for on_add, _, _ in self._handlers:
                if on_add is not None:
                    call(on_add, obj)
        else:
            for _, on_update, _ in self._handlers:
                if on_update is not None:
                    call(on_update, old, obj)

    def _remove(self, key: str, last: Obj | None = None) -> None:
        old = self._items.pop(key, None)
        if old is None:
            return
        if self._index_list:
            self._reindex(key, None)
        for _, _, on_delete in self._handlers:
            if on_delete is not None:
                self._call(on_delete, last or old)

    # -- list and watch --------------------------------------------------------------------

    async def _list(self) -> None:
        result = await self.client.list(self.resource, self.namespace,
                                        label_selector=self.label_selector,
                                        field_selector=self.field_selector)
        transform = self._transform
        fresh: dict[str, Obj] = {}
        for item in result.get("items") or []:
            if transform is not None:
                item = transform(item)
            fresh[object_key(item)] = item
        for key in [k for k in self._items if k not in fresh]:
            self._remove(key)
        for key, item in fresh.items():
            old = self._items.get(key)
            if old is None or old.get("metadata", {}).get("resourceVersion") != item["metadata"].get("resourceVersion"):
                self._upsert(item, key)
        self.resource_version = result.get("metadata", {}).get("resourceVersion", "")
        self._synced.set()

    async def _watch(self) -> None:
        api_version, kind_name = self.resource.api_version, self.resource.kind
        while True:
            async for event in self.client.watch(
                self.resource, self.namespace, resource_version=self.resource_version,
                label_selector=self.label_selector, field_selector=self.field_selector,
                timeout_seconds=random.randint(300, 600), allow_bookmarks=True,
            ):
                kind = event.get("type")
                obj = event.get("object") or {}
                rv = obj.get("metadata", {}).get("resourceVersion")
                if kind == "ADDED" or kind == "MODIFIED":
                    if "apiVersion" not in obj:
                        obj["apiVersion"] = api_version
                    if "kind" not in obj:
                        obj["kind"] = kind_name
                    self._upsert(obj if self._transform is None else self._transform(obj))
                elif kind == "DELETED":
                    if self._transform is not None:
                        obj = self._transform(obj)
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

    def __init__(self, client: ApiClient, *, transform: TransformFunc | None = None) -> None:
        self.client = client
        self.transform = transform
        """Set on every informer the factory creates (e.g. :func:`strip_managed_fields`)."""
        self._informers: dict[tuple[Resource, str | None], Informer] = {}
        self._tasks: dict[tuple[Resource, str | None], asyncio.Task[None]] = {}

    def informer(self, resource: Resource, namespace: str | None = None) -> Informer:
        key = (resource, namespace)
        if key not in self._informers:
            informer = Informer(self.client, resource, namespace=namespace)
            if self.transform is not None:
                informer.set_transform(self.transform)
            self._informers[key] = informer
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
