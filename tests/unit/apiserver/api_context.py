"""An API server's request context on a real SQLite store and watch cache, without HTTP: what
the unit tests of the write paths (rest.py, subresources.py, eventttl.py) run against."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from pyk8s.apiserver import rest
from pyk8s.apiserver.context import ApiContext, ServerSettings
from pyk8s.apiserver.watchcache import WatchCache
from pyk8s.machinery.resources import CATALOGUE
from pyk8s.storage import open_store

NAMESPACES = CATALOGUE.resource("v1", "namespaces")


@asynccontextmanager
async def api_context(tmp_path: Path, namespace: str = "ns") -> AsyncIterator[ApiContext]:
    """A context whose store and cache run until the block ends, with ``namespace`` created."""
    store = await open_store(f"sqlite:///{tmp_path / 'db'}", compact_interval=0)
    cache = WatchCache(store, CATALOGUE.stored())
    await cache.start()
    ctx = ApiContext(ServerSettings(data_dir=tmp_path), store, cache)
    try:
        await rest.create(ctx, NAMESPACES, "", {"metadata": {"name": namespace}})
        yield ctx
    finally:
        await cache.stop()
        await store.close()
