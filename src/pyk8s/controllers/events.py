"""Events: the user-visible record of what a controller did (``kubectl describe``'s table).

Controllers call :meth:`EventRecorder.event` synchronously and carry on; a single background
task writes core/v1 Events in order. Before anything is queued, an event goes through
upstream's EventCorrelator (client-go ``tools/record/events_cache.go``), in its order:

1. aggregation: once 10 events about one object differ only by message within 10 minutes,
   the next ones become one "(combined from similar events): ..." Event;
2. counting: a repeat of an event already written (same object, type, reason and message, or
   the same combined event) patches that Event's ``count``, ``lastTimestamp`` and ``message``
   instead of creating a new object;
3. spam filtering: a token bucket per source and involved object (burst 25, refilled at one
   event per 5 minutes) drops the rest, so a ReplicaSet creating 3,000 pods writes 25 Events,
   not 3,000.

All three decisions are local (no server round trip), so they are made in :meth:`event` on
the injectable clock, and a filtered event costs no request at all. Writing events is best
effort: a failure (the namespace is terminating, the server is away) is logged and dropped,
never retried into a controller's work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pyk8s.client import ApiClient
from pyk8s.client.clock import SYSTEM_CLOCK, Clock
from pyk8s.machinery.errors import ApiError
from pyk8s.machinery.meta import rfc3339
from pyk8s.machinery.resources import CATALOGUE, Resource

Obj = dict[str, Any]
EVENTS = CATALOGUE.resource("v1", "events")
_QUEUE_LIMIT = 1000

# client-go tools/record/events_cache.go defaults.
MAX_LRU_CACHE_ENTRIES = 4096
AGGREGATE_MAX_EVENTS = 10
AGGREGATE_INTERVAL = 600.0
SPAM_BURST = 25
SPAM_QPS = 1.0 / 300.0
COMBINED_PREFIX = "(combined from similar events): "

log = logging.getLogger("pyk8s.controllers.events")

K = TypeVar("K")
V = TypeVar("V")


class _Lru(Generic[K, V]):
    """A bounded map that forgets the least recently used entry (groupcache's lru.Cache)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        if len(self._items) > self._size:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class _Bucket:
    tokens: float
    at: float


class SpamFilter:
    """Upstream's EventSourceObjectSpamFilter: ``burst`` events per source+object, then
    ``qps`` more per second (a token bucket that starts full)."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK, *, burst: int = SPAM_BURST,
                 qps: float = SPAM_QPS, size: int = MAX_LRU_CACHE_ENTRIES) -> None:
        self._clock = clock
        self._burst = burst
        self._qps = qps
        self._buckets: _Lru[tuple[str, ...], _Bucket] = _Lru(size)

    def allow(self, key: tuple[str, ...]) -> bool:
        """Take a token for ``key``; False when there is none (the event is dropped)."""
        now = self._clock.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(float(self._burst), now)
        else:
            bucket.tokens = min(float(self._burst), bucket.tokens + (now - bucket.at) * self._qps)
            bucket.at = now
        self._buckets.put(key, bucket)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        return False


@dataclass
class _Similar:
    messages: set[str] = field(default_factory=set)
    at: float = 0.0


class Aggregator:
    """Upstream's EventAggregator keyed by reason: when ``max_events`` different messages
    for one (object, type, reason) are seen with less than ``interval`` between them, the
    event is replaced by a combined one (keyed by the group, so later ones count on it)."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK, *, max_events: int = AGGREGATE_MAX_EVENTS,
                 interval: float = AGGREGATE_INTERVAL, size: int = MAX_LRU_CACHE_ENTRIES) -> None:
        self._clock = clock
        self._max = max_events
        self._interval = interval
        self._groups: _Lru[tuple[str, ...], _Similar] = _Lru(size)

    def aggregate(self, group: tuple[str, ...], message: str) -> str | None:
        """The combined message to write instead of ``message``, or None to write it as is."""
        now = self._clock.monotonic()
        record = self._groups.get(group)
        if record is None or now - record.at > self._interval:
            record = _Similar()
        record.messages.add(message)
        record.at = now
        self._groups.put(group, record)
        if len(record.messages) < self._max:
            return None
        record.messages.pop()  # upstream's PopAny: the set never grows past the maximum
        return COMBINED_PREFIX + message


