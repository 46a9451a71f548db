"""The etcd contract, reads and writes: what every backend must do (watch is in
``test_store_watch_conformance.py``). Revisions are checked relative to the revision a test
starts at."""

from __future__ import annotations

import asyncio

import pytest
from store_backends import Backend

from pyk8s.storage import (
    CompactedError,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    RevisionMismatchError,
    Store,
)


class TestRevisions:
    def test_every_write_takes_the_next_revision(self, backend: Backend) -> None:
        async def body(store: Store) -> None:
            base = await store.revision()
            created = await store.create("/r/a", b"1")
            updated = await store.update("/r/a", b"2", expected_revision=created.mod_revision)
            deleted = await store.delete("/r/a")
            assert [created.mod_revision, updated.mod_revision, deleted.mod_revision] == [
                base + 1,
                base + 2,
                base + 3,
            ]
            assert await store.revision() == base + 3

        backend.run(body)

    def test_failed_writes_take_no_revision(self, backend: Backend) -> None:
        async def body(store: Store) -> None:
            kv = await store.create("/r/a", b"1")
            base = await store.revision()
            with pytest.raises(KeyExistsError):
                await store.create("/r/a", b"x")
            with pytest.raises(RevisionMismatchError):
                await store.update("/r/a", b"x", expected_revision=kv.mod_revision + 100)
            with pytest.raises(KeyNotFoundError):
                await store.delete("/r/missing")
            assert await store.revision() == base
            assert (await store.create("/r/b", b"1")).mod_revision == base + 1

        backend.run(body)

    def test_concurrent_writers_get_distinct_consecutive_revisions(self, backend: Backend) -> None:
        async def body(store: Store) -> None:
            base = await store.revision()
            kvs = await asyncio.gather(*(store.create(f"/r/k{i:03d}", b"v") for i in range(200)))
            assert sorted(kv.mod_revision for kv in kvs) == list(range(base + 1, base + 201))
            # the revision order is the submission order
            assert [kv.mod_revision for kv in kvs] == list(range(base + 1, base + 201))

        backend.run(body)


class TestCreate:
    def test_create_returns_the_new_version(self, backend: Backend) -> None:
        async def body(store: Store) -> None:
            kv = await store.create("/c/a", b"hello")
            assert kv == KeyValue("/c/a", b"hello", kv.mod_revision, kv.mod_revision)
            assert await store.get("/c/a") == kv

        backend.run(body)

    def test_create_of_an_existing_key_fails(self, backend: Backend) -> None:
        async def body(store: Store) -> None:
            kv = await store.create("/c/a", b"1")
            with pytest.raises(KeyExistsError) as info:
                await store.create("/c/a", b"2")
            assert info.value.key == "/c/a"
            assert await store.get("/c/a") == kv

        backend.run(body)

    def test_concurrent_creates_of_one_key_exactly_one_wins(self, backend: Backend) -> None:
        async def body(store: Store) -> None:
            results = await asyncio.gather(
                *(store.create("/c/race", str(i).encode()) for i in range(20)),
                return_exceptions=True,
            )
            winners = [r for r in results if isinstance(r, KeyValue)]
            assert len(winners) == 1
            assert all(isinstance(r, KeyExistsError) for r in results if r not in winners)
            assert await store.get("/c/race") == winners[0]

        backend.run(body)

    def test_a_deleted_key_can_be_created_again_as_a_new_object(self, backend: Backend) -> None:
        async def body(store: Store) -> None:
            await store.create("/c/a", b"1")
            await store.delete("/c/a")
            again = await store.create("/c/a", b"2")
            assert again.create_revision == again.mod_revision
            assert await store.get("/c/a") == again

        backend.run(body)


