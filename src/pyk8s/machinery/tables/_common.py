"""Helpers every printer shares: safe field access, ages, label and selector strings, columns.

Printers read plain JSON-form objects that may be missing any optional field (a pod that was
just created has no ``status``; a hand-written object may carry ``null`` where a map belongs).
Every accessor here therefore degrades to an empty value instead of raising: a table row must
render for any object the store holds, exactly as upstream's printers never fail on a sparse
internal object.

The string formats are upstream's, because kubectl prints the cells verbatim:

* ``human_duration`` is apimachinery's ``duration.HumanDuration`` (the AGE column);
* ``format_labels`` is ``labels.FormatLabels`` (sorted ``k=v`` pairs, ``<none>`` when empty);
* ``format_label_selector`` is ``metav1.FormatLabelSelector`` over
  ``LabelSelectorAsSelector`` (requirements sorted by key, ``in (a,b)`` for sets).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

Obj = Mapping[str, Any]

UNKNOWN = "<unknown>"
NONE = "<none>"

# Column descriptions upstream takes from generated API documentation (SwaggerDoc); kubectl
# never shows them, but API clients that render tables (dashboards) do.
NAME_DESCRIPTION = (
    "Name must be unique within a namespace. Is required when creating resources, although"
    " some resources may allow a client to request the generation of an appropriate name"
    " automatically. Name is primarily intended for creation idempotence and configuration"
    " definition. Cannot be updated. More info:"
    " https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
CREATION_TIMESTAMP_DESCRIPTION = (
    "CreationTimestamp is a timestamp representing the server time when this object was"
    " created. It is not guaranteed to be set in happens-before order across separate"
    " operations. Clients may not set this value. It is represented in RFC3339 form and is in"
    " UTC.\n\nPopulated by the system. Read-only. Null for lists. More info:"
    " https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)
CONTAINERS_DESCRIPTION = "Names of each container in the template."
IMAGES_DESCRIPTION = "Images referenced by each container in the template."


def column(
    name: str, type_: str, description: str, *, format_: str = "", priority: int = 0
) -> dict[str, Any]:
    """One ``meta.k8s.io/v1`` TableColumnDefinition; all five fields are always present, as
    upstream serialises them (none is ``omitempty``)."""
    return {
        "name": name,
        "type": type_,
        "format": format_,
        "description": description,
        "priority": priority,
    }


NAME_COLUMN = column("Name", "string", NAME_DESCRIPTION, format_="name")
AGE_COLUMN = column("Age", "string", CREATION_TIMESTAMP_DESCRIPTION)
WIDE_CONTAINERS_COLUMN = column("Containers", "string", CONTAINERS_DESCRIPTION, priority=1)
WIDE_IMAGES_COLUMN = column("Images", "string", IMAGES_DESCRIPTION, priority=1)


# --- safe access -------------------------------------------------------------------------


def get(obj: Any, *path: str) -> Any:
    """The value at ``path`` inside nested maps, or None if any step is missing or not a map."""
    cur = obj
    for key in path:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(key)
    return cur


def as_map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def maps(value: Any) -> list[Mapping[str, Any]]:
    """The map elements of a list (anything else in it is skipped)."""
    return [v for v in as_list(value) if isinstance(v, Mapping)]


def as_str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def as_int(value: Any, default: int = 0) -> int:
    """An integer field; booleans and junk read as the default (Go's zero value)."""
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return default


def name_of(obj: Obj) -> str:
    return as_str(get(obj, "metadata", "name"))


# --- time --------------------------------------------------------------------------------

_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 ``Time``/``MicroTime`` as an aware datetime; None when absent, unparsable
    or Go's zero time (which upstream treats as unset)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return None if parsed == _ZERO_TIME else parsed


def utc(now: datetime) -> datetime:
    """``now`` made aware; a naive clock is taken to be UTC."""
    return now if now.tzinfo is not None else now.replace(tzinfo=UTC)


def human_duration(seconds: float) -> str:
    """apimachinery's ``HumanDuration``: about two significant figures, growing coarser with
    age (``59s``, ``119s``, ``2m``, ``9m59s``, ``179m``, ``3h``, ``7h59m``, ``47h``, ``2d3h``,
    ``8d``, ``729d``, ``2y70d``, ``8y``).

    Up to a second in the future reads ``0s`` (clock skew between servers); further in the
    future is ``<invalid>``."""
    whole = int(seconds)  # truncates toward zero, like Go's int(d.Seconds())
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 60 * 2:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        secs = whole % 60
        return f"{minutes}m" if secs == 0 else f"{minutes}m{secs}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        mins = minutes % 60
        return f"{hours}h" if mins == 0 else f"{hours}h{mins}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{hours // 24 // 365}y"


def since(value: Any, now: datetime) -> str:
    """Upstream's ``translateTimestampSince``: the age of a timestamp (an RFC 3339 string or a
    datetime), ``<unknown>`` if unset."""
    when = value if isinstance(value, datetime) else parse_time(value)
    if when is None:
        return UNKNOWN
    return human_duration((utc(now) - when).total_seconds())


def age(obj: Obj, now: datetime) -> str:
    return since(get(obj, "metadata", "creationTimestamp"), now)


# --- labels, selectors, containers ------------------------------------------------------


def format_labels(labels: Any) -> str:
    """``labels.FormatLabels``: ``k=v`` pairs sorted by key, or ``<none>``."""
    pairs = as_map(labels)
    if not pairs:
        return NONE
    return ",".join(f"{k}={as_str(pairs[k])}" for k in sorted(pairs))


_SET_OPERATORS = {"In": " in ", "NotIn": " notin "}


def selector_string(selector: Any) -> str | None:
    """``LabelSelectorAsSelector(s).String()``; None where upstream reports an error.

    A missing selector selects nothing and an empty one everything; both print as ``""``."""
    if not isinstance(selector, Mapping):
        return ""
    requirements: list[tuple[str, str]] = []
    for key, value in as_map(selector.get("matchLabels")).items():
        requirements.append((key, f"{key}={as_str(value)}"))
    for expr in as_list(selector.get("matchExpressions")):
        if not isinstance(expr, Mapping):
            return None
        key = as_str(expr.get("key"))
        op = expr.get("operator")
        values = [as_str(v) for v in as_list(expr.get("values"))]
        if op in _SET_OPERATORS:
            if not values:
                return None
            shown = values[0] if len(values) == 1 else ",".join(sorted(values))
            requirements.append((key, f"{key}{_SET_OPERATORS[op]}({shown})"))
        elif op in ("Exists", "DoesNotExist"):
            if values:
                return None
            requirements.append((key, key if op == "Exists" else f"!{key}"))
        else:
            return None
    requirements.sort(key=lambda r: r[0])
    return ",".join(text for _, text in requirements)


def format_label_selector(selector: Any) -> str:
    """``metav1.FormatLabelSelector``: the selector string, ``<none>`` if it is empty,
    ``<error>`` if it is invalid."""
    text = selector_string(selector)
    if text is None:
        return "<error>"
    return text or NONE


def container_cells(containers: Any) -> list[str]:
    """Upstream's ``layoutContainerCells``: container names, then images, comma-joined."""
    items = maps(containers)
    return [
        ",".join(as_str(c.get("name")) for c in items),
        ",".join(as_str(c.get("image")) for c in items),
    ]
