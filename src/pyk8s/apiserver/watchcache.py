"""The watch cache: lists and watches served from memory, fed by one storage watch.

Why: clients never poll the store. One ``store.watch("/registry/")`` feeds a per-resource
cache of current objects plus a ring of recent events; every list and watch of the API
server is answered from it, as upstream's cacher does.

Objects are kept as serialized JSON bytes with their ``resourceVersion`` already set, plus the
few parsed values selectors need (labels, selectable fields). Answering a list or a watch event
is then a byte concatenation, with no per-request serialization, and 10,000 pods cost tens of
MiB rather than hundreds. The API server's own writes hand their object over
(:meth:`WatchCache.expect`), so their events are not parsed again.

Concurrency: everything runs on the event loop thread. Registering a watcher and copying the
ring's events to it happen without an ``await`` in between, so no event can fall between the
replay and the live stream. A watcher whose buffer overflows (a client that does not read) is
ended; the client re-watches, as with upstream's cacher.

Not done here: historical reads (``resourceVersionMatch=Exact``, continue tokens of a list
the cache has moved past) go to the store.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from pyk8s.apiserver import objects
from pyk8s.machinery.meta import field_value
from pyk8s.machinery.resources import Resource
from pyk8s.storage import CompactedError, StorageError, Store, WatchEvent

log = logging.getLogger("pyk8s.apiserver.watchcache")

RING_CAPACITY = 20_000
WATCHER_QUEUE = 10_000
EXPECTED_LIMIT = 1024


@dataclass(slots=True)
class CachedObject:
    key: str
    namespace: str
    name: str
    revision: int
    raw: bytes
    labels: dict[str, str]
    fields: dict[str, str]

    def load(self) -> dict[str, Any]:
        obj: dict[str, Any] = orjson.loads(self.raw)
        return obj

    def get(self, path: str, default: str = "") -> str:
        """A selectable field's value (``Mapping.get``'s shape, which field selectors
        use). ``fields`` holds the fields some selector of the resource named when the
        object was cached; another is read from ``raw`` once and kept."""
        value = self.fields.get(path)
        if value is None:
            value = self.fields[path] = field_value(self.load(), path)
        return value


@dataclass(slots=True)
class CacheEvent:
    type: str  # ADDED | MODIFIED | DELETED
    revision: int
    obj: CachedObject
    prev: CachedObject | None
    line: bytes | None = None  # its JSON watch-stream line, once a watcher needed it


Matcher = Callable[[CachedObject], bool]


class Watcher:
    """One client's watch: a filter and a bounded buffer of events for it.

    The buffer is a deque and the reader sleeps on one future only when it is empty, so a
    busy watch costs no task or timer per event."""

    def __init__(self, namespace: str | None, matches: Matcher) -> None:
        self.namespace = namespace
        self.matches = matches
        self.events: deque[CacheEvent] = deque()
        self.closed = False
        self._waiter: asyncio.Future[None] | None = None

    def _visible(self, obj: CachedObject | None) -> bool:
        if obj is None:
            return False
        if self.namespace is not None and obj.namespace != self.namespace:
            return False
        return self.matches(obj)

    def offer(self, event: CacheEvent) -> None:
        """Buffer what this watcher sees of ``event``: an object entering or leaving the
        selection is ADDED or DELETED for this watcher, as upstream's cacher does."""
        if self.closed:
            return
        now = event.type != "DELETED" and self._visible(event.obj)
        before = self._visible(event.prev) if event.type != "ADDED" else False
        if event.type == "DELETED":
            if not before and not self._visible(event.obj):
                return
            out = event
        elif now and before:
            out = event if event.type == "MODIFIED" else CacheEvent("MODIFIED", event.revision, event.obj, event.prev)
        elif now:
            out = CacheEvent("ADDED", event.revision, event.obj, event.prev)
        elif before:
            out = CacheEvent("DELETED", event.revision, event.obj, event.prev)
        else:
            return
        if len(self.events) >= WATCHER_QUEUE:
            self.close()  # a client that does not read: end its watch, it will re-watch
            return
        self.events.append(out)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, timeout: float) -> None:
        """Return when events are buffered, the watch is closed, or ``timeout`` passed."""
        if self.events or self.closed:
            return
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(timeout, _settle, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def close(self) -> None:
        self.closed = True
        self._wake()


def _settle(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class ResourceCache:
    """Current objects of one resource, and its recent events."""

    def __init__(self, resource: Resource) -> None:
        self.resource = resource
        self.items: dict[str, CachedObject] = {}
        self._sorted: list[str] | None = []
        self.ring: deque[CacheEvent] = deque(maxlen=RING_CAPACITY)
        # Watches from a revision below this one may have missed events: 410.
        self.floor = 0
        self.watchers: set[Watcher] = set()

    def sorted_keys(self) -> list[str]:
        if self._sorted is None:
            self._sorted = sorted(self.items)
        return self._sorted

    def put(self, obj: CachedObject) -> CachedObject | None:
        prev = self.items.get(obj.key)
        self.items[obj.key] = obj
        if prev is None:
            self._sorted = None
        return prev

    def remove(self, key: str) -> CachedObject | None:
        prev = self.items.pop(key, None)
        if prev is not None:
            self._sorted = None
        return prev

    def record(self, event: CacheEvent) -> None:
        if len(self.ring) == self.ring.maxlen:
            self.floor = self.ring[0].revision
        self.ring.append(event)
        for watcher in tuple(self.watchers):
            watcher.offer(event)

    def scan(
        self, namespace: str | None, start_key: str = ""
    ) -> Iterable[CachedObject]:
        """Objects in key order (optionally one namespace), from ``start_key`` inclusive."""
        keys = self.sorted_keys()
        prefix = self.resource.storage_prefix
        if namespace is not None and self.resource.namespaced:
            prefix = f"{prefix}{namespace}/"
        lo = bisect.bisect_left(keys, max(prefix, start_key))
        items = self.items
        for i in range(lo, len(keys)):
            key = keys[i]
            if not key.startswith(prefix):
                break
            yield items[key]


def cached_object(resource: Resource, key: str, value: bytes, revision: int) -> CachedObject:
    """Parse a stored value once: set its resourceVersion and pick out what selectors use."""
    return _cached_from(resource, key, orjson.loads(value), revision, value)


# Per resource (storage prefix), the selectable fields some field selector has named. Only
# these are read from each object as it is cached (every write's event pays for them);
# another is read on its first use (CachedObject.get).
_selected: dict[str, tuple[str, ...]] = {}


def select_fields(resource: Resource, paths: Iterable[str]) -> None:
    """Field selectors on ``resource`` name ``paths``: cache their values from now on."""
    have = _selected.get(resource.storage_prefix, ())
    wanted = [p for p in resource.field_selectors if p in paths and p not in have]
    if wanted:
        _selected[resource.storage_prefix] = (*have, *wanted)


def _cached_from(resource: Resource, key: str, obj: dict[str, Any], revision: int,
                 value: bytes) -> CachedObject:
    """``obj``, stored as ``value`` at ``revision``, as the cache holds it."""
    meta = obj.setdefault("metadata", {})
    meta["resourceVersion"] = str(revision)
    fields = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
    }
    for path in _selected.get(resource.storage_prefix, ()):
        fields[path] = field_value(obj, path)
    return CachedObject(
        key=key,
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        revision=revision,
        raw=objects.with_revision(value, obj, revision),
        labels=meta.get("labels") or {},
        fields=fields,
    )


class WatchCache:
    """All resource caches, kept current by one store watch."""

    def __init__(self, store: Store, resources: Iterable[Resource]) -> None:
        self.store = store
        self.caches: dict[str, ResourceCache] = {
            r.storage_prefix: ResourceCache(r) for r in resources if r.stored
        }
        self.revision = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()
        # Values the API server is writing, with the objects they encode: id -> (value, obj).
        self._expected: dict[int, tuple[bytes, dict[str, Any]]] = {}

    def cache_for(self, resource: Resource) -> ResourceCache:
        return self.caches[resource.storage_prefix]

    def expect(self, value: bytes, obj: dict[str, Any]) -> None:
        """The API server is about to store ``value``, the encoding of ``obj``: when the
        write's event arrives, the cache takes labels, fields and bytes from ``obj`` rather
        than parsing ``value`` again (the parse is most of what an event costs here). The
        writer must not change ``obj`` afterwards; the cache sets its resourceVersion, to
        the value the writer sets too. A write that fails is :meth:`withdraw`-n; the few
        that are not (a cancelled request) fall out after ``EXPECTED_LIMIT`` more."""
        expected = self._expected
        if len(expected) >= EXPECTED_LIMIT:
            del expected[next(iter(expected))]
        expected[id(value)] = (value, obj)

    def withdraw(self, value: bytes) -> None:
        """The write of ``value`` failed: no event will come for it."""
        entry = self._expected.get(id(value))
        if entry is not None and entry[0] is value:
            del self._expected[id(value)]

    async def start(self) -> None:
        await self._fill()
        self._task = asyncio.create_task(self._follow(), name="watchcache")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for cache in self.caches.values():
            for watcher in tuple(cache.watchers):
                watcher.close()

    async def _fill(self) -> None:
        result = await self.store.list("/registry/")
        for cache in self.caches.values():
            cache.items.clear()
            cache._sorted = None
            cache.ring.clear()
            cache.floor = result.revision
        for kv in result.kvs:
            cache = self.caches.get(_prefix_of(kv.key))
            if cache is not None:
                cache.put(cached_object(cache.resource, kv.key, kv.value, kv.mod_revision))
        self._advance(result.revision)
        self.ready.set()

    async def _follow(self) -> None:
        while True:
            try:
                async for event in self.store.watch("/registry/", from_revision=self.revision + 1):
                    self._apply(event)
            except asyncio.CancelledError:
                raise
            except (CompactedError, StorageError) as exc:
                log.warning("store watch ended (%s); re-listing", exc)
            except Exception:
                log.exception("watch cache failed to apply an event; re-listing")
            # Anything may have been missed: start over from a fresh list and end every
            # client watch, whose clients re-list and re-watch as they do after a 410.
            for cache in self.caches.values():
                for watcher in tuple(cache.watchers):
                    watcher.close()
            await asyncio.sleep(0.1)
            await self._fill()

    def _apply(self, event: WatchEvent) -> None:
        cache = self.caches.get(_prefix_of(event.kv.key))
        revision = event.revision
        if cache is not None:
            value = event.kv.value
            # Holding the value in _expected keeps its id from being reused meanwhile.
            hint = self._expected.pop(id(value), None) if self._expected else None
            if hint is not None and hint[0] is value and event.type != "DELETE":
                obj = _cached_from(cache.resource, event.kv.key, hint[1], revision, value)
            else:
                obj = cached_object(cache.resource, event.kv.key, value, revision)
            if event.type == "DELETE":
                prev = cache.remove(event.kv.key)
                cache.record(CacheEvent("DELETED", revision, obj, prev))
            else:
                prev = cache.put(obj)
                kind = "ADDED" if prev is None else "MODIFIED"
                cache.record(CacheEvent(kind, revision, obj, prev))
        self._advance(revision)

    def _advance(self, revision: int) -> None:
        if revision <= self.revision:
            return
        self.revision = revision
        if self._waiters:
            keep = []
            for wanted, fut in self._waiters:
                if wanted <= revision:
                    if not fut.done():
                        fut.set_result(None)
                else:
                    keep.append((wanted, fut))
            self._waiters = keep

    async def wait_for(self, revision: int, timeout: float = 3.0) -> bool:
        """Wait until the cache has seen ``revision``; False on timeout."""
        if self.revision >= revision:
            return True
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((revision, fut))
        try:
            await asyncio.wait_for(fut, timeout)
            return True
        except TimeoutError:
            return False

    async def wait_fresh(self) -> None:
        """Read-your-writes: wait until every acknowledged write is in the cache."""
        await self.wait_for(await self.store.revision())

    def watch(
        self,
        resource: Resource,
        namespace: str | None,
        matches: Matcher,
        since: int | None,
    ) -> Watcher:
        """A watcher of ``resource`` starting after revision ``since``; None means "now,
        preceded by ADDED events for every current object" (a watch without a
        resourceVersion, or with 0). Raises CompactedError when ``since`` is older than
        the ring holds."""
        cache = self.cache_for(resource)
        watcher = Watcher(namespace, matches)
        if since is None:
            for obj in cache.scan(namespace):
                watcher.offer(CacheEvent("ADDED", obj.revision, obj, None))
        else:
            if since < cache.floor:
                raise CompactedError(since, cache.floor)
            ring = cache.ring
            # Binary search the ring for the first event after `since`.
            lo, hi = 0, len(ring)
            while lo < hi:
                mid = (lo + hi) // 2
                if ring[mid].revision <= since:
                    lo = mid + 1
                else:
                    hi = mid
            for i in range(lo, len(ring)):
                watcher.offer(ring[i])
        cache.watchers.add(watcher)
        return watcher

    def unwatch(self, resource: Resource, watcher: Watcher) -> None:
        self.cache_for(resource).watchers.discard(watcher)
        watcher.close()


def _prefix_of(key: str) -> str:
    # "/registry/<group>/<plural>/..." -> "/registry/<group>/<plural>/"
    end = key.find("/", key.find("/", 10) + 1)
    return key[: end + 1]
