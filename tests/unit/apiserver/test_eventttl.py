"""Events expire an hour after their last change, not after their creation."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pyk8s.apiserver import eventttl, rest
from pyk8s.apiserver.context import ApiContext, ServerSettings
from pyk8s.apiserver.watchcache import WatchCache
from pyk8s.machinery.resources import CATALOGUE
from pyk8s.storage import open_store

EVENTS = CATALOGUE.resource("v1", "events")
NAMESPACES = CATALOGUE.resource("v1", "namespaces")


def test_sweep_deletes_only_events_past_their_ttl(tmp_path: Path) -> None:
    async def scenario() -> list[str]:
        store = await open_store(f"sqlite:///{tmp_path / 'db'}", compact_interval=0)
        cache = WatchCache(store, CATALOGUE.stored())
        await cache.start()
        ctx = ApiContext(ServerSettings(data_dir=tmp_path), store, cache)
        try:
            await rest.create(ctx, NAMESPACES, "", {"metadata": {"name": "ns"}})
            now = datetime(2030, 1, 1, 12, tzinfo=UTC)
            for name, last in (("old", now - timedelta(hours=2)),
                               ("renewed", now - timedelta(minutes=10)),
                               ("fresh", now)):
                await rest.create(ctx, EVENTS, "ns", {
                    "metadata": {"name": name},
                    "involvedObject": {"kind": "Pod", "name": "p", "namespace": "ns"},
                    "reason": "Test", "message": "m",
                    "firstTimestamp": (now - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "lastTimestamp": last.strftime("%Y-%m-%dT%H:%M:%SZ")})
            await cache.wait_fresh()
            removed = await eventttl.sweep(ctx, [EVENTS], timedelta(hours=1), now=now)
            assert removed == 1
            await cache.wait_fresh()
            return sorted(o.name for o in cache.cache_for(EVENTS).items.values())
        finally:
            await cache.stop()
            await store.close()

    assert asyncio.run(scenario()) == ["fresh", "renewed"]
