"""A rate-limited, de-duplicating work queue, as client-go's.

Keys, not objects, are queued: a key added many times while waiting is processed once, and a
key added while it is being processed is queued again when ``done`` is called, so one key is
never processed by two workers at once and no change is lost. ``add_rate_limited`` delays a
failing key with per-key exponential back-off; ``forget`` resets it after a success.
"""

from __future__ import annotations

import asyncio
from collections import deque

from pyk8s.client.clock import SYSTEM_CLOCK, Clock


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
        self._waiting: set[asyncio.Task[None]] = set()
        self._ready = asyncio.Event()
        self._shutdown = False

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, key: str) -> None:
        if self._shutdown or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return
        self._queue.append(key)
        self._ready.set()

    def add_after(self, key: str, seconds: float) -> None:
        if self._shutdown:
            return
        if seconds <= 0:
            self.add(key)
            return
        task = asyncio.get_running_loop().create_task(self._later(key, seconds))
        self._waiting.add(task)
        task.add_done_callback(self._waiting.discard)

    async def _later(self, key: str, seconds: float) -> None:
        await self.clock.sleep(seconds)
        self.add(key)

    def add_rate_limited(self, key: str) -> None:
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        self.add_after(key, min(self.base_delay * (2 ** failures), self.max_delay))

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    def num_requeues(self, key: str) -> int:
        return self._failures.get(key, 0)

    async def get(self) -> str | None:
        while not self._queue:
            if self._shutdown:
                return None
            self._ready.clear()
            await self._ready.wait()
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty and not self._shutdown:
            self._queue.append(key)
            self._ready.set()

    def shutdown(self) -> None:
        self._shutdown = True
        for task in self._waiting:
            task.cancel()
        self._ready.set()

    @property
    def shutting_down(self) -> bool:
        return self._shutdown
