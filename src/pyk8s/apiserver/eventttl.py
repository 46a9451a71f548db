"""Event expiry: Events live one hour after their last change (kube-apiserver --event-ttl).

Upstream attaches an etcd lease to every Event write; the SQLite store has no leases, so the
API server sweeps instead: every ``interval`` seconds it deletes Events whose last recorded
time (lastTimestamp, eventTime, series.lastObservedTime, or creation) is older than the TTL.
An Event may outlive its TTL by up to one interval.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from pyk8s.apiserver import rest
from pyk8s.apiserver.context import ApiContext
from pyk8s.machinery import errors
from pyk8s.machinery.meta import parse_rfc3339
from pyk8s.machinery.resources import Resource

log = logging.getLogger("pyk8s.apiserver.eventttl")


def last_seen(event: dict) -> datetime | None:  # type: ignore[type-arg]
    candidates = [
        event.get("lastTimestamp"),
        event.get("eventTime"),
        (event.get("series") or {}).get("lastObservedTime"),
        (event.get("metadata") or {}).get("creationTimestamp"),
    ]
    times = [t for t in (parse_rfc3339(c) for c in candidates if isinstance(c, str)) if t]
    return max(times) if times else None


async def sweep(ctx: ApiContext, resources: list[Resource], ttl: timedelta,
                now: datetime | None = None) -> int:
    """Delete the expired Events; returns how many went."""
    cutoff = (now or datetime.now(UTC)) - ttl
    removed = 0
    for res in resources:
        for cached in list(ctx.cache.cache_for(res).items.values()):
            seen = last_seen(cached.load())
            if seen is None or seen >= cutoff:
                continue
            try:
                await rest.delete(ctx, res, cached.namespace, cached.name, {})
                removed += 1
            except errors.ApiError:
                continue
    return removed


async def run(ctx: ApiContext, ttl: timedelta, interval: float = 300.0) -> None:
    resources = [r for r in ctx.catalogue.stored() if r.kind == "Event"]
    while True:
        await asyncio.sleep(interval)
        try:
            removed = await sweep(ctx, resources, ttl)
            if removed:
                log.info("expired %d events", removed)
        except Exception:
            log.exception("event expiry failed")
