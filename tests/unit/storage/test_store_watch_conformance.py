"""The etcd contract, watch: replay from a revision, then follow, with no gap and no duplicate."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from store_backends import Backend

from pyk8s.storage import CompactedError, KeyValue, Store, WatchEvent


async def take(watch: AsyncIterator[WatchEvent], n: int, timeout: float = 5.0) -> list[WatchEvent]:
    async def collect() -> list[WatchEvent]:
        return [await anext(watch) for _ in range(n)]

    return await asyncio.wait_for(collect(), timeout)


async def nothing_more(watch: AsyncIterator[WatchEvent], wait: float = 0.05) -> bool:
    try:
        await asyncio.wait_for(anext(watch), wait)
    except TimeoutError:
        return True
    return False


async def aclose(watch: AsyncIterator[WatchEvent]) -> None:
    close = getattr(watch, "aclose", None)
    if close is not None:
        await close()


def summary(events: list[WatchEvent]) -> list[tuple[str, str, bytes, int]]:
    return [(e.type, e.kv.key, e.kv.value, e.revision) for e in events]


class TestReplay:
    def test_replay_from_a_revision_carries_values_and_prevs(self, backend: Backend) -> None:
        async def body(store: Store) -> None:
            c = await store.create("/w/a", b"1")
            u = await store.update("/w/a", b"2", expected_revision=c.mod_revision)
            d = await store.delete("/w/a")
            watch = store.watch("/w/", from_revision=c.mod_revision)
            create, update, delete = await take(watch, 3)
            assert create == WatchEvent("PUT", c, None)
            assert create.is_create
            assert update == WatchEvent("PUT", u, c)
            assert not update.is_create
            assert delete.type == "DELETE"
            assert delete.kv == d == KeyValue("/w/a", b"2", c.create_revision, d.mod_revision)
            assert delete.prev == u
            assert await nothing_more(watch)
            await aclose(watch)

        backend.run(body)

    def test_replay_starts_exactly_at_from_revision(self, backend: Backend) -> None:
        async def body(store: Store) -> None:
            kvs = [await store.create(f"/w/{i}", b"v") for i in range(5)]
            watch = store.watch("/w/", from_revision=kvs[2].mod_revision)
            events = await take(watch, 3)
            assert [e.kv for e in events] == kvs[2:]
            assert await nothing_more(watch)
            await aclose(watch)

        backend.run(body)

    def test_only_keys_under_the_prefix(self, backend: Backend) -> None:
        async def body(store: Store) -> None:
            base = await store.revision()
            for key in ["/w/a", "/wx", "/w/b", "/v/a"]:
                await store.create(key, b"v")
            watch = store.watch("/w/", from_revision=base + 1)
            assert [e.kv.key for e in await take(watch, 2)] == ["/w/a", "/w/b"]
            await store.create("/wy", b"v")
            await store.create("/w/c", b"v")
            assert [e.kv.key for e in await take(watch, 1)] == ["/w/c"]
            await aclose(watch)

        backend.run(body)

    def test_long_replay_spans_many_pages(self, backend: Backend) -> None:
        async def body(store: Store) -> None:
            base = await store.revision()
            await asyncio.gather(*(store.create(f"/w/{i:05d}", b"v") for i in range(2500)))
            watch = store.watch("/w/", from_revision=base + 1)
            events = await take(watch, 2500)
            assert [e.revision for e in events] == list(range(base + 1, base + 2501))
            assert await nothing_more(watch)
            await aclose(watch)

        backend.run(body)


class TestLive:
    def test_from_now_sees_only_later_changes(self, backend: Backend) -> None:
        async def body(store: Store) -> None:
            await store.create("/w/old", b"v")
            watch = store.watch("/w/", from_revision=0)
            assert await nothing_more(watch)
            new = await store.create("/w/new", b"v")
            assert [e.kv for e in await take(watch, 1)] == [new]
            await aclose(watch)

        backend.run(body)

    def test_a_future_from_revision_waits_for_it(self, backend: Backend) -> None:
        async def body(store: Store) -> None:
            start = await store.revision() + 3
            watch = store.watch("/w/", from_revision=start)
            assert await nothing_more(watch)
            kvs = [await store.create(f"/w/{i}", b"v") for i in range(4)]
            assert [e.kv for e in await take(watch, 2)] == kvs[2:]
            await aclose(watch)

        backend.run(body)

    def test_no_gap_or_duplicate_when_writes_race_the_watch_start(self, backend: Backend) -> None:
        async def body(store: Store) -> None:
            base = await store.revision()
            total = 600

            async def writer(w: int) -> None:
                for i in range(total // 6):
                    await store.create(f"/w/{w}/{i:04d}", b"v")

            writers = asyncio.gather(*(writer(w) for w in range(6)))
            watches = []
            for _ in range(8):  # start watches from an early revision while writes stream in
                await asyncio.sleep(0.002)
                watches.append(store.watch("/w/", from_revision=base + 1))
                await anext(watches[-1])
            await writers
            for watch in watches:
                rest = await take(watch, total - 1)
                assert [e.revision for e in rest] == list(range(base + 2, base + total + 1))
                assert await nothing_more(watch)
                await aclose(watch)

        backend.run(body)

    def test_many_watchers_see_the_same_stream(self, backend: Backend) -> None:
        async def body(store: Store) -> None:
            watches = [store.watch("/w/", from_revision=0) for _ in range(10)]
            for watch in watches:
                assert await nothing_more(watch, 0.001)
            kvs = await asyncio.gather(*(store.create(f"/w/{i}", b"v") for i in range(50)))
            for watch in watches:
                assert [e.kv for e in await take(watch, 50)] == list(kvs)
                await aclose(watch)

        backend.run(body)


class TestEnd:
    def test_watch_below_compaction_fails_on_first_next(self, backend: Backend) -> None:
        async def body(store: Store) -> None:
            a = await store.create("/w/a", b"1")
            await store.update("/w/a", b"2", expected_revision=a.mod_revision)
            now = await store.revision()
            await store.compact(now)
            watch = store.watch("/w/", from_revision=a.mod_revision)  # creating it is fine
            with pytest.raises(CompactedError):
                await anext(watch)
            at = store.watch("/w/", from_revision=now)
            assert [e.kv.value for e in await take(at, 1)] == [b"2"]
            await aclose(at)

        backend.run(body)

    def test_replay_from_the_compacted_revision_keeps_prevs(self, backend: Backend) -> None:
        async def body(store: Store) -> None:
            a = await store.create("/w/a", b"1")
            a2 = await store.update("/w/a", b"2", expected_revision=a.mod_revision)
            a3 = await store.update("/w/a", b"3", expected_revision=a2.mod_revision)
            await store.compact(a2.mod_revision)
            events = await take(store.watch("/w/", from_revision=a2.mod_revision), 2)
            assert [(e.kv, e.prev) for e in events] == [(a2, a), (a3, a2)]

        backend.run(body)

    def test_close_ends_watches(self, backend: Backend) -> None:
        async def body() -> None:
            store = await backend.open()
            watch = store.watch("/w/", from_revision=0)
            waiting = asyncio.ensure_future(anext(watch))
            await asyncio.sleep(0.01)
            await store.close()
            with pytest.raises(StopAsyncIteration):
                await asyncio.wait_for(waiting, 2)

        asyncio.run(body())

    def test_aclose_ends_one_watch_only(self, backend: Backend) -> None:
        async def body(store: Store) -> None:
            first = store.watch("/w/", from_revision=0)
            second = store.watch("/w/", from_revision=0)
            assert await nothing_more(first, 0.001)
            assert await nothing_more(second, 0.001)
            await aclose(first)
            kv = await store.create("/w/a", b"v")
            with contextlib.suppress(StopAsyncIteration):
                event = await asyncio.wait_for(anext(first), 0.5)
                pytest.fail(f"closed watch produced {event}")
            assert [e.kv for e in await take(second, 1)] == [kv]
            await aclose(second)

        backend.run(body)