@dataclass
class _Logged:
    name: str
    count: int
    first: str


class EventRecorder:
    def __init__(self, client: ApiClient, component: str, host: str = "",
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self._client = client
        self._component = component
        self._host = host
        self._clock = clock
        self._queue: asyncio.Queue[tuple[Obj, Obj | None]] | None = None
        self._task: asyncio.Task[None] | None = None
        self.aggregator = Aggregator(clock)
        self.spam_filter = SpamFilter(clock)
        self._logged: _Lru[tuple[str, ...], _Logged] = _Lru(MAX_LRU_CACHE_ENTRIES)

    def event(self, obj: Obj, resource: Resource, type_: str, reason: str, message: str) -> None:
        """Record an event about ``obj`` (an object of ``resource``): correlate it now, and
        queue the write unless it was filtered."""
        meta = obj.get("metadata") or {}
        name = str(meta.get("name", ""))
        namespace = str(meta.get("namespace") or "")
        uid = str(meta.get("uid", ""))
        source = (self._component, self._host, resource.kind, namespace, name, uid,
                  resource.api_version)
        combined = self.aggregator.aggregate((*source, type_, reason), message)
        if combined is None:
            key: tuple[str, ...] = (*source, type_, reason, message)
        else:
            key, message = (*source, type_, reason), combined
        stamp = rfc3339(self._clock.now())
        logged = self._logged.get(key)
        patch: Obj | None = None
        if logged is not None:
            logged.count += 1
            patch = {"count": logged.count, "lastTimestamp": stamp, "message": message}
        else:
            logged = _Logged(f"{name}.{time.time_ns():x}", 1, stamp)
            self._logged.put(key, logged)
        if not self.spam_filter.allow(source):
            return
        involved = {"kind": resource.kind, "apiVersion": resource.api_version, "name": name,
                    "uid": uid, "resourceVersion": meta.get("resourceVersion", "")}
        if namespace:
            involved["namespace"] = namespace
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": logged.name, "namespace": namespace or "default"},
            "involvedObject": involved, "reason": reason, "message": message, "type": type_,
            "source": {"component": self._component, **({"host": self._host} if self._host else {})},
            "firstTimestamp": logged.first, "lastTimestamp": stamp, "count": logged.count,
            "reportingComponent": self._component, "reportingInstance": self._host,
        }
        if self._queue is None:
            self._queue = asyncio.Queue(_QUEUE_LIMIT)
            self._task = asyncio.ensure_future(self._send_loop())
        try:
            self._queue.put_nowait((body, patch))
        except asyncio.QueueFull:
            log.warning("event queue full, dropping reason=%s object=%s", reason, name)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None
            self._queue = None

    async def flush(self) -> None:
        """Wait until every queued event has been written (tests)."""
        if self._queue is not None:
            await self._queue.join()

    async def _send_loop(self) -> None:
        assert self._queue is not None
        while True:
            body, patch = await self._queue.get()
            try:
                await self._send(body, patch)
            except asyncio.CancelledError:
                raise
            except ApiError as exc:
                log.debug("event not written reason=%s: %s", body["reason"], exc.message)
            except Exception:
                log.exception("event not written reason=%s", body["reason"])
            finally:
                self._queue.task_done()

    async def _send(self, body: Obj, patch: Obj | None) -> None:
        """Patch the Event already written for this key, or create it (also when the one to
        patch has gone, as upstream's recordToSink does)."""
        namespace = body["metadata"]["namespace"]
        if patch is not None:
            try:
                await self._client.patch(EVENTS, namespace, body["metadata"]["name"], patch,
                                         patch_type="merge")
                return
            except ApiError as exc:
                if exc.code != 404:
                    raise
        await self._client.create(EVENTS, body, namespace=namespace)
