"""Reading CRI-format logs back as kubectl logs shows them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pyk8s.kubelet.logs import LogOptions, follow_log, read_log
from pyk8s.runtime.logs import format_record, parse_record

T0 = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)


def write(path: Path, *records: tuple[int, str, bytes, bool]) -> None:
    with path.open("ab") as f:
        for seconds, stream, content, partial in records:
            f.write(format_record(T0 + timedelta(seconds=seconds), stream, content, partial))


def test_format_roundtrip() -> None:
    line = format_record(T0, "stderr", b"a b c")
    assert line == b"2026-01-01T12:00:00.123456000Z stderr F a b c\n"
    rec = parse_record(line[:-1])
    assert rec is not None and (rec.timestamp, rec.stream, rec.partial, rec.content) == \
        (T0, "stderr", False, b"a b c")
    assert parse_record(b"garbage") is None


def test_tail_since_timestamps_and_partial_lines(tmp_path: Path) -> None:
    log = tmp_path / "0.log"
    write(log, (0, "stdout", b"one", False), (1, "stderr", b"two", False),
          (2, "stdout", b"thr", True), (2, "stdout", b"ee", False))
    assert read_log(log, LogOptions())[0] == b"one\ntwo\nthree\n"
    assert read_log(log, LogOptions(tail_lines=2))[0] == b"two\nthree\n"
    assert read_log(log, LogOptions(tail_lines=0))[0] == b""
    assert read_log(log, LogOptions(since=T0 + timedelta(seconds=1)))[0] == b"two\nthree\n"
    assert read_log(log, LogOptions(tail_lines=1, timestamps=True))[0] == \
        b"2026-01-01T12:00:02.123456000Z three\n"
    assert read_log(log, LogOptions(limit_bytes=5))[0] == b"one\nt"
    assert read_log(tmp_path / "missing.log", LogOptions()) == (b"", 0)


def test_follow_streams_new_lines_until_the_container_stops(tmp_path: Path) -> None:
    log = tmp_path / "0.log"
    write(log, (0, "stdout", b"a", False))
    alive = [True, True, False]

    async def running() -> bool:
        return alive.pop(0) if alive else False

    async def go() -> list[bytes]:
        chunks = []
        async for chunk in follow_log(log, LogOptions(follow=True), running, poll=0.01):
            chunks.append(chunk)
            if chunk == b"a\n":
                write(log, (1, "stdout", b"b", False))
        return chunks

    assert asyncio.run(go()) == [b"a\n", b"b\n"]
