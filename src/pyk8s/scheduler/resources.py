"""What a pod asks for and what a node offers, as integer resource maps.

A resource map is ``{name: amount}`` with CPU in millicores and every other resource in base
units. Only the resources the scheduler accounts are kept: ``cpu``, ``memory``,
``ephemeral-storage`` and the *scalar* resources (extended resources such as
``nvidia.com/gpu``, ``hugepages-*``, ``attachable-volumes-*``); the pod count is handled
separately because every pod takes exactly one.

:func:`pod_requests` follows upstream's ``resourcehelper.PodRequests``: the sum of the
regular containers, raised to the largest init container (restartable "sidecar" init
containers run alongside and add up), plus ``spec.overhead``. A request that is missing but
has a limit uses the limit, as the API server's defaulting would.

:func:`pod_requests` with ``non_zero=True`` gives the figures *scoring* uses: a container
without a CPU or memory request counts as 100m / 200Mi, so that many "best effort" pods do
not all pile onto one node (upstream ``schedutil.GetNonzeroRequests``).

Quantities are parsed through a small memo because the same strings ("100m", "128Mi") recur
in every pod.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from pyk8s.scheduler.quantity import QuantityError, milli_value, value

__all__ = [
    "CPU",
    "DEFAULT_MEMORY_REQUEST",
    "DEFAULT_MILLI_CPU_REQUEST",
    "EPHEMERAL_STORAGE",
    "MEMORY",
    "PODS",
    "is_scalar_resource",
    "node_allocatable",
    "pod_requests",
    "resource_list",
]

CPU = "cpu"
MEMORY = "memory"
EPHEMERAL_STORAGE = "ephemeral-storage"
PODS = "pods"

DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024

Resources = dict[str, int]


def is_scalar_resource(name: str) -> bool:
    """Extended, hugepages and attachable-volume resources (upstream ``IsScalarResourceName``)."""
    if name.startswith(("hugepages-", "attachable-volumes-")):
        return True
    if "/" not in name:
        return False
    return not (name.startswith("kubernetes.io/") or name.startswith("requests."))


@lru_cache(maxsize=4096)
def _amount(name: str, quantity: str | int | float) -> int:
    try:
        return milli_value(quantity) if name == CPU else value(quantity)
    except QuantityError:
        return 0


def resource_list(quantities: Mapping[str, Any] | None) -> Resources:
    """A ``ResourceList`` dict (``{"cpu": "100m"}``) as integers, accounted resources only."""
    out: Resources = {}
    for name, quantity in (quantities or {}).items():
        if name in (CPU, MEMORY, EPHEMERAL_STORAGE) or is_scalar_resource(name):
            out[name] = _amount(name, quantity)
    return out


def _container_requests(container: Mapping[str, Any], non_zero: bool) -> Resources:
    resources = container.get("resources") or {}
    limits = resources.get("limits") or {}
    reqs = resource_list({**limits, **(resources.get("requests") or {})})
    if non_zero:
        if CPU not in reqs:
            reqs[CPU] = DEFAULT_MILLI_CPU_REQUEST
        if MEMORY not in reqs:
            reqs[MEMORY] = DEFAULT_MEMORY_REQUEST
    return reqs


def _add(into: Resources, other: Mapping[str, int]) -> None:
    for name, amount in other.items():
        into[name] = into.get(name, 0) + amount


def _max(into: Resources, other: Mapping[str, int]) -> None:
    for name, amount in other.items():
        if amount > into.get(name, 0):
            into[name] = amount


def pod_requests(pod: Mapping[str, Any], *, non_zero: bool = False) -> Resources:
    """The resources a pod needs on its node while it runs (see the module docstring)."""
    spec = pod.get("spec") or {}
    total: Resources = {}
    for container in spec.get("containers") or ():
        _add(total, _container_requests(container, non_zero))
    sidecars: Resources = {}
    init_peak: Resources = {}
    for container in spec.get("initContainers") or ():
        reqs = _container_requests(container, False)
        if container.get("restartPolicy") == "Always":
            _add(total, reqs)
            _add(sidecars, reqs)
            step = dict(sidecars)
        else:
            step = dict(reqs)
            _add(step, sidecars)
        _max(init_peak, step)
    _max(total, init_peak)
    _add(total, resource_list(spec.get("overhead")))
    return total


def node_allocatable(node: Mapping[str, Any]) -> tuple[Resources, int]:
    """(allocatable resources, allowed pod count); capacity stands in when allocatable is unset."""
    status = node.get("status") or {}
    alloc = status.get("allocatable") or status.get("capacity") or {}
    pods = alloc.get(PODS)
    try:
        allowed = value(pods) if pods is not None else 0
    except QuantityError:
        allowed = 0
    return resource_list(alloc), allowed


def sum_requests(items: Iterable[Mapping[str, int]]) -> Resources:
    """The element-wise sum of resource maps."""
    total: Resources = {}
    for item in items:
        _add(total, item)
    return total
