"""A rate-limited, de-duplicating work queue, as client-go's.

Keys, not objects, are queued: a key added many times while waiting is processed once, and a
key added while it is being processed is queued again when ``done`` is called, so one key is
never processed by two workers at once and no change is lost. ``add_rate_limited`` delays a
failing key with per-key exponential back-off; ``forget`` resets it after a success.

Delayed keys (``add_after``, hence ``add_rate_limited``) wait as client-go's delaying queue
keeps them: in one heap of (ready time, key), drained by one waiter that sleeps until the
earliest ready time, so 10,000 waiting keys cost one timer, not a task each. A key already
waiting keeps the earlier of its two ready times; a plain ``add`` does not cancel its wait
(it is then added again when ready, which the de-duplication absorbs if still queued).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque

from pyk8s.client.clock import SYSTEM_CLOCK, Clock

# Ready times are float sums: one a microsecond ahead of the clock counts as ready, so a key
# due exactly when a (fake) clock reaches a time is not held back by a rounding error.
EARLY = 1e-6

_Entry = tuple[float, int, str]


class WorkQueue:
    def __init__(self, *, base_delay: float = 0.005, max_delay: float = 300.0,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.clock = clock
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._failures: dict[str, int] = {}
        # Idle ``get`` calls, oldest first: a key queued wakes one of them, not all.
        self._getters: deque[asyncio.Future[None]] = deque()
        # Delayed keys: a heap of entries and each key's live entry (an entry replaced by an
        # earlier one stays in the heap and is skipped when popped).
        self._heap: list[_Entry] = []
        self._waiting: dict[str, _Entry] = {}
        self._seq = itertools.count()
        self._waiter: asyncio.Task[None] | None = None
        self._waiter_due = float("inf")  # the ready time the waiter sleeps until
        self._shutdown = False

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def waiting(self) -> int:
        """How many keys wait for their ready time."""
        return len(self._waiting)

    def add(self, key: str) -> None:
        if self._shutdown or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return
        self._queue.append(key)
        self._wake_getter()

    def add_after(self, key: str, seconds: float) -> None:
        if self._shutdown:
            return
        if seconds <= 0:
            self.add(key)
            return
        ready_at = self.clock.monotonic() + seconds
        entry = self._waiting.get(key)
        if entry is not None and entry[0] <= ready_at:
            return  # it is added by then anyway
        entry = (ready_at, next(self._seq), key)
        self._waiting[key] = entry
        heapq.heappush(self._heap, entry)
        waiter = self._waiter
        if waiter is None or waiter.done() or ready_at < self._waiter_due:
            self._start_waiter()

    def add_rate_limited(self, key: str) -> None:
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        self.add_after(key, min(self.base_delay * (2 ** failures), self.max_delay))

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    def num_requeues(self, key: str) -> int:
        return self._failures.get(key, 0)

    async def get(self) -> str | None:
        """The next key (which the caller must pass to ``done``), or None once shut down."""
        while not self._queue:
            if self._shutdown:
                return None
            getter = asyncio.get_running_loop().create_future()
            self._getters.append(getter)
            try:
                await getter
            except asyncio.CancelledError:
                if getter.done() and not getter.cancelled():
                    self._wake_getter()  # woken, then cancelled: the key is someone else's
                raise
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty and not self._shutdown:
            self._queue.append(key)
            self._wake_getter()

    def shutdown(self) -> None:
        self._shutdown = True
        if self._waiter is not None:
            self._waiter.cancel()
            self._waiter = None
        self._heap.clear()
        self._waiting.clear()
        while self._getters:
            getter = self._getters.popleft()
            if not getter.done():
                getter.set_result(None)

    @property
    def shutting_down(self) -> bool:
        return self._shutdown

    # -- internals -------------------------------------------------------------------------

    def _wake_getter(self) -> None:
        while self._getters:
            getter = self._getters.popleft()
            if not getter.done():
                getter.set_result(None)
                return

    def _start_waiter(self) -> None:
        """(Re)start the one waiter: none runs (or it was cancelled with its loop), or a key
        is ready before the time it sleeps until."""
        if self._waiter is not None:
            self._waiter.cancel()
        self._waiter_due = self._heap[0][0]
        self._waiter = asyncio.get_running_loop().create_task(self._wait())

    async def _wait(self) -> None:
        heap, waiting = self._heap, self._waiting
        while heap:
            now = self.clock.monotonic()
            while heap and heap[0][0] <= now + EARLY:
                entry = heapq.heappop(heap)
                key = entry[2]
                if waiting.get(key) is entry:
                    del waiting[key]
                    self.add(key)
            while heap and waiting.get(heap[0][2]) is not heap[0]:
                heapq.heappop(heap)  # replaced by an earlier entry: nothing to wait for
            if heap:
                self._waiter_due = heap[0][0]
                # Half the tolerance early, so the wake-up finds it ready despite rounding.
                await self.clock.sleep(heap[0][0] - now - EARLY / 2)
        self._waiter = None
        self._waiter_due = float("inf")
