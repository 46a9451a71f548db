"""Object metadata rules shared by every kind: names, timestamps, uids, generations.

Messages are worded as apimachinery's ``validation`` package words them, because users
(and tests written against upstream) read them verbatim.
"""

from __future__ import annotations

import functools
import math
import os
import random
import re
import time
from datetime import datetime
from typing import Any

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)

# Kinds whose names must be DNS-1123 labels rather than subdomains (upstream's per-kind
# ValidateXName functions); everything else is a subdomain.
LABEL_NAMED_KINDS = frozenset({"Namespace", "Service"})


def validate_name(name: str, *, label: bool) -> list[str]:
    """Messages describing what is wrong with ``name`` (empty when it is valid)."""
    errors: list[str] = []
    limit = DNS1123_LABEL_MAX if label else DNS1123_SUBDOMAIN_MAX
    if len(name) > limit:
        errors.append(f"must be no more than {limit} characters")
    pattern = _LABEL if label else _SUBDOMAIN
    if not pattern.match(name):
        errors.append(LABEL_MSG if label else SUBDOMAIN_MSG)
    return errors


def path_segment_errors(name: str) -> list[str]:
    """Names must also be usable as a URL path segment (apimachinery IsValidPathSegmentName)."""
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in name]


_last_second: tuple[int, str] = (0, "1970-01-01T00:00:00Z")


def _second_text(second: int) -> str:
    """RFC 3339 text of a whole second since the epoch, formatted once per second: writes,
    events and status reports in one second (thousands in a burst) share it."""
    global _last_second
    if _last_second[0] != second:
        _last_second = (second, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second)))
    return _last_second[1]


def now_rfc3339() -> str:
    """The current time at second precision."""
    return _second_text(math.floor(time.time()))


def rfc3339(moment: datetime) -> str:
    """``moment`` in UTC at second precision (a naive datetime is local time)."""
    return _second_text(math.floor(moment.timestamp()))


def parse_rfc3339(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None


_uid_random = random.Random(os.urandom(32))


_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (4 << 76) | (0x8000 << 48)


def new_uid() -> str:
    """A version-4 UUID. Drawn from a generator seeded once from the OS: uids must be unique,
    not secret, and ``uuid4()`` costs a getrandom system call per write. Formatted here
    rather than through ``uuid.UUID`` (the same text, a fraction of the time)."""
    h = "%032x" % ((_uid_random.getrandbits(128) & _UUID4_CLEAR) | _UUID4_SET)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@functools.lru_cache(maxsize=1024)
def _parts(dotted: str) -> tuple[str, ...]:
    return tuple(dotted.split("."))


def get_path(obj: Any, dotted: str) -> Any:
    """The value at a dotted path (``spec.nodeName``), or None."""
    cur = obj
    for part in _parts(dotted):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def field_value(obj: dict[str, Any], dotted: str) -> str:
    """A field as upstream field selectors see it: a string, "" when absent."""
    value = get_path(obj, dotted)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if dotted == "source" and isinstance(value, dict):  # events: source is source.component
        return str(value.get("component", ""))
    return str(value)
