"""What every controller shares: a work queue drained by N workers, and ownership helpers.

A controller is level-triggered: informer handlers only put keys on the queue; a worker takes
a key, calls :meth:`QueueController.sync`, which re-reads the informer caches and acts. An
exception requeues the key with per-key exponential back-off; a sync may also ask to be run
again after a delay (a minReadySeconds wait, a progress deadline). One key is never synced by
two workers at once (the queue guarantees it), so a sync needs no locks of its own.

Cached objects are shared with every other controller: code here copies before it changes
anything (``copy.deepcopy``), never edits what an informer returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from pyk8s.client import Informer, WorkQueue
from pyk8s.client.clock import SYSTEM_CLOCK, Clock
from pyk8s.controllers import indexes
from pyk8s.machinery.errors import ApiError
from pyk8s.machinery.selectors import label_selector_from_dict

Obj = dict[str, Any]


class QueueController:
    """A named controller whose work is a queue of object keys."""

    name = "controller"

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self.queue = WorkQueue(clock=clock)
        self.log = logging.getLogger(f"pyk8s.controllers.{self.name}")

    async def sync(self, key: str) -> float | None:
        """Reconcile one key. Returns seconds after which to look again, or None."""
        raise NotImplementedError

    async def process(self, key: str) -> None:
        """One queue item: sync, then forget, re-add later or back off."""
        try:
            after = await self.sync(key)
        except asyncio.CancelledError:
            raise
        except ApiError as exc:
            level = logging.DEBUG if exc.code in (404, 409) else logging.INFO
            self.log.log(level, "sync failed, will retry key=%s code=%s reason=%s: %.200s",
                          key, exc.code, exc.reason, exc.message)
            self.queue.add_rate_limited(key)
            return
        except Exception:
            self.log.exception("sync crashed, will retry key=%s", key)
            self.queue.add_rate_limited(key)
            return
        self.queue.forget(key)
        if after is not None:
            self.queue.add_after(key, max(after, 0.0))

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            if key is None:
                return
            try:
                await self.process(key)
            finally:
                self.queue.done(key)

    async def run(self, workers: int = 1) -> None:
        """Drain the queue with ``workers`` concurrent workers until cancelled."""
        self.log.info("starting controller=%s workers=%d", self.name, workers)
        try:
            await asyncio.gather(*(self._worker() for _ in range(max(workers, 1))))
        finally:
            self.queue.shutdown()
            self.log.info("stopped controller=%s", self.name)


def meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def key_of(obj: Obj) -> str:
    m = meta(obj)
    ns = m.get("namespace")
    return f"{ns}/{m.get('name', '')}" if ns else str(m.get("name", ""))


def split_key(key: str) -> tuple[str, str]:
    namespace, _, name = key.rpartition("/")
    return namespace, name


def controller_ref(obj: Obj) -> Obj | None:
    """The ownerReference marked ``controller: true``, if any."""
    for ref in meta(obj).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def cached_controller_key(obj: Obj, kind: str, owners: Informer) -> str | None:
    """The cache key of the ``kind`` object that controls ``obj``, if it is cached with the
    uid the reference names (a re-created owner of the same name is not the owner)."""
    ref = controller_ref(obj)
    if ref is None or ref.get("kind") != kind:
        return None
    key = f"{meta(obj).get('namespace', '')}/{ref.get('name', '')}"
    owner = owners.get(key)
    if owner is None or meta(owner).get("uid") != ref.get("uid"):
        return None
    return key


def selecting_keys(obj: Obj, candidates: Informer) -> list[str]:
    """Keys of the cached objects in ``obj``'s namespace whose non-empty selector matches
    its labels (the owners that could adopt it)."""
    labels = meta(obj).get("labels") or {}
    keys = []
    for owner in candidates.by_index(indexes.NAMESPACE, meta(obj).get("namespace", "")):
        selector = label_selector_from_dict((owner.get("spec") or {}).get("selector"))
        if selector is not None and not selector.empty and selector.matches(labels):
            keys.append(key_of(owner))
    return keys


class WrittenObjects:
    """The objects a controller itself wrote, used until its informer catches up.

    A sync that runs before the watch event of the controller's own previous write reached
    the cache would compute from, and write back with, the older resourceVersion: a 409
    conflict, a GET and a retry. Remembering each written object with the resourceVersions
    it superseded (the cached one, and our own earlier writes the cache may show on its way
    to this one) lets the next sync start from it instead. Once the cache shows any other
    version (ours arrived, or someone else's newer one), the cache wins again.
    """

    def __init__(self) -> None:
        self._items: dict[str, tuple[set[str | None], Obj]] = {}

    def wrote(self, replaced: str | None, written: Obj) -> None:
        """``written`` is what the server returned for a write that replaced the object's
        resourceVersion ``replaced``. It is kept as is: callers must not change it."""
        (written.get("metadata") or {}).pop("managedFields", None)  # as the informers cache
        key = key_of(written)
        entry = self._items.get(key)
        if entry is not None and meta(entry[1]).get("resourceVersion") == replaced:
            superseded = entry[0]  # ``replaced`` was our write, maybe not yet cached
            superseded.add(replaced)
        else:
            superseded = {replaced}
        self._items[key] = (superseded, written)

    def fresh(self, cached: Obj) -> Obj:
        """``cached``, or our own newer write of the same object if the cache lags."""
        if not self._items:
            return cached
        key = key_of(cached)
        entry = self._items.get(key)
        if entry is None:
            return cached
        superseded, written = entry
        m = meta(cached)
        if m.get("resourceVersion") in superseded and m.get("uid") == meta(written).get("uid"):
            return written
        del self._items[key]
        return cached

    def forget(self, key: str) -> None:
        self._items.pop(key, None)


def owner_reference(owner: Obj, api_version: str, kind: str) -> Obj:
    """The reference a controller puts on what it creates (upstream's NewControllerRef)."""
    m = meta(owner)
    return {"apiVersion": api_version, "kind": kind, "name": m.get("name", ""),
            "uid": m.get("uid", ""), "controller": True, "blockOwnerDeletion": True}


def is_deleting(obj: Obj) -> bool:
    return bool(meta(obj).get("deletionTimestamp"))


async def ignore_not_found(coro: Any) -> Any:
    """Await a write, treating 404 as success (the thing is already gone)."""
    try:
        return await coro
    except ApiError as exc:
        if exc.code != 404:
            raise
        return None


def spawn(tasks: set[asyncio.Task[Any]], coro: Any) -> None:
    """Run ``coro`` in the background, keeping a reference so it is not collected."""
    task = asyncio.ensure_future(coro)
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def cancel_all(tasks: set[asyncio.Task[Any]]) -> None:
    for task in list(tasks):
        task.cancel()
    for task in list(tasks):
        with contextlib.suppress(BaseException):
            await task
