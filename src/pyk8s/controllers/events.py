"""Events: the user-visible record of what a controller did (``kubectl describe``'s table).

Controllers call :meth:`EventRecorder.event` synchronously and carry on; a single background
task writes core/v1 Events in order. Like upstream's EventRecorder, a repeat of the same event
(same object, type, reason and message) within ten minutes is not a new object: the existing
Event's ``count`` and ``lastTimestamp`` are patched instead. Writing events is best effort: a
failure (the namespace is terminating, the server is away) is logged and dropped, never
retried into a controller's work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from pyk8s.client import ApiClient
from pyk8s.machinery.errors import ApiError
from pyk8s.machinery.meta import now_rfc3339
from pyk8s.machinery.resources import CATALOGUE, Resource

Obj = dict[str, Any]
EVENTS = CATALOGUE.resource("v1", "events")
_AGGREGATE_WINDOW = 600.0
_MAX_REMEMBERED = 4096
_QUEUE_LIMIT = 1000

log = logging.getLogger("pyk8s.controllers.events")


@dataclass
class _Seen:
    name: str
    namespace: str
    count: int
    at: float


class EventRecorder:
    def __init__(self, client: ApiClient, component: str, host: str = "") -> None:
        self._client = client
        self._component = component
        self._host = host
        self._queue: asyncio.Queue[tuple[Obj, str]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._seen: dict[tuple[str, ...], _Seen] = {}

    def event(self, obj: Obj, resource: Resource, type_: str, reason: str, message: str) -> None:
        """Queue an event about ``obj`` (an object of ``resource``)."""
        meta = obj.get("metadata") or {}
        involved = {
            "kind": resource.kind, "apiVersion": resource.api_version,
            "name": meta.get("name", ""), "uid": meta.get("uid", ""),
            "resourceVersion": meta.get("resourceVersion", ""),
        }
        if meta.get("namespace"):
            involved["namespace"] = meta["namespace"]
        if self._queue is None:
            self._queue = asyncio.Queue(_QUEUE_LIMIT)
            self._task = asyncio.ensure_future(self._send_loop())
        try:
            self._queue.put_nowait(({"involvedObject": involved, "type": type_,
                                     "reason": reason, "message": message}, now_rfc3339()))
        except asyncio.QueueFull:
            log.warning("event queue full, dropping reason=%s object=%s", reason, meta.get("name"))

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
            item, stamp = await self._queue.get()
            try:
                await self._send(item, stamp)
            except asyncio.CancelledError:
                raise
            except ApiError as exc:
                log.debug("event not written reason=%s: %s", item["reason"], exc.message)
            except Exception:
                log.exception("event not written reason=%s", item["reason"])
            finally:
                self._queue.task_done()

    async def _send(self, item: Obj, stamp: str) -> None:
        involved = item["involvedObject"]
        namespace = involved.get("namespace") or "default"
        ident = (involved["uid"], involved["kind"], involved["name"], item["type"],
                 item["reason"], item["message"])
        now = time.monotonic()
        seen = self._seen.get(ident)
        if seen is not None and now - seen.at < _AGGREGATE_WINDOW:
            seen.count += 1
            seen.at = now
            try:
                await self._client.patch(EVENTS, seen.namespace, seen.name,
                                         {"count": seen.count, "lastTimestamp": stamp},
                                         patch_type="merge")
                return
            except ApiError as exc:
                if exc.code != 404:
                    raise
        name = f"{involved['name']}.{time.time_ns():x}"
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": involved,
            "reason": item["reason"], "message": item["message"], "type": item["type"],
            "source": {"component": self._component, **({"host": self._host} if self._host else {})},
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
            "reportingComponent": self._component, "reportingInstance": self._host,
        }
        await self._client.create(EVENTS, body, namespace=namespace)
        if len(self._seen) > _MAX_REMEMBERED:
            self._seen.clear()
        self._seen[ident] = _Seen(name, namespace, 1, now)
