"""The event printer, shared by ``events`` in the core group and in ``events.k8s.io``.

Upstream stores both API versions as one internal Event, so both print the same columns. The
two JSON forms name their fields differently (``involvedObject``/``regarding``,
``message``/``note``, ``source``/``deprecatedSource``, and so on); :func:`_normalise` reads
either into the core/v1 names before printing.

LAST SEEN prefers ``series.lastObservedTime`` (new-style recurring events), then
``lastTimestamp``, then the first-seen time; COUNT prefers ``series.count`` and reads a
missing count as 1, since singleton events of the new API carry none.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ._common import (
    NAME_COLUMN,
    UNKNOWN,
    Obj,
    as_int,
    as_map,
    as_str,
    column,
    name_of,
    parse_time,
    since,
)

COLUMNS = (
    column(
        "Last Seen",
        "string",
        "The time at which the most recent occurrence of this event was recorded.",
    ),
    column(
        "Type",
        "string",
        "Type of this event (Normal, Warning), new types could be added in the future",
    ),
    column(
        "Reason",
        "string",
        "This should be a short, machine understandable string that gives the reason for the"
        " transition into the object's current status.",
    ),
    column("Object", "string", "The object that this event is about."),
    column(
        "Subobject",
        "string",
        "If referring to a piece of an object instead of an entire object, this string should"
        " contain a valid JSON/Go field access statement, such as"
        " desiredState.manifest.containers[2]. For example, if the object reference is to a"
        ' container within a pod, this would take on a value like: "spec.containers{name}"'
        ' (where "name" refers to the name of the container that triggered the event) or if no'
        ' container name is specified "spec.containers[2]" (container with index 2 in this'
        " pod). This syntax is chosen only to have some well-defined way of referencing a part"
        " of an object.",
        priority=1,
    ),
    column(
        "Source",
        "string",
        "The component reporting this event. Should be a short machine understandable string.",
        priority=1,
    ),
    column("Message", "string", "A human-readable description of the status of this operation."),
    column(
        "First Seen",
        "string",
        "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
        priority=1,
    ),
    column("Count", "string", "The number of times this event has occurred.", priority=1),
    {**NAME_COLUMN, "priority": 1},
)

# events.k8s.io/v1 field → core/v1 field, for the fields the printer reads.
_EVENTS_API_FIELDS = {
    "regarding": "involvedObject",
    "note": "message",
    "deprecatedSource": "source",
    "deprecatedFirstTimestamp": "firstTimestamp",
    "deprecatedLastTimestamp": "lastTimestamp",
    "deprecatedCount": "count",
    "reportingController": "reportingComponent",
}


def _normalise(event: Obj, group: str) -> Obj:
    if group != "events.k8s.io":
        return event
    core = dict(event)
    for new, old in _EVENTS_API_FIELDS.items():
        core[old] = event.get(new)
    return core


def _source(event: Obj) -> str:
    source = as_map(event.get("source"))
    component = as_str(source.get("component")) or as_str(event.get("reportingComponent"))
    instance = as_str(source.get("host")) or as_str(event.get("reportingInstance"))
    return f"{component}, {instance}" if instance else component


def _seen(*candidates: Any) -> datetime | None:
    for value in candidates:
        when = parse_time(value)
        if when is not None:
            return when
    return None


def cells_for(group: str, event: Obj, now: datetime) -> list[Any]:
    event = _normalise(event, group)
    first = _seen(event.get("firstTimestamp"), event.get("eventTime"))
    first_seen = since(first, now) if first else UNKNOWN
    last = parse_time(event.get("lastTimestamp"))
    last_seen = since(last, now) if last else first_seen
    count = as_int(event.get("count"))
    series = event.get("series")
    if isinstance(series, Mapping):
        observed = parse_time(series.get("lastObservedTime"))
        last_seen = since(observed, now) if observed else UNKNOWN
        count = as_int(series.get("count"))
    elif count == 0:
        count = 1

    involved = as_map(event.get("involvedObject"))
    kind = as_str(involved.get("kind")).lower()
    target_name = as_str(involved.get("name"))
    target = f"{kind}/{target_name}" if target_name else kind
    return [
        last_seen,
        as_str(event.get("type")),
        as_str(event.get("reason")),
        target,
        as_str(involved.get("fieldPath")),
        _source(event),
        as_str(event.get("message")).strip(),
        first_seen,
        count,
        name_of(event),
    ]


def core_cells(event: Obj, now: datetime) -> list[Any]:
    return cells_for("", event, now)


def events_api_cells(event: Obj, now: datetime) -> list[Any]:
    return cells_for("events.k8s.io", event, now)
