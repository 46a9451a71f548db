"""The periodic compactor keeps at least one interval and at least N revisions of history;
time is a fake ``sleep`` the test releases tick by tick."""

from __future__ import annotations

import asyncio

from store_backends import Backend

from pyk8s.storage import Store
from pyk8s.storage.compactor import Compactor, CompactorSettings


async def bump(store: Store, n: int) -> int:
    for _ in range(n):
        kv = await store.get("/c/a")
        if kv is None:
            await store.create("/c/a", b"v")
        else:
            await store.update("/c/a", b"v", expected_revision=kv.mod_revision)
    return await store.revision()


class FakeClock:
    """``sleep`` that returns only when the test calls :meth:`advance`."""

    def __init__(self) -> None:
        self.sleeping = asyncio.Queue[asyncio.Future[None]]()

    async def sleep(self, seconds: float) -> None:
        wake = asyncio.get_running_loop().create_future()
        await self.sleeping.put(wake)
        await wake

    async def advance(self) -> None:
        (await self.sleeping.get()).set_result(None)


class TestCompactor:
    def test_compacts_to_the_revision_seen_one_interval_ago(self, backend: Backend) -> None:
        async def body(store: Store) -> None:
            compactor = Compactor(store, CompactorSettings(interval=300, keep_revisions=0))
            first = await bump(store, 5)
            before = store.compacted_revision
            assert await compactor.tick() == before  # nothing seen an interval ago yet
            await bump(store, 5)
            assert await compactor.tick() == first
            second_seen = await store.revision()
            await bump(store, 1)
            assert await compactor.tick() == second_seen

        backend.run(body)

    def test_never_discards_the_last_keep_revisions(self, backend: Backend) -> None:
        async def body(store: Store) -> None:
            compactor = Compactor(store, CompactorSettings(interval=300, keep_revisions=8))
            await bump(store, 10)
            before = store.compacted_revision
            await compactor.tick()
            now = await bump(store, 3)
            assert await compactor.tick() == max(before, now - 8)

        backend.run(body)

    def test_runs_on_its_clock_until_cancelled(self, backend: Backend) -> None:
        async def body(store: Store) -> None:
            clock = FakeClock()
            compactor = Compactor(
                store, CompactorSettings(interval=300, keep_revisions=0), sleep=clock.sleep
            )
            task = asyncio.ensure_future(compactor.run())
            seen = await bump(store, 4)
            await clock.advance()  # first tick: remembers `seen`
            await bump(store, 4)
            await clock.advance()  # second tick: compacts to `seen`
            await clock.sleeping.get()  # the third sleep has begun: the tick is done
            assert store.compacted_revision == seen
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        backend.run(body)
