"""Server-side ``meta.k8s.io/v1`` Table rendering, the columns ``kubectl get`` prints.

kubectl 1.32 has no client-side printers: it asks the API server for a Table and prints the
column headers and cells verbatim (upper-casing the names and hiding ``priority`` > 0 columns
unless ``-o wide``). This package is upstream's ``pkg/printers/internalversion`` printers, the
part that decides *what* the columns and cells are; building the Table envelope (kind,
resourceVersion, ``rows[].object``) is the API server's job.

The catalogue maps ``(API group, plural resource)`` to a :class:`Printer`; anything not in it
gets upstream's ``DefaultTableConvertor`` columns, ``Name`` and ``Created At`` (an RFC 3339
date, not an age), which is what ``kubectl get`` shows for LimitRanges, SelfSubjectAccessReviews
and every resource upstream has no printer for.

Rows are always rendered wide: upstream's server-side convertor calls the printers with
``Wide: true`` and lets kubectl drop the priority-1 cells, so every row has one cell per column.

Printers are pure functions of a plain JSON-form object and a clock (``now``), so tests and
watches need no real time. They never raise on a sparse or malformed object: a missing field
prints as upstream prints the Go zero value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import coordination, core, events, pods, services, workloads
from ._common import (
    CREATION_TIMESTAMP_DESCRIPTION,
    NAME_COLUMN,
    Obj,
    column,
    get,
    human_duration,
    parse_time,
)

__all__ = [
    "PRINTERS",
    "Printer",
    "human_duration",
    "table_columns",
    "table_row_cells",
    "table_row_conditions",
]

CellFunc = Callable[[Obj, datetime], list[Any]]


@dataclass(frozen=True, slots=True)
class Printer:
    """Column definitions plus the function that renders one object's cells, in that order."""

    columns: tuple[dict[str, Any], ...]
    cells: CellFunc


PRINTERS: dict[tuple[str, str], Printer] = {
    ("", "pods"): Printer(pods.COLUMNS, pods.cells),
    ("", "nodes"): Printer(core.NODE_COLUMNS, core.node_cells),
    ("", "namespaces"): Printer(core.NAMESPACE_COLUMNS, core.namespace_cells),
    ("", "services"): Printer(services.SERVICE_COLUMNS, services.service_cells),
    ("", "endpoints"): Printer(services.ENDPOINTS_COLUMNS, services.endpoints_cells),
    ("", "events"): Printer(events.COLUMNS, events.core_cells),
    ("", "configmaps"): Printer(core.CONFIG_MAP_COLUMNS, core.config_map_cells),
    ("", "secrets"): Printer(core.SECRET_COLUMNS, core.secret_cells),
    ("", "serviceaccounts"): Printer(core.SERVICE_ACCOUNT_COLUMNS, core.service_account_cells),
    ("", "resourcequotas"): Printer(core.RESOURCE_QUOTA_COLUMNS, core.resource_quota_cells),
    ("events.k8s.io", "events"): Printer(events.COLUMNS, events.events_api_cells),
    ("discovery.k8s.io", "endpointslices"): Printer(
        services.ENDPOINT_SLICE_COLUMNS, services.endpoint_slice_cells
    ),
    ("apps", "deployments"): Printer(workloads.DEPLOYMENT_COLUMNS, workloads.deployment_cells),
    ("apps", "replicasets"): Printer(workloads.REPLICA_SET_COLUMNS, workloads.replica_set_cells),
    ("apps", "daemonsets"): Printer(workloads.DAEMON_SET_COLUMNS, workloads.daemon_set_cells),
    ("apps", "statefulsets"): Printer(workloads.STATEFUL_SET_COLUMNS, workloads.stateful_set_cells),
    ("apps", "controllerrevisions"): Printer(
        workloads.CONTROLLER_REVISION_COLUMNS, workloads.controller_revision_cells
    ),
    ("batch", "jobs"): Printer(workloads.JOB_COLUMNS, workloads.job_cells),
    ("batch", "cronjobs"): Printer(workloads.CRON_JOB_COLUMNS, workloads.cron_job_cells),
    ("coordination.k8s.io", "leases"): Printer(
        coordination.LEASE_COLUMNS, coordination.lease_cells
    ),
}

_CREATED_AT_COLUMN = column("Created At", "date", CREATION_TIMESTAMP_DESCRIPTION)


def _created_at(obj: Obj) -> str:
    """The creation time in UTC as Go's ``time.RFC3339`` (whole seconds, ``Z``); Go's zero
    time when unset, as upstream prints it."""
    when = parse_time(get(obj, "metadata", "creationTimestamp"))
    if when is None:
        return "0001-01-01T00:00:00Z"
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _default_cells(obj: Obj, now: datetime) -> list[Any]:
    name = get(obj, "metadata", "name")
    return [name if isinstance(name, str) else "", _created_at(obj)]


DEFAULT_PRINTER = Printer((NAME_COLUMN, _CREATED_AT_COLUMN), _default_cells)


def _printer(group: str, resource: str) -> Printer:
    return PRINTERS.get((group, resource), DEFAULT_PRINTER)


def table_columns(group: str, resource: str) -> list[dict[str, Any]]:
    """The column definitions for a resource (API group ``""`` for core, plural name), as
    fresh dicts the caller may serialise or modify."""
    return [dict(c) for c in _printer(group, resource).columns]


def table_row_cells(group: str, resource: str, obj: Obj, now: datetime) -> list[Any]:
    """One row's cells, one per column of :func:`table_columns`, wide columns included.

    ``now`` is the clock the ages are measured against (naive means UTC)."""
    if not isinstance(obj, Mapping):
        obj = {}
    return _printer(group, resource).cells(obj, now)


def table_row_conditions(group: str, resource: str, obj: Obj) -> list[dict[str, str]]:
    """The row's ``conditions``: upstream marks finished pods ``Completed``; empty otherwise."""
    if (group, resource) == ("", "pods") and isinstance(obj, Mapping):
        return pods.conditions(obj)
    return []
