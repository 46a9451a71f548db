"""Informer delivery, indexes and transforms against a scripted client (list + watch)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pyk8s.client import ApiError, Informer, InformerFactory, strip_managed_fields
from pyk8s.machinery.resources import CATALOGUE

PODS = CATALOGUE.resource("v1", "pods")
Obj = dict[str, Any]


def pod(name: str, rv: str, node: str = "", **meta: Any) -> Obj:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv, **meta},
            "spec": {"nodeName": node}}


class ScriptedClient:
    """``lists`` answers successive lists; ``watches`` the events of successive watches (an
    ApiError in them is raised there). Once the script is spent, watches block."""

    def __init__(self, lists: list[list[Obj]], watches: list[list[Obj | ApiError]]) -> None:
        self.lists = lists
        self.watches = watches
        self.watched_from: list[str] = []
        self.listed = 0

    async def list(self, res: Any, namespace: Any = None, **kw: Any) -> Obj:
        items = self.lists[min(self.listed, len(self.lists) - 1)]
        self.listed += 1
        rv = max((int(i["metadata"]["resourceVersion"]) for i in items), default=1)
        return {"items": [dict(i) for i in items], "metadata": {"resourceVersion": str(rv)}}

    async def watch(self, res: Any, namespace: Any = None, *, resource_version: str = "",
                    **kw: Any) -> AsyncIterator[Obj]:
        self.watched_from.append(resource_version)
        if not self.watches:
            await asyncio.Event().wait()
        for event in self.watches.pop(0):
            if isinstance(event, ApiError):
                raise event
            yield event


async def run_until(informer: Informer, done: Any, timeout: float = 5.0) -> None:
    task = asyncio.create_task(informer.run())
    try:
        async with asyncio.timeout(timeout):
            while not done():
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def recording(informer: Informer) -> list[tuple[str, ...]]:
    calls: list[tuple[str, ...]] = []
    informer.add_handlers(
        on_add=lambda o: calls.append(("add", o["metadata"]["name"], o["metadata"]["resourceVersion"])),
        on_update=lambda old, new: calls.append(("update", new["metadata"]["name"],
                                                 old["metadata"]["resourceVersion"],
                                                 new["metadata"]["resourceVersion"])),
        on_delete=lambda o: calls.append(("delete", o["metadata"]["name"],
                                          o["metadata"]["resourceVersion"])))
    return calls


def test_events_reach_handlers_in_order_and_indexes_follow_them() -> None:
    client = ScriptedClient([[pod("a", "2", "n1")]], [[
        {"type": "ADDED", "object": pod("b", "3", "n1")},
        {"type": "MODIFIED", "object": pod("a", "4", "n2")},
        {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "5"}}},
        {"type": "MODIFIED", "object": pod("b", "6", "n1")},
        {"type": "DELETED", "object": pod("a", "7", "n2")},
    ]])
    informer = Informer(client, PODS)  # type: ignore[arg-type]
    informer.add_index("node", lambda o: [o["spec"]["nodeName"]])
    calls = recording(informer)

    async def main() -> None:
        await run_until(informer, lambda: informer.resource_version == "7")

    asyncio.run(main())
    assert calls == [("add", "a", "2"), ("add", "b", "3"), ("update", "a", "2", "4"),
                     ("update", "b", "3", "6"), ("delete", "a", "7")]
    assert [o["metadata"]["name"] for o in informer.by_index("node", "n1")] == ["b"]
    assert informer.by_index("node", "n2") == []
    assert informer.keys() == ["ns/b"]
    assert informer.get("ns/b")["kind"] == "Pod"  # type: ignore[index]
    assert informer.get("ns/b")["apiVersion"] == "v1"  # type: ignore[index]


def test_an_index_added_late_covers_the_cache_and_moves_with_updates() -> None:
    client = ScriptedClient([[pod("a", "2", "n1"), pod("b", "3", "n1")]], [[
        {"type": "MODIFIED", "object": pod("a", "4", "n2")},
    ]])
    informer = Informer(client, PODS)  # type: ignore[arg-type]
    started = asyncio.Event()

    async def main() -> None:
        task = asyncio.create_task(informer.run())
        await informer.wait_synced()
        informer.add_index("node", lambda o: [o["spec"]["nodeName"]])
        assert sorted(o["metadata"]["name"] for o in informer.by_index("node", "n1")) == ["a", "b"]
        started.set()
        async with asyncio.timeout(5):
            while informer.resource_version != "4":
                await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    # The watch starts only after the index exists: hold it back until then.
    real_watch = client.watch

    async def gated_watch(*a: Any, **kw: Any) -> AsyncIterator[Obj]:
        await started.wait()
        async for event in real_watch(*a, **kw):
            yield event

    client.watch = gated_watch  # type: ignore[method-assign]
    asyncio.run(main())
    assert [o["metadata"]["name"] for o in informer.by_index("node", "n1")] == ["b"]
    assert [o["metadata"]["name"] for o in informer.by_index("node", "n2")] == ["a"]


def test_a_failing_index_function_does_not_stop_delivery() -> None:
    client = ScriptedClient([[pod("a", "2")]], [[{"type": "MODIFIED", "object": pod("a", "3")}]])
    informer = Informer(client, PODS)  # type: ignore[arg-type]
    informer.add_index("broken", lambda o: [o["missing"]])
    calls = recording(informer)
    asyncio.run(run_until(informer, lambda: informer.resource_version == "3"))
    assert calls == [("add", "a", "2"), ("update", "a", "2", "3")]
    assert informer.by_index("broken", "x") == []


def test_a_410_relists_and_delivers_the_differences() -> None:
    client = ScriptedClient(
        [[pod("a", "2"), pod("b", "3")], [pod("b", "3"), pod("c", "9")]],
        [[{"type": "MODIFIED", "object": pod("a", "4")},
          ApiError(410, "Expired", "too old")]])
    informer = Informer(client, PODS)  # type: ignore[arg-type]
    calls = recording(informer)
    asyncio.run(run_until(informer, lambda: client.listed == 2 and informer.get("ns/c")))
    assert calls == [("add", "a", "2"), ("add", "b", "3"), ("update", "a", "2", "4"),
                     ("delete", "a", "4"), ("add", "c", "9")]
    assert client.watched_from[:2] == ["3", "9"]


def test_a_transform_shapes_what_is_cached_and_delivered() -> None:
    managed = {"managedFields": [{"manager": "x"}]}
    client = ScriptedClient([[pod("a", "2", **managed)]], [[
        {"type": "MODIFIED", "object": pod("a", "3", **managed)},
        {"type": "ADDED", "object": pod("b", "4", **managed)},
        {"type": "DELETED", "object": pod("b", "5", **managed)},
    ]])
    informer = Informer(client, PODS)  # type: ignore[arg-type]
    seen: list[Obj] = []
    informer.add_handlers(on_add=seen.append, on_update=lambda old, new: seen.append(new),
                          on_delete=seen.append)

    def strip(obj: Obj) -> Obj:
        obj["metadata"].pop("managedFields", None)
        return obj

    informer.set_transform(strip)
    asyncio.run(run_until(informer, lambda: informer.resource_version == "5"))
    assert [o["metadata"]["resourceVersion"] for o in seen] == ["2", "3", "4", "5"]
    assert all("managedFields" not in o["metadata"] for o in seen)
    assert "managedFields" not in informer.get("ns/a")["metadata"]  # type: ignore[index]
    with pytest.raises(RuntimeError):
        informer.set_transform(None)


def test_a_factory_transform_reaches_every_informer_it_creates() -> None:
    client = ScriptedClient([[pod("a", "2", managedFields=[{"manager": "x"}])]], [])
    factory = InformerFactory(client, transform=strip_managed_fields)  # type: ignore[arg-type]
    informer = factory.informer(PODS)
    assert factory.informer(PODS) is informer
    asyncio.run(run_until(informer, lambda: informer.has_synced))
    assert informer.get("ns/a")["metadata"] == {  # type: ignore[index]
        "name": "a", "namespace": "ns", "resourceVersion": "2"}
    assert strip_managed_fields({"kind": "Status"}) == {"kind": "Status"}