class TestUpdate:
    def test_update_at_the_current_revision(self, backend: Backend) -> None:
        async def body(store: Store) -> None:
            kv = await store.create("/u/a", b"1")
            new = await store.update("/u/a", b"2", expected_revision=kv.mod_revision)
            assert new.value == b"2"
            assert new.create_revision == kv.create_revision
            assert new.mod_revision > kv.mod_revision
            assert await store.get("/u/a") == new

        backend.run(body)

    def test_stale_update_fails_and_reports_the_current_version(self, backend: Backend) -> None:
        async def body(store: Store) -> None:
            kv = await store.create("/u/a", b"1")
            current = await store.update("/u/a", b"2", expected_revision=kv.mod_revision)
            with pytest.raises(RevisionMismatchError) as info:
                await store.update("/u/a", b"3", expected_revision=kv.mod_revision)
            assert info.value.current == current
            assert await store.get("/u/a") == current

        backend.run(body)

    def test_concurrent_updates_from_one_version_exactly_one_wins(self, backend: Backend) -> None:
        async def body(store: Store) -> None:
            kv = await store.create("/u/race", b"0")
            results = await asyncio.gather(
                *(
                    store.update("/u/race", str(i).encode(), expected_revision=kv.mod_revision)
                    for i in range(20)
                ),
                return_exceptions=True,
            )
            winners = [r for r in results if isinstance(r, KeyValue)]
            assert len(winners) == 1
            losers = [r for r in results if isinstance(r, RevisionMismatchError)]
            assert len(losers) == 19
            assert all(err.current == winners[0] for err in losers)

        backend.run(body)

    def test_update_of_a_missing_or_deleted_key_fails(self, backend: Backend) -> None:
        async def body(store: Store) -> None:
            with pytest.raises(KeyNotFoundError):
                await store.update("/u/missing", b"1", expected_revision=1)
            kv = await store.create("/u/a", b"1")
            await store.delete("/u/a")
            with pytest.raises(KeyNotFoundError):
                await store.update("/u/a", b"2", expected_revision=kv.mod_revision)

        backend.run(body)

    def test_expected_revision_zero_updates_unconditionally(self, backend: Backend) -> None:
        async def body(store: Store) -> None:
            await store.create("/u/a", b"1")
            await store.update("/u/a", b"2", expected_revision=0)
            kv = await store.get("/u/a")
            assert kv is not None and kv.value == b"2"

        backend.run(body)


class TestDelete:
    def test_delete_returns_the_last_value_at_the_delete_revision(self, backend: Backend) -> None:
        async def body(store: Store) -> None:
            kv = await store.create("/d/a", b"last")
            deleted = await store.delete("/d/a")
            assert deleted == KeyValue("/d/a", b"last", kv.create_revision, await store.revision())
            assert await store.get("/d/a") is None
            with pytest.raises(KeyNotFoundError):
                await store.delete("/d/a")

        backend.run(body)

    def test_conditional_delete(self, backend: Backend) -> None:
        async def body(store: Store) -> None:
            kv = await store.create("/d/a", b"1")
            new = await store.update("/d/a", b"2", expected_revision=kv.mod_revision)
            with pytest.raises(RevisionMismatchError) as info:
                await store.delete("/d/a", expected_revision=kv.mod_revision)
            assert info.value.current == new
            await store.delete("/d/a", expected_revision=new.mod_revision)
            assert await store.get("/d/a") is None

        backend.run(body)


async def _fill(store: Store, keys: list[str]) -> dict[str, KeyValue]:
    return {key: await store.create(key, key.encode()) for key in keys}


