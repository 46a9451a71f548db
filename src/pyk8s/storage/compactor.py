"""Periodic compaction, the way kube-apiserver drives etcd's.

kube-apiserver compacts every ``--etcd-compaction-interval`` (5 minutes) to the revision it saw
one interval earlier, so every watcher can resume from any revision less than one interval
old. kine instead keeps the last N revisions. This compactor takes the older of the two
targets: history is kept for at least one interval *and* at least ``keep_revisions``
revisions, so a burst of writes cannot compact away a watcher that disconnected seconds ago,
and a quiet cluster still sheds its history.

It works on any :class:`Store`; a backend that compacts by itself (etcd with
``--auto-compaction-*``) simply does not start one. Time comes from an injectable ``sleep``
so tests drive :meth:`Compactor.tick` directly or on a fake clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .interface import StorageError, Store

log = logging.getLogger("pyk8s.storage.compactor")


@dataclass(frozen=True, slots=True)
class CompactorSettings:
    interval: float = 300.0
    """Seconds between compactions (kube-apiserver's default); 0 disables the compactor."""
    keep_revisions: int = 1000
    """Never compact away the most recent this-many revisions."""


class Compactor:
    """Compacts ``store`` every ``settings.interval`` seconds; see the module docstring."""

    def __init__(
        self,
        store: Store,
        settings: CompactorSettings = CompactorSettings(),
        *,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self._store = store
        self._settings = settings
        self._sleep = sleep
        self._last_seen = 0  # the revision observed at the previous tick

    async def tick(self) -> int:
        """Compact once if there is something to compact; returns the compacted revision."""
        current = await self._store.revision()
        target = min(self._last_seen, current - self._settings.keep_revisions)
        self._last_seen = current
        if target > self._store.compacted_revision:
            await self._store.compact(target)
            log.info("compacted store to revision %d (current %d)", target, current)
        return self._store.compacted_revision

    async def run(self) -> None:
        """Tick forever; a failed compaction is logged and retried at the next tick."""
        log.info(
            "compactor started (interval %ss, keep %d revisions)",
            self._settings.interval,
            self._settings.keep_revisions,
        )
        try:
            while True:
                await self._sleep(self._settings.interval)
                try:
                    await self.tick()
                except StorageError as exc:
                    log.warning("compaction failed: %s", exc)
        finally:
            log.info("compactor stopped")
