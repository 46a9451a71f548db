"""The ``oci`` runtime: images from :mod:`pyk8s.runtime.images`, containers run by runc,
one supervisor per container (survives kubelet restarts), pods as pinned namespaces.

:class:`OciRuntime` is imported on first use: the supervisor and the sandbox helper start
as ``python -m pyk8s.runtime.oci.<module>`` and must not pay for aiohttp and the image
store on every container start.
"""

from typing import Any

__all__ = ["OciRuntime"]


def __getattr__(name: str) -> Any:
    if name == "OciRuntime":
        from pyk8s.runtime.oci.runtime import OciRuntime

        return OciRuntime
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
