"""Container runtimes behind one small interface (:mod:`pyk8s.runtime.interface`), chosen by
name from a registry, as upstream's kubelet chooses a CRI endpoint.

``open_runtime("process", state_dir=..., host_ip=...)`` builds one. A new runtime registers a
factory (``register("oci", factory)``); the kubelet never imports an implementation.
Factories are imported lazily so that naming a runtime costs nothing until it is used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyk8s.runtime.interface import (
        ContainerConfig,
        ContainerState,
        ContainerStats,
        ContainerStatus,
        ExecProcess,
        ExecResult,
        Mount,
        NotFoundError,
        PodSandbox,
        PodSandboxConfig,
        PortMapping,
        Resources,
        Runtime,
        RuntimeInfo,
        RuntimeOperationError,
        SandboxState,
        SecurityContext,
    )

_INTERFACE = frozenset({
    "ContainerConfig", "ContainerState", "ContainerStats", "ContainerStatus", "ExecProcess",
    "ExecResult", "Mount", "NotFoundError", "PodSandbox", "PodSandboxConfig", "PortMapping",
    "Resources", "Runtime", "RuntimeInfo", "RuntimeOperationError", "SandboxState",
    "SecurityContext",
})


def __getattr__(name: str) -> Any:
    """The interface's names, imported on first use: a container's supervisor starts inside
    this package and should not pay for them (typing and dataclasses, ~70 ms) on each start."""
    if name in _INTERFACE:
        from pyk8s.runtime import interface

        return getattr(interface, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


Factory = Callable[..., "Runtime"]


def _process(**options: Any) -> Runtime:
    from pyk8s.runtime.process import ProcessRuntime

    return ProcessRuntime(**options)


def _oci(**options: Any) -> Runtime:
    from pyk8s.runtime.oci import OciRuntime

    return OciRuntime(**options)


_REGISTRY: dict[str, Factory] = {"process": _process, "oci": _oci}


def register(name: str, factory: Factory) -> None:
    _REGISTRY[name] = factory


def names() -> list[str]:
    return sorted(_REGISTRY)


async def remove_everything(runtime: Runtime) -> None:
    """Stop and remove every sandbox and container a runtime holds (``pyk8s reset``, test
    teardown). A stopping kubelet leaves containers running on purpose; this does not."""
    from pyk8s.runtime.interface import ContainerState

    for c in await runtime.list_containers():
        if c.state == ContainerState.RUNNING:
            await runtime.stop_container(c.id, 0)
    for sb in await runtime.list_pod_sandboxes():
        await runtime.remove_pod_sandbox(sb.id)
    for c in await runtime.list_containers():
        await runtime.remove_container(c.id)


def open_runtime(name: str, **options: Any) -> Runtime:
    """The runtime registered as ``name``; options go to its factory (``state_dir``, ...)."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown runtime {name!r}; known: {', '.join(names())}") from None
    return factory(**options)


__all__ = [
    "ContainerConfig",
    "ContainerState",
    "ContainerStats",
    "ContainerStatus",
    "ExecProcess",
    "ExecResult",
    "Mount",
    "NotFoundError",
    "PodSandbox",
    "PodSandboxConfig",
    "PortMapping",
    "Resources",
    "Runtime",
    "RuntimeInfo",
    "RuntimeOperationError",
    "SandboxState",
    "SecurityContext",
    "names",
    "open_runtime",
    "register",
    "remove_everything",
]
