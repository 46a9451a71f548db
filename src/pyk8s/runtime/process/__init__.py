"""The ``process`` runtime (no isolation): containers as supervised host processes.

``ProcessRuntime`` is imported on first use: every container's supervisor
(:mod:`pyk8s.runtime.process.shim`) starts inside this package, and should not pay for the
runtime's imports (asyncio among them) on each container start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyk8s.runtime.process.runtime import ProcessRuntime


def __getattr__(name: str) -> Any:
    if name == "ProcessRuntime":
        from pyk8s.runtime.process.runtime import ProcessRuntime

        return ProcessRuntime
    raise AttributeError(name)


__all__ = ["ProcessRuntime"]
