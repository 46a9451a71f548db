"""Writes start from the watch cache's copy, as upstream's GuaranteedUpdate starts from the
cacher's: a stale copy may cost a retry, never a wrong answer. Each test freezes the cache
(stops its store watch), so what it holds falls behind the store."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from pyk8s.apiserver import rest
from pyk8s.apiserver.context import ApiContext
from pyk8s.apiserver.watchcache import cached_object
from pyk8s.machinery import errors
from pyk8s.machinery.resources import CATALOGUE
from tests.unit.apiserver.api_context import api_context

CONFIGMAPS = CATALOGUE.resource("v1", "configmaps")
Obj = dict[str, Any]


def run(tmp_path: Path, scenario: Callable[[ApiContext], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with api_context(tmp_path) as ctx:
            await rest.create(ctx, CONFIGMAPS, "ns", {"metadata": {"name": "cm"},
                                                      "data": {"a": "1"}})
            await ctx.cache.wait_fresh()
            await ctx.cache.stop()  # from here on the cache keeps what it has: revision of "a"
            return await scenario(ctx)

    return asyncio.run(main())


def setting(key: str, value: str) -> rest.Mutation:
    def mutate(obj: Obj, _current: Obj) -> Obj:
        obj.setdefault("data", {})[key] = value
        return obj
    return mutate


async def stored(ctx: ApiContext) -> Obj:
    return await rest.get(ctx, CONFIGMAPS, "ns", "cm")


def test_a_write_from_a_stale_copy_is_redone_on_the_current_object(tmp_path: Path) -> None:
    async def scenario(ctx: ApiContext) -> Obj:
        await rest.guaranteed_update(ctx, CONFIGMAPS, "ns", "cm", setting("b", "2"))
        # The cache still holds the object without "b": the write conditional on that
        # revision loses, and the mutation is applied again to the stored object.
        await rest.guaranteed_update(ctx, CONFIGMAPS, "ns", "cm", setting("c", "3"))
        return await stored(ctx)

    assert run(tmp_path, scenario)["data"] == {"a": "1", "b": "2", "c": "3"}


def test_an_error_from_a_stale_copy_is_decided_again_on_the_current_object(
        tmp_path: Path) -> None:
    async def scenario(ctx: ApiContext) -> Obj:
        await rest.guaranteed_update(ctx, CONFIGMAPS, "ns", "cm", setting("b", "2"))

        def needs_b(obj: Obj, current: Obj) -> Obj:
            if "b" not in current.get("data", {}):
                raise errors.conflict("", "configmaps", "cm", "no b yet")
            obj["data"]["c"] = "3"
            return obj

        await rest.guaranteed_update(ctx, CONFIGMAPS, "ns", "cm", needs_b)
        return await stored(ctx)

    assert run(tmp_path, scenario)["data"] == {"a": "1", "b": "2", "c": "3"}


def test_a_no_op_on_a_stale_copy_is_checked_against_the_current_object(tmp_path: Path) -> None:
    async def scenario(ctx: ApiContext) -> tuple[Obj, Obj, Obj]:
        written = await rest.guaranteed_update(ctx, CONFIGMAPS, "ns", "cm", setting("b", "2"))
        same = await rest.guaranteed_update(ctx, CONFIGMAPS, "ns", "cm", setting("a", "1"))

        def drop_b(obj: Obj, _current: Obj) -> Obj:
            obj["data"].pop("b", None)
            return obj

        await rest.guaranteed_update(ctx, CONFIGMAPS, "ns", "cm", drop_b)  # no-op if stale
        return written, same, await stored(ctx)

    written, same, final = run(tmp_path, scenario)
    # A no-op answers with the current object (its resourceVersion), not the cached one.
    assert same["metadata"]["resourceVersion"] == written["metadata"]["resourceVersion"]
    assert final["data"] == {"a": "1"}


def test_a_delete_precondition_is_checked_against_the_current_object(tmp_path: Path) -> None:
    async def scenario(ctx: ApiContext) -> None:
        await rest.delete(ctx, CONFIGMAPS, "ns", "cm", {})
        again = await rest.create(ctx, CONFIGMAPS, "ns", {"metadata": {"name": "cm"}})
        # The cache holds the first "cm" (another uid): the precondition names the new one.
        _, gone = await rest.delete(ctx, CONFIGMAPS, "ns", "cm", {
            "preconditions": {"uid": again["metadata"]["uid"]}})
        assert gone
        with pytest.raises(errors.ApiError) as err:
            await stored(ctx)
        assert err.value.code == 404

    run(tmp_path, scenario)


def test_the_cache_keeps_what_parsing_the_stored_value_gives(tmp_path: Path) -> None:
    """The API server's writes hand their objects to the watch cache, which then need not
    parse the stored value: what it keeps is byte for byte what parsing would give."""
    async def main() -> None:
        async with api_context(tmp_path) as ctx:
            store, cache = ctx.store, ctx.cache
            await rest.create(ctx, CONFIGMAPS, "ns", {"metadata": {"name": "cm", "labels": {
                "app": "x"}}, "data": {"a": "1"}})
            await rest.guaranteed_update(ctx, CONFIGMAPS, "ns", "cm", setting("b", "2"))
            with pytest.raises(errors.ApiError):  # a failed write leaves nothing behind
                await rest.create(ctx, CONFIGMAPS, "ns", {"metadata": {"name": "cm"}})
            await cache.wait_fresh()
            key = CONFIGMAPS.key("ns", "cm")
            kept = cache.cache_for(CONFIGMAPS).items[key]
            kv = await store.get(key)
            assert kv is not None
            parsed = cached_object(CONFIGMAPS, key, kv.value, kv.mod_revision)
            assert (kept.raw, kept.labels, kept.fields, kept.revision) == \
                (parsed.raw, parsed.labels, parsed.fields, parsed.revision)
            assert b'"b":"2"' in kept.raw

    asyncio.run(main())
