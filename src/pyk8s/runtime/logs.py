"""The CRI container log format, shared by runtimes (which write it) and the kubelet
(which serves ``kubectl logs`` from it).

One line per record: ``<RFC3339Nano timestamp> <stream> <tag> <content>``, where the tag is
``F`` for a full line and ``P`` for a partial one (a line longer than the runtime's buffer,
continued in the next record). This is the format containerd and CRI-O write, so tools that
read ``/var/log/pods`` read ours too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

MAX_LINE = 16 * 1024
"""Longer lines are split into ``P`` records, as containerd does."""


def format_timestamp(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}000Z"


def parse_timestamp(text: str) -> datetime | None:
    """RFC3339 with up to nanoseconds (Python keeps microseconds)."""
    if not text.endswith("Z"):
        return None
    head, _, frac = text[:-1].partition(".")
    try:
        base = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    micros = int((frac + "000000")[:6]) if frac.isdigit() else 0
    return base.replace(microsecond=micros)


def format_record(moment: datetime, stream: str, content: bytes, partial: bool = False) -> bytes:
    """One record; ``content`` excludes the newline."""
    tag = b"P" if partial else b"F"
    return (format_timestamp(moment).encode() + b" " + stream.encode() + b" " + tag + b" "
            + content + b"\n")


@dataclass(frozen=True)
class LogRecord:
    timestamp: datetime
    stream: str
    partial: bool
    content: bytes


def parse_record(line: bytes) -> LogRecord | None:
    """A record without its trailing newline; None when the line is not CRI format."""
    parts = line.split(b" ", 3)
    if len(parts) < 3:
        return None
    ts = parse_timestamp(parts[0].decode("ascii", "replace"))
    if ts is None or parts[1] not in (b"stdout", b"stderr") or parts[2] not in (b"F", b"P"):
        return None
    content = parts[3] if len(parts) == 4 else b""
    return LogRecord(ts, parts[1].decode(), parts[2] == b"P", content)
