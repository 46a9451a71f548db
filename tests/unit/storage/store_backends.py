"""Backends the storage conformance suite runs against, and how tests drive them.

Adding a backend is one entry in :data:`BACKENDS`: a function from a scratch directory to a
store URL and the options to open it with. Each test gets a store of its own; tests never
assume the store starts at revision 0, so a backend may share one server between tests
(e.g. one etcd per session, wiped between tests).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pyk8s.storage import Store, open_store

BackendSpec = Callable[[Path], tuple[str, dict[str, Any]]]

BACKENDS: dict[str, BackendSpec] = {
    # NORMAL durability keeps the suite fast; durability itself is tested separately.
    "sqlite": lambda tmp: (
        f"sqlite://{tmp}/state.db",
        {"compact_interval": 0, "synchronous": "NORMAL"},
    ),
}

TIMEOUT = 10.0


class Backend:
    """Opens stores of one backend and runs async test bodies against them."""

    def __init__(self, name: str, spec: BackendSpec, tmp_path: Path) -> None:
        self.name = name
        self.url, self.options = spec(tmp_path)

    async def open(self, **overrides: Any) -> Store:
        return await open_store(self.url, **{**self.options, **overrides})

    def run(self, body: Callable[[Store], Awaitable[None]], **overrides: Any) -> None:
        """Open a store, run ``body(store)`` with a timeout, close the store."""

        async def main() -> None:
            store = await self.open(**overrides)
            try:
                await asyncio.wait_for(body(store), TIMEOUT)
            finally:
                await store.close()

        asyncio.run(main())
