"""The Lease printer (``coordination.k8s.io``): who holds a leader-election or heartbeat lease."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ._common import AGE_COLUMN, NAME_COLUMN, Obj, age, as_str, column, get, name_of

LEASE_COLUMNS = (
    NAME_COLUMN,
    column(
        "Holder",
        "string",
        "holderIdentity contains the identity of the holder of a current lease. If Coordinated"
        " Leader Election is used, the holder identity must be equal to the elected"
        " LeaseCandidate.metadata.name field.",
    ),
    AGE_COLUMN,
)


def lease_cells(lease: Obj, now: datetime) -> list[Any]:
    return [name_of(lease), as_str(get(lease, "spec", "holderIdentity")), age(lease, now)]
