"""Watch fan-out for backends that have no native watch: a hub plus a replay-then-follow
iterator.

The hub lives on the event loop thread. The backend calls :meth:`WatchHub.publish` once per
committed batch, in revision order, *in the same loop callback* that advances the backend's
published revision. That gives the iterator its no-gap/no-duplicate guarantee without locks:

1. subscribe (from now on, every published event reaches the subscription's buffer);
2. read the published revision ``R`` in the same synchronous step, so exactly the events
   with revision > R arrive live;
3. replay revisions ``[from_revision, R]`` from the backend's history, page by page;
4. follow the buffer, skipping anything at or below the last revision yielded (a safety net;
   by construction nothing is duplicated).

Each subscription's buffer is bounded. Publishing never waits: when a consumer falls more than
``limit`` events behind (give or take one batch), its buffer is dropped, it leaves the hub and
its next ``__anext__`` raises :class:`WatchOverflowError`, so a stuck watcher costs writers
nothing and memory stays bounded. The consumer re-lists, as Kubernetes clients do.

Deliberately not here: filtering beyond a key prefix (the API server's watch cache does
that), and any I/O (history is read through the callable the backend passes in).
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from enum import Enum

from .interface import CompactedError, StorageError, WatchEvent, WatchOverflowError

HistoryReader = Callable[[str, int, int, int], Awaitable[list[WatchEvent]]]
"""``history(prefix, first, last, limit)``: events under prefix with first <= revision <=
last, in revision order, at most ``limit``."""


class _State(Enum):
    OPEN = "open"
    OVERFLOWED = "overflowed"
    CLOSED = "closed"


class Subscription:
    """One watcher's live buffer. Written by :meth:`WatchHub.publish`, read by one iterator."""

    __slots__ = ("events", "limit", "min_revision", "prefix", "state", "waiter")

    def __init__(self, prefix: str, min_revision: int, limit: int) -> None:
        self.prefix = prefix
        self.min_revision = min_revision
        self.limit = limit
        self.events: deque[WatchEvent] = deque()
        self.state = _State.OPEN
        self.waiter: asyncio.Future[None] | None = None

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def end(self, state: _State) -> None:
        if self.state is _State.OPEN:
            self.state = state
        self.events.clear()
        self.wake()

    def raise_if_ended(self) -> None:
        if self.state is _State.CLOSED:
            raise StopAsyncIteration
        if self.state is _State.OVERFLOWED:
            raise WatchOverflowError(self.prefix, self.limit)

    async def get(self) -> WatchEvent:
        while True:
            self.raise_if_ended()
            if self.events:
                return self.events.popleft()
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None


class WatchHub:
    """The set of live subscriptions of one store."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._subs: dict[Subscription, None] = {}  # insertion-ordered set
        self._closed = False

    def __len__(self) -> int:
        return len(self._subs)

    def subscribe(self, prefix: str, min_revision: int) -> Subscription:
        sub = Subscription(prefix, min_revision, self._limit)
        if self._closed:
            sub.end(_State.CLOSED)
        else:
            self._subs[sub] = None
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.pop(sub, None)
        sub.end(_State.CLOSED)

    def publish(self, events: list[WatchEvent]) -> None:
        """Append a committed batch (in revision order) to every matching subscription."""
        if not events or not self._subs:
            return
        overflowed = []
        for sub in self._subs:
            prefix, floor, buf = sub.prefix, sub.min_revision, sub.events
            before = len(buf)
            for ev in events:
                kv = ev.kv
                if kv.mod_revision >= floor and kv.key.startswith(prefix):
                    buf.append(ev)
            if len(buf) > sub.limit:
                overflowed.append(sub)
            elif len(buf) != before:
                sub.wake()
        for sub in overflowed:
            del self._subs[sub]
            sub.end(_State.OVERFLOWED)

    def close(self) -> None:
        """End every watch, now and future: their iterators stop (StopAsyncIteration)."""
        self._closed = True
        subs, self._subs = self._subs, {}
        for sub in subs:
            sub.end(_State.CLOSED)


class HubWatch:
    """``Store.watch`` for hub-based backends: replay history, then follow the hub.

    Nothing happens until the first ``__anext__``, so a watch that is created but never
    iterated holds no subscription.
    """

    def __init__(
        self,
        hub: WatchHub,
        prefix: str,
        from_revision: int,
        *,
        published_revision: Callable[[], int],
        compacted_revision: Callable[[], int],
        history: HistoryReader,
        page_size: int = 1000,
    ) -> None:
        self._hub = hub
        self._prefix = prefix
        self._from = from_revision
        self._published = published_revision
        self._compacted = compacted_revision
        self._history = history
        self._page_size = page_size
        self._sub: Subscription | None = None
        self._next = 0  # the least revision not yet yielded
        self._cursor = 0  # the next revision to read from history
        self._replay_to = 0  # the last revision to read from history
        self._pending: deque[WatchEvent] = deque()
        self._finalizer: weakref.finalize[[Subscription], HubWatch] | None = None

    def __aiter__(self) -> HubWatch:
        return self

    def _start(self) -> Subscription:
        published = self._published()
        start = self._from if self._from > 0 else published + 1
        compacted = self._compacted()
        if start < compacted:
            raise CompactedError(start, compacted)
        sub = self._hub.subscribe(self._prefix, start)
        self._finalizer = weakref.finalize(self, self._hub.unsubscribe, sub)
        self._sub = sub
        self._next = self._cursor = start
        self._replay_to = published
        return sub

    async def __anext__(self) -> WatchEvent:
        sub = self._sub if self._sub is not None else self._start()
        try:
            while True:
                sub.raise_if_ended()
                if self._pending:
                    ev = self._pending.popleft()
                    self._next = ev.revision + 1
                    return ev
                if self._cursor <= self._replay_to:
                    await self._replay_page(sub)
                    continue
                ev = await sub.get()
                if ev.revision >= self._next:
                    self._next = ev.revision + 1
                    return ev
        except (CompactedError, WatchOverflowError):
            self._hub.unsubscribe(sub)
            raise

    async def _replay_page(self, sub: Subscription) -> None:
        first = self._cursor
        try:
            page = await self._history(self._prefix, first, self._replay_to, self._page_size)
        except StorageError:
            if sub.state is _State.CLOSED:  # the store closed under the read: just end
                return
            raise
        # Compaction raises its in-memory mark before deleting anything, so if the mark is not
        # above where this page started, every row the page needed was still there.
        compacted = self._compacted()
        if compacted > first:
            raise CompactedError(first, compacted)
        if sub.state is not _State.OPEN:
            return
        if len(page) < self._page_size:
            self._cursor = self._replay_to + 1
        else:
            self._cursor = page[-1].revision + 1
        self._pending.extend(page)

    async def aclose(self) -> None:
        """End the watch now; further ``__anext__`` calls raise StopAsyncIteration."""
        self._pending.clear()
        if self._sub is None:
            self._sub = Subscription(self._prefix, 0, 0)
            self._sub.end(_State.CLOSED)
        else:
            self._hub.unsubscribe(self._sub)
        if self._finalizer is not None:
            self._finalizer.detach()
