"""managedFields through the API server's write paths, as upstream's field manager keeps
them: a write whose object carries no managedFields (a client that trimmed them from its
cache, as client-go's TransformStripManagedFields does) keeps the stored ones; ``[{}]`` and,
as upstream's isResetManagedFields reads a non-nil empty list, ``[]`` clear them on the main
resource; a subresource write never does (upstream ignores the request's managedFields)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from pyk8s.apiserver import codec, rest, subresources
from pyk8s.apiserver.context import ApiContext
from pyk8s.machinery.resources import CATALOGUE
from tests.unit.apiserver.api_context import api_context

CONFIGMAPS = CATALOGUE.resource("v1", "configmaps")
PODS = CATALOGUE.resource("v1", "pods")
Obj = dict[str, Any]


def run(tmp_path: Path, scenario: Callable[[ApiContext], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with api_context(tmp_path) as ctx:
            await rest.create(ctx, CONFIGMAPS, "ns", {"metadata": {"name": "cm"},
                                                      "data": {"a": "1"}}, manager="creator")
            return await scenario(ctx)

    return asyncio.run(main())


def managers(obj: Obj) -> list[str]:
    return [e["manager"] for e in obj["metadata"].get("managedFields") or []]


async def _put(ctx: ApiContext, **meta: Any) -> Obj:
    current = await rest.get(ctx, CONFIGMAPS, "ns", "cm")
    body = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cm", "namespace": "ns", **meta}, "data": {"a": "1", "b": "2"}}
    assert current["metadata"]["managedFields"]
    return await rest.update(ctx, CONFIGMAPS, "ns", "cm", body, manager="updater")


def test_a_put_without_managed_fields_keeps_the_stored_ones(tmp_path: Path) -> None:
    obj = run(tmp_path, _put)
    assert managers(obj) == ["creator", "updater"]
    creator, updater_ = obj["metadata"]["managedFields"]
    assert creator["fieldsV1"] == {"f:data": {".": {}, "f:a": {}}}
    assert updater_["fieldsV1"] == {"f:data": {"f:b": {}}}


@pytest.mark.parametrize("sent", [[], [{}]])
def test_a_put_with_an_empty_list_or_entry_clears_them(tmp_path: Path, sent: Any) -> None:
    async def scenario(ctx: ApiContext) -> Obj:
        return await _put(ctx, managedFields=sent)
    assert managers(run(tmp_path, scenario)) == []


def test_a_patch_not_touching_managed_fields_keeps_them(tmp_path: Path) -> None:
    async def scenario(ctx: ApiContext) -> Obj:
        obj, _ = await subresources.patch_object(
            ctx, CONFIGMAPS, "ns", "cm", "", codec.MERGE_PATCH, {"data": {"b": "2"}},
            dry_run=False, force=False, manager="patcher")
        return obj
    assert managers(run(tmp_path, scenario)) == ["creator", "patcher"]
