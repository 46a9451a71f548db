"""Reading container logs for ``kubectl logs`` (upstream ``pkg/kubelet/kuberuntime/logs``).

Log files are in the CRI format (:mod:`pyk8s.runtime.logs`); this module turns them back
into what the user wrote, honouring the ``PodLogOptions`` the node server receives:
``tailLines``, ``sinceSeconds``/``sinceTime``, ``timestamps``, ``limitBytes`` and ``follow``
(keep reading as the file grows until the container stops). Partial (``P``) records are
joined with the next one, so a long line comes back whole.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pyk8s.runtime.logs import LogRecord, format_timestamp, parse_record


@dataclass(frozen=True)
class LogOptions:
    tail_lines: int | None = None
    since: datetime | None = None
    timestamps: bool = False
    limit_bytes: int | None = None
    follow: bool = False


def _render(record: LogRecord, opts: LogOptions, first: bool) -> bytes:
    prefix = (format_timestamp(record.timestamp).encode() + b" ") if opts.timestamps and first \
        else b""
    return prefix + record.content + (b"" if record.partial else b"\n")


def _records(data: bytes) -> list[LogRecord]:
    out = []
    for line in data.split(b"\n"):
        if line:
            rec = parse_record(line)
            if rec is not None:
                out.append(rec)
    return out


def read_log(path: Path, opts: LogOptions) -> tuple[bytes, int]:
    """What the log holds now, per the options; and the file offset read up to."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return b"", 0
    end = data.rfind(b"\n") + 1  # an unfinished record is read next time
    records = [r for r in _records(data[:end]) if opts.since is None or r.timestamp >= opts.since]
    if opts.tail_lines is not None:
        # Count whole lines: a run of P records plus its F record is one line.
        complete = [i for i, r in enumerate(records) if not r.partial]
        if opts.tail_lines <= 0:
            records = []
        elif len(complete) > opts.tail_lines:
            records = records[complete[-opts.tail_lines - 1] + 1:]
    out = bytearray()
    first = True
    for r in records:
        out += _render(r, opts, first)
        first = not r.partial
    body = bytes(out)
    if opts.limit_bytes is not None:
        body = body[:opts.limit_bytes]
    return body, end


async def follow_log(path: Path, opts: LogOptions, running: Callable[[], Awaitable[bool]],
                     poll: float = 0.2) -> AsyncIterator[bytes]:
    """The log so far, then new records as they are written, until the container stops."""
    body, offset = read_log(path, opts)
    sent = len(body)
    if body:
        yield body
    if not opts.follow:
        return
    first = True
    while True:
        if opts.limit_bytes is not None and sent >= opts.limit_bytes:
            return
        alive = await running()
        try:
            with path.open("rb") as f:
                if f.seek(0, 2) < offset:
                    offset = 0  # rotated: the new file starts over
                f.seek(offset)
                chunk = f.read()
        except FileNotFoundError:
            chunk = b""
        end = chunk.rfind(b"\n") + 1
        if end:
            offset += end
            out = bytearray()
            for r in _records(chunk[:end]):
                out += _render(r, opts, first)
                first = not r.partial
            if opts.limit_bytes is not None:
                out = out[:opts.limit_bytes - sent]
            sent += len(out)
            if out:
                yield bytes(out)
        elif not alive:
            return
        await asyncio.sleep(poll)
