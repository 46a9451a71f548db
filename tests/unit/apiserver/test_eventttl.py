"""Events expire an hour after their last change, not after their creation."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pyk8s.apiserver import eventttl, rest
from pyk8s.machinery.resources import CATALOGUE
from tests.unit.apiserver.api_context import api_context

EVENTS = CATALOGUE.resource("v1", "events")


def test_sweep_deletes_only_events_past_their_ttl(tmp_path: Path) -> None:
    async def scenario() -> list[str]:
        async with api_context(tmp_path) as ctx:
            cache = ctx.cache
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

    assert asyncio.run(scenario()) == ["fresh", "renewed"]
