"""The state store: the etcd contract (:mod:`.interface`) and its backends, chosen by URL.

``await open_store("sqlite:///var/lib/pyk8s/state.db")`` is all a component needs; it codes
against :class:`Store` and never imports a backend. A backend is one module plus one entry in
:data:`BACKENDS` (scheme → async factory), so ``etcd://`` is a new file, not an edit of its
callers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from .interface import (
    CompactedError,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    ListResult,
    RevisionMismatchError,
    StorageError,
    Store,
    WatchEvent,
    WatchOverflowError,
)

__all__ = [
    "BACKENDS",
    "CompactedError",
    "FutureRevisionError",
    "KeyExistsError",
    "KeyNotFoundError",
    "KeyValue",
    "ListResult",
    "RevisionMismatchError",
    "StorageError",
    "Store",
    "WatchEvent",
    "WatchOverflowError",
    "open_store",
]

StoreFactory = Callable[..., Awaitable[Store]]
"""``factory(url, **options)``: open the store a URL names."""


async def _open_sqlite(url: str, **options: Any) -> Store:
    """``sqlite:///abs/path.db``, ``sqlite://relative/path.db`` or ``sqlite://:memory:``."""
    from .sqlite import SQLiteOptions, SQLiteStore

    path = url.removeprefix("sqlite://")
    if not path:
        raise ValueError(f"no database path in {url!r}")
    return await SQLiteStore.open(path, SQLiteOptions(**options))


BACKENDS: dict[str, StoreFactory] = {
    "sqlite": _open_sqlite,
}
"""Backends by URL scheme."""


async def open_store(url: str, **options: Any) -> Store:
    """Open the store ``url`` names; ``options`` are the backend's settings (for SQLite, the
    fields of :class:`pyk8s.storage.sqlite.SQLiteOptions`). Raises ValueError for an unknown
    scheme and StorageError when the store cannot be opened."""
    scheme, sep, _ = url.partition("://")
    factory = BACKENDS.get(scheme) if sep else None
    if factory is None:
        known = ", ".join(f"{name}://" for name in sorted(BACKENDS))
        raise ValueError(f"unknown storage scheme {scheme!r} in {url!r} (known: {known})")
    return await factory(url, **options)