class TestList:
    KEYS = ["/l/a", "/l/b/1", "/l/b/2", "/l/c", "/la", "/m"]

    def test_prefix_in_key_order(self, backend: Backend) -> None:
        async def body(store: Store) -> None:
            kvs = await _fill(store, list(reversed(self.KEYS)))
            result = await store.list("/l/")
            assert [kv.key for kv in result.kvs] == ["/l/a", "/l/b/1", "/l/b/2", "/l/c"]
            assert result.kvs == [kvs[kv.key] for kv in result.kvs]
            assert result.revision == await store.revision()
            assert result.more is False
            assert [kv.key for kv in (await store.list("/l/b/")).kvs] == ["/l/b/1", "/l/b/2"]
            assert (await store.list("/nothing/")).kvs == []

        backend.run(body)

    def test_deleted_keys_are_not_listed(self, backend: Backend) -> None:
        async def body(store: Store) -> None:
            await _fill(store, self.KEYS)
            await store.delete("/l/b/1")
            assert [kv.key for kv in (await store.list("/l/")).kvs] == ["/l/a", "/l/b/2", "/l/c"]
            assert await store.count("/l/") == 3

        backend.run(body)

    def test_start_is_inclusive_and_limit_sets_more(self, backend: Backend) -> None:
        async def body(store: Store) -> None:
            await _fill(store, self.KEYS)
            page = await store.list("/l/", start="/l/b/1", limit=2)
            assert [kv.key for kv in page.kvs] == ["/l/b/1", "/l/b/2"]
            assert page.more is True
            last = await store.list("/l/", start="/l/b/3", limit=2)
            assert [kv.key for kv in last.kvs] == ["/l/c"]
            assert last.more is False
            exact = await store.list("/l/", start="/l/b/2", limit=2)
            assert [kv.key for kv in exact.kvs] == ["/l/b/2", "/l/c"]
            assert exact.more is False, "more must be false when nothing follows a full page"
            assert (await store.list("/l/", start="/a")).kvs == (await store.list("/l/")).kvs

        backend.run(body)

    def test_paging_at_a_pinned_revision_is_a_consistent_snapshot(self, backend: Backend) -> None:
        """What Kubernetes continue tokens rely on: later pages are read at the first page's
        revision, whatever was written in between."""

        async def body(store: Store) -> None:
            keys = [f"/p/{i:03d}" for i in range(25)]
            before = await _fill(store, keys)
            first = await store.list("/p/", limit=10)
            await store.create("/p/000a", b"new")  # sorts inside the unread range
            await store.delete("/p/020")
            await store.update(
                "/p/015", b"changed", expected_revision=before["/p/015"].mod_revision
            )
            seen = list(first.kvs)
            page = first
            while page.more:
                page = await store.list(
                    "/p/", start=page.kvs[-1].key + "\x00", limit=10, revision=first.revision
                )
                assert page.revision == first.revision
                seen.extend(page.kvs)
            assert seen == [before[k] for k in keys]

        backend.run(body)

    def test_list_and_get_at_a_past_revision(self, backend: Backend) -> None:
        async def body(store: Store) -> None:
            await store.create("/other", b"")  # so that a1.mod_revision - 1 is not 0 (= now)
            a1 = await store.create("/h/a", b"a1")
            b1 = await store.create("/h/b", b"b1")
            mark = await store.revision()
            await store.update("/h/a", b"a2", expected_revision=a1.mod_revision)
            await store.delete("/h/b")
            await store.create("/h/c", b"c1")
            past = await store.list("/h/", revision=mark)
            assert past.kvs == [a1, b1]
            assert past.revision == mark
            assert await store.get("/h/a", revision=mark) == a1
            assert await store.get("/h/b", revision=mark) == b1
            assert await store.get("/h/c", revision=mark) is None
            assert await store.get("/h/a", revision=a1.mod_revision - 1) is None
            now = await store.list("/h/")
            assert [(kv.key, kv.value) for kv in now.kvs] == [("/h/a", b"a2"), ("/h/c", b"c1")]

        backend.run(body)

    def test_reads_in_the_future_fail(self, backend: Backend) -> None:
        async def body(store: Store) -> None:
            await store.create("/f/a", b"1")
            future = await store.revision() + 1
            with pytest.raises(FutureRevisionError):
                await store.list("/f/", revision=future)
            with pytest.raises(FutureRevisionError):
                await store.get("/f/a", revision=future)

        backend.run(body)

    def test_empty_prefix_lists_everything(self, backend: Backend) -> None:
        async def body(store: Store) -> None:
            await _fill(store, ["/x", "/y", "\U0010ffff"])
            keys = [kv.key for kv in (await store.list("")).kvs]
            assert keys == sorted(keys)
            assert {"/x", "/y", "\U0010ffff"} <= set(keys)
            assert keys[-1] == "\U0010ffff"
            assert await store.count("") == len(keys)

        backend.run(body)

    def test_prefix_ranges_are_exact_at_character_boundaries(self, backend: Backend) -> None:
        async def body(store: Store) -> None:
            await _fill(store, ["/z\U0010ffff", "/z\U0010ffffq", "/{", "/z\ud7ffa", "/z\ue000"])
            assert [kv.key for kv in (await store.list("/z\U0010ffff")).kvs] == [
                "/z\U0010ffff",
                "/z\U0010ffffq",
            ]
            assert [kv.key for kv in (await store.list("/z\ud7ff")).kvs] == ["/z\ud7ffa"]
            assert await store.count("/z") == 4

        backend.run(body)


