"""What the SQLite backend promises beyond the shared contract: durability, bounded files,
group commit, slow watchers, one owner per file, and how it is opened."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import uvloop
from store_backends import Backend

from pyk8s.storage import (
    CompactedError,
    KeyValue,
    StorageError,
    Store,
    WatchOverflowError,
    open_store,
)
from pyk8s.storage.sqlite import SQLiteStore


def sqlite_store(store: Store) -> SQLiteStore:
    assert isinstance(store, SQLiteStore)
    return store


class TestDurability:
    def test_everything_survives_close_and_reopen(self, sqlite_backend: Backend) -> None:
        async def body() -> None:
            store = await sqlite_backend.open()
            a = await store.create("/d/a", b"1")
            a2 = await store.update("/d/a", b"2", expected_revision=a.mod_revision)
            await store.create("/d/b", b"1")
            await store.delete("/d/b")
            mark = await store.revision()
            await store.update("/d/a", b"3", expected_revision=a2.mod_revision)
            await store.compact(mark)
            now = await store.revision()
            listed = await store.list("/d/")
            await store.close()

            store = await sqlite_backend.open()
            try:
                assert await store.revision() == now
                assert store.compacted_revision == mark
                assert await store.list("/d/") == listed
                assert (await store.list("/d/", revision=mark)).kvs == [a2]
                with pytest.raises(CompactedError):
                    await store.list("/d/", revision=mark - 1)
                assert (await store.create("/d/c", b"1")).mod_revision == now + 1
            finally:
                await store.close()

        asyncio.run(body())

    def test_acknowledged_writes_survive_kill_9(self, tmp_path: Path) -> None:
        url = f"sqlite://{tmp_path}/state.db"
        child = textwrap.dedent(
            """
            import asyncio, sys
            from pyk8s.storage import open_store

            async def main():
                store = await open_store(sys.argv[1], compact_interval=0)  # synchronous=FULL
                async def writer(w):
                    for i in range(1_000_000):
                        kv = await store.create(f"/k/{w}/{i}", b"v" * 100)
                        print(kv.key, kv.mod_revision, flush=True)
                await asyncio.gather(*(writer(w) for w in range(8)))

            asyncio.run(main())
            """
        )
        proc = subprocess.Popen(
            [sys.executable, "-c", child, url], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        acked: dict[str, int] = {}
        try:
            for line in proc.stdout:
                key, revision = line.split()
                acked[key] = int(revision)
                if len(acked) >= 400:
                    break
            proc.send_signal(signal.SIGKILL)
            for line in proc.stdout:  # acknowledged before the kill, still in the pipe
                parts = line.split()
                if len(parts) != 2 or not line.endswith("\n"):
                    continue  # a line the kill cut in half: not an acknowledgement we saw
                key, revision = parts
                acked[key] = int(revision)
        finally:
            proc.kill()
            proc.wait()
        assert len(acked) >= 400

        async def check() -> None:
            store = await open_store(url, compact_interval=0)
            try:
                kvs = {kv.key: kv for kv in (await store.list("/k/")).kvs}
                for key, revision in acked.items():
                    assert kvs[key].mod_revision == revision, key
                now = await store.revision()
                assert sorted(kv.mod_revision for kv in kvs.values()) == list(range(1, now + 1))
                assert (await store.create("/k/after", b"v")).mod_revision == now + 1
            finally:
                await store.close()

        asyncio.run(check())


class TestCompactionOnDisk:
    def test_compaction_removes_superseded_rows(self, sqlite_backend: Backend) -> None:
        async def body(store: Store) -> None:
            kv = await store.create("/c/a", b"0")
            for i in range(20):
                kv = await store.update("/c/a", str(i).encode(), expected_revision=kv.mod_revision)
            gone = await store.create("/c/gone", b"x")
            await store.delete("/c/gone", expected_revision=gone.mod_revision)
            await store.create("/c/b", b"b")
            await store.compact(await store.revision())
            with sqlite3.connect(sqlite_store(store).path) as db:
                rows = db.execute("SELECT name, deleted FROM kv ORDER BY id").fetchall()
            assert rows == [("/c/a", 0), ("/c/b", 0)]

        sqlite_backend.run(body)

    def test_compaction_and_checkpoint_keep_the_files_bounded(
        self, sqlite_backend: Backend
    ) -> None:
        async def body(store: Store) -> None:
            sq = sqlite_store(store)
            value = os.urandom(8192)
            kvs = [await store.create(f"/b/{i}", value) for i in range(20)]
            sizes = []
            for _ in range(8):
                for _ in range(25):
                    kvs = list(
                        await asyncio.gather(
                            *(
                                store.update(kv.key, value, expected_revision=kv.mod_revision)
                                for kv in kvs
                            )
                        )
                    )
                await store.compact(await store.revision())
                stats = sq.stats()
                assert stats["wal_bytes"] == 0, "compaction must checkpoint and truncate the WAL"
                sizes.append(stats["db_bytes"])
            # 8 rounds wrote ~33 MB; without compaction the file would grow by ~4 MB a round.
            assert sizes[-1] <= sizes[1] * 1.2 + 65536, sizes

        sqlite_backend.run(body)

    def test_chunked_compaction_interleaves_with_writes(self, sqlite_backend: Backend) -> None:
        async def body(store: Store) -> None:
            kvs: dict[str, KeyValue] = {}
            for i in range(300):
                key = f"/i/{i % 30}"
                kv = kvs.get(key)
                kvs[key] = (
                    await store.update(key, b"v", expected_revision=kv.mod_revision)
                    if kv
                    else await store.create(key, b"v")
                )
            target = await store.revision()
            compaction = asyncio.ensure_future(store.compact(target))
            created = await asyncio.gather(*(store.create(f"/j/{i}", b"v") for i in range(50)))
            await compaction
            assert store.compacted_revision == target
            assert (await store.list("/i/")).kvs == [kvs[k] for k in sorted(kvs)]
            assert (await store.list("/j/")).kvs == sorted(created, key=lambda kv: kv.key)

        sqlite_backend.run(body, compact_chunk=7)

    def test_a_watch_whose_history_is_compacted_mid_replay_fails(
        self, sqlite_backend: Backend
    ) -> None:
        async def body(store: Store) -> None:
            base = await store.revision()
            await asyncio.gather(*(store.create(f"/w/{i:05d}", b"v") for i in range(2500)))
            watch = store.watch("/w/", from_revision=base + 1)
            first = [await anext(watch) for _ in range(1000)]  # exactly one history page
            assert first[-1].revision == base + 1000
            await store.compact(base + 2000)
            with pytest.raises(CompactedError):
                await anext(watch)

        sqlite_backend.run(body)


class TestPeriodicCompaction:
    def test_store_compacts_by_itself_when_asked_to(self, sqlite_backend: Backend) -> None:
        async def body(store: Store) -> None:
            kv = await store.create("/p/a", b"0")
            for _ in range(10):
                kv = await store.update("/p/a", b"v", expected_revision=kv.mod_revision)
            seen = await store.revision()
            for _ in range(100):
                await asyncio.sleep(0.02)
                if store.compacted_revision:
                    break
            assert 0 < store.compacted_revision <= seen - 2

        sqlite_backend.run(body, compact_interval=0.03, compact_keep=2)


class TestGroupCommit:
    def test_concurrent_writes_share_commits(self, sqlite_backend: Backend) -> None:
        async def body(store: Store) -> None:
            before = sqlite_store(store).stats()
            await asyncio.gather(*(store.create(f"/g/{i}", b"v") for i in range(300)))
            after = sqlite_store(store).stats()
            assert after["writes"] - before["writes"] == 300
            assert after["commits"] - before["commits"] <= 30

        sqlite_backend.run(body)

    def test_a_failed_commit_fails_its_batch_only_and_takes_no_revision(
        self, sqlite_backend: Backend
    ) -> None:
        async def prepare() -> str:
            store = await sqlite_backend.open()
            path = sqlite_store(store).path
            await store.close()
            return path

        path = asyncio.run(prepare())
        with sqlite3.connect(path) as db:  # a disk-full stand-in that SQLite raises mid-batch
            db.execute(
                "CREATE TRIGGER poison BEFORE INSERT ON kv WHEN NEW.name = '/poison'"
                " BEGIN SELECT RAISE(ABORT, 'poisoned'); END"
            )

        async def body(store: Store) -> None:
            base = await store.revision()
            results = await asyncio.gather(
                store.create("/ok/1", b"v"),
                store.create("/poison", b"v"),
                store.create("/ok/2", b"v"),
                return_exceptions=True,
            )
            assert all(isinstance(r, StorageError) for r in results), results
            assert "poisoned" in str(results[1])
            assert await store.revision() == base
            assert await store.get("/ok/1") is None
            kv = await store.create("/ok/3", b"v")
            assert kv.mod_revision == base + 1

        sqlite_backend.run(body)

    def test_a_cancelled_writer_does_not_disturb_the_others(self, sqlite_backend: Backend) -> None:
        async def body(store: Store) -> None:
            doomed = asyncio.ensure_future(store.create("/x/cancelled", b"v"))
            others = asyncio.gather(*(store.create(f"/x/{i}", b"v") for i in range(10)))
            await asyncio.sleep(0)
            doomed.cancel()
            assert len(await others) == 10
            # the cancelled write may or may not have happened; the store stays consistent
            assert await store.count("/x/") in (10, 11)

        sqlite_backend.run(body)


class TestWatchers:
    def test_a_stuck_watcher_is_cut_off_without_slowing_writers(
        self, sqlite_backend: Backend
    ) -> None:
        async def body(store: Store) -> None:
            stuck = store.watch("/s/", from_revision=0)
            healthy = store.watch("/s/", from_revision=0)
            received: list[KeyValue] = []

            async def follow() -> None:
                async for event in healthy:
                    received.append(event.kv)

            follower = asyncio.ensure_future(follow())
            start = asyncio.ensure_future(anext(stuck))  # subscribe, then never read again
            await asyncio.sleep(0.01)

            async def writer(w: int) -> list[KeyValue]:
                return [await store.create(f"/s/{w}/{i:03d}", b"v") for i in range(25)]

            # 8 writers: batches of at most 8 events, which the healthy watcher keeps up with
            batches = await asyncio.wait_for(asyncio.gather(*(writer(w) for w in range(8))), 5)
            kvs = sorted((kv for batch in batches for kv in batch), key=lambda kv: kv.mod_revision)
            first = await start
            assert first.kv == kvs[0]
            with pytest.raises(WatchOverflowError):
                await anext(stuck)
            assert sqlite_store(store).stats()["watchers"] == 1
            await asyncio.sleep(0.05)
            assert received == list(kvs)
            follower.cancel()

        sqlite_backend.run(body, watch_buffer=50)

    def test_a_write_returns_after_watchers_have_its_event(self, sqlite_backend: Backend) -> None:
        """The API server's watch cache relies on it for read-your-writes."""

        async def body(store: Store) -> None:
            received: list[KeyValue] = []

            async def follow() -> None:
                async for event in store.watch("/r/", from_revision=0):
                    received.append(event.kv)

            follower = asyncio.ensure_future(follow())
            await asyncio.sleep(0.01)
            for i in range(20):
                kv = await store.create(f"/r/{i}", b"v")
                assert received[-1:] == [kv]
            follower.cancel()

        sqlite_backend.run(body)

    def test_close_during_a_replay_ends_the_watch(self, sqlite_backend: Backend) -> None:
        async def body() -> None:
            store = await sqlite_backend.open()
            await asyncio.gather(*(store.create(f"/c/{i:04d}", b"v") for i in range(1500)))
            watch = store.watch("/c/", from_revision=1)
            for _ in range(1000):  # the first history page
                await anext(watch)
            await store.close()
            with pytest.raises(StopAsyncIteration):
                await anext(watch)

        asyncio.run(body())

    def test_an_abandoned_watch_is_released(self, sqlite_backend: Backend) -> None:
        async def body(store: Store) -> None:
            watch = store.watch("/a/", from_revision=0)
            waiting = asyncio.ensure_future(anext(watch))
            await asyncio.sleep(0.01)
            assert sqlite_store(store).stats()["watchers"] == 1
            waiting.cancel()
            await asyncio.sleep(0)
            del watch, waiting
            import gc

            gc.collect()
            assert sqlite_store(store).stats()["watchers"] == 0

        sqlite_backend.run(body)


