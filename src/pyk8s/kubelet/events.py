"""Events about pods and the node (core/v1 Events), as the kubelet's recorder writes them.

``record()`` never blocks and never fails: events go on a queue that one task drains, so a
slow or unavailable API server cannot stall a pod worker (upstream's broadcaster does the
same). Repeats of the same (object, reason, message) within the process are folded into one
Event whose ``count`` and ``lastTimestamp`` grow, like upstream's correlator.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

from pyk8s.client import ApiClient, ApiError
from pyk8s.client.clock import Clock
from pyk8s.machinery.meta import rfc3339
from pyk8s.machinery.resources import CATALOGUE

log = logging.getLogger("pyk8s.kubelet.events")
EVENTS = CATALOGUE.resource("v1", "events")
Obj = dict[str, Any]
MAX_QUEUE = 1000


class EventRecorder:
    def __init__(self, client: ApiClient, node_name: str, clock: Clock) -> None:
        self.client = client
        self.node_name = node_name
        self.clock = clock
        self._queue: asyncio.Queue[tuple[Obj, str, str, str, str]] = asyncio.Queue(MAX_QUEUE)
        self._seen: dict[tuple[str, str, str, str], tuple[str, str, int]] = {}

    def record(self, obj: Obj, reason: str, message: str, type_: str = "Normal",
               field_path: str = "") -> None:
        try:
            self._queue.put_nowait((obj, reason, message, type_, field_path))
        except asyncio.QueueFull:
            log.warning("event dropped reason=%s", reason)

    async def run(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                await self._write(*item)
            except ApiError as exc:
                log.debug("event not written: %s", exc)
            except Exception:
                log.exception("event writer")

    async def flush(self, timeout: float = 2.0) -> None:
        """Write what is queued (for shutdown and tests)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not self._queue.empty() and asyncio.get_running_loop().time() < deadline:
            item = self._queue.get_nowait()
            with contextlib.suppress(ApiError):
                await self._write(*item)

    async def _write(self, obj: Obj, reason: str, message: str, type_: str,
                     field_path: str) -> None:
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        uid = meta.get("uid", "")
        key = (uid, field_path, reason, message)
        now = rfc3339(self.clock.now())
        seen = self._seen.get(key)
        if seen is not None:
            name, first, count = seen
            try:
                await self.client.patch(EVENTS, namespace, name,
                                        {"count": count + 1, "lastTimestamp": now})
                self._seen[key] = (name, first, count + 1)
                return
            except ApiError as exc:
                if exc.code != 404:
                    raise
        involved = {"kind": obj.get("kind") or "Pod", "apiVersion": obj.get("apiVersion") or "v1",
                    "name": meta.get("name"), "uid": uid}
        if meta.get("namespace"):
            involved["namespace"] = namespace
        if meta.get("resourceVersion"):
            involved["resourceVersion"] = meta["resourceVersion"]
        if field_path:
            involved["fieldPath"] = field_path
        name = f"{meta.get('name')}.{uuid.uuid4().hex[:16]}"
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": involved, "reason": reason, "message": message[:1024],
            "source": {"component": "kubelet", "host": self.node_name},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1, "type": type_,
            "reportingComponent": "kubelet", "reportingInstance": self.node_name,
        }
        await self.client.create(EVENTS, event, namespace=namespace)
        if len(self._seen) > 4096:
            self._seen.clear()
        self._seen[key] = (name, now, 1)