class TestCompaction:
    def test_reads_below_the_compacted_revision_fail(self, backend: Backend) -> None:
        async def body(store: Store) -> None:
            kv = await store.create("/k/a", b"1")
            for i in range(5):
                kv = await store.update("/k/a", str(i).encode(), expected_revision=kv.mod_revision)
            target = kv.mod_revision - 2
            await store.compact(target)
            assert store.compacted_revision == target
            with pytest.raises(CompactedError) as info:
                await store.list("/k/", revision=target - 1)
            assert info.value.compacted == target
            with pytest.raises(CompactedError):
                await store.get("/k/a", revision=target - 1)
            at = await store.get("/k/a", revision=target)
            assert at is not None and at.value == b"2"

        backend.run(body)

    def test_compaction_keeps_every_live_key_and_later_history(self, backend: Backend) -> None:
        async def body(store: Store) -> None:
            old = await store.create("/k/untouched", b"old")
            gone = await store.create("/k/gone", b"x")
            a = await store.create("/k/a", b"1")
            await store.delete("/k/gone", expected_revision=gone.mod_revision)
            a2 = await store.update("/k/a", b"2", expected_revision=a.mod_revision)
            mark = await store.revision()
            a3 = await store.update("/k/a", b"3", expected_revision=a2.mod_revision)
            await store.compact(mark)
            assert (await store.list("/k/", revision=mark)).kvs == [a2, old]
            assert (await store.list("/k/")).kvs == [a3, old]
            assert await store.get("/k/gone") is None
            assert await store.count("/k/") == 2

        backend.run(body)

    def test_compacting_to_the_current_revision(self, backend: Backend) -> None:
        async def body(store: Store) -> None:
            await store.create("/k/a", b"1")
            await store.delete("/k/a")
            now = await store.revision()
            await store.compact(now)
            assert await store.revision() == now
            assert (await store.create("/k/b", b"1")).mod_revision == now + 1

        backend.run(body)

    def test_compacting_backwards_is_a_no_op_and_forwards_of_now_fails(
        self, backend: Backend
    ) -> None:
        async def body(store: Store) -> None:
            await store.create("/k/a", b"1")
            await store.create("/k/b", b"1")
            now = await store.revision()
            await store.compact(now)
            await store.compact(now - 1)
            assert store.compacted_revision == now
            with pytest.raises(FutureRevisionError):
                await store.compact(now + 5)

        backend.run(body)


class TestModel:
    """Random operation sequences against a dictionary model, read back at every revision."""

    @pytest.mark.parametrize("seed", range(3))
    def test_reads_at_every_revision_match_the_model(self, backend: Backend, seed: int) -> None:
        import random

        rng = random.Random(seed)

        async def body(store: Store) -> None:
            model: dict[str, KeyValue] = {}
            snapshots: dict[int, dict[str, KeyValue]] = {await store.revision(): {}}
            for _ in range(150):
                key = f"/m/{rng.randrange(12):02d}"
                op = rng.choice(["create", "update", "delete"])
                current = model.get(key)
                try:
                    if op == "create":
                        kv = await store.create(key, rng.randbytes(4))
                        model[key] = kv
                    elif op == "update":
                        stale = rng.random() < 0.2
                        expected = current.mod_revision - stale if current else 1
                        kv = await store.update(key, rng.randbytes(4), expected_revision=expected)
                        model[key] = kv
                    else:
                        kv = await store.delete(key)
                        del model[key]
                except KeyExistsError:
                    assert current is not None
                except KeyNotFoundError:
                    assert current is None
                except RevisionMismatchError as err:
                    assert err.current == current
                else:
                    snapshots[kv.mod_revision] = dict(model)
                    if op == "update":
                        assert current is not None
            for revision, snapshot in snapshots.items():
                if revision == 0:
                    continue
                expected_kvs = [snapshot[k] for k in sorted(snapshot)]
                assert (await store.list("/m/", revision=revision)).kvs == expected_kvs
            assert (await store.list("/m/")).kvs == [model[k] for k in sorted(model)]

        backend.run(body)