class TestOpening:
    def test_unknown_scheme_is_named(self) -> None:
        with pytest.raises(ValueError, match="'mysql'"):
            asyncio.run(open_store("mysql://localhost/db"))
        with pytest.raises(ValueError, match="unknown storage scheme"):
            asyncio.run(open_store("/just/a/path.db"))

    def test_memory_store_is_private_and_removed_on_close(self) -> None:
        async def body() -> None:
            first = await open_store("sqlite://:memory:", compact_interval=0)
            second = await open_store("sqlite://:memory:", compact_interval=0)
            await first.create("/a", b"1")
            assert await second.get("/a") is None
            path = sqlite_store(first).path
            assert os.path.exists(path)
            await first.close()
            await second.close()
            assert not os.path.exists(path)

        asyncio.run(body())

    def test_one_owner_per_database(self, sqlite_backend: Backend) -> None:
        async def body(store: Store) -> None:
            with pytest.raises(StorageError, match="in use"):
                await sqlite_backend.open()

        sqlite_backend.run(body)

    def test_sqlite_errors_become_storage_errors(self, tmp_path: Path) -> None:
        (tmp_path / "junk.db").write_bytes(b"this is not a database" * 100)
        with pytest.raises(StorageError, match="sqlite"):
            asyncio.run(open_store(f"sqlite://{tmp_path}/junk.db"))
        with pytest.raises(StorageError):
            asyncio.run(open_store(f"sqlite://{tmp_path}/no/such/dir/state.db"))

    def test_bad_options_are_rejected(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="synchronous"):
            asyncio.run(open_store(f"sqlite://{tmp_path}/x.db", synchronous="SOMETIMES"))
        with pytest.raises(TypeError):
            asyncio.run(open_store(f"sqlite://{tmp_path}/x.db", no_such_option=1))

    def test_a_closed_store_refuses_work(self, sqlite_backend: Backend) -> None:
        async def body() -> None:
            store = await sqlite_backend.open()
            await store.close()
            await store.close()  # idempotent
            with pytest.raises(StorageError, match="closed"):
                await store.create("/a", b"v")
            with pytest.raises(StorageError, match="closed"):
                await store.list("/")
            with pytest.raises(StopAsyncIteration):
                await anext(store.watch("/", from_revision=0))

        asyncio.run(body())

    def test_runs_on_uvloop(self, sqlite_backend: Backend) -> None:
        async def body() -> None:
            store = await sqlite_backend.open()
            try:
                watch = store.watch("/u/", from_revision=1)
                kvs = await asyncio.gather(*(store.create(f"/u/{i}", b"v") for i in range(50)))
                assert [(await anext(watch)).kv for _ in range(50)] == list(kvs)
                assert len((await store.list("/u/")).kvs) == 50
            finally:
                await store.close()

        uvloop.run(body())
