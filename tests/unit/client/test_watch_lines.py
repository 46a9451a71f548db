"""A watch stream arrives in chunks that need not end with its lines: every event is parsed
once, whole, whatever the chunking."""

from __future__ import annotations

import orjson
import pytest

from pyk8s.client.rest import LineSplitter

EVENTS = [orjson.dumps({"type": "ADDED", "object": {"metadata": {"name": f"p{i}"}}}) + b"\n"
          for i in range(50)]
STREAM = b"".join(EVENTS)


def lines_of(chunks: list[bytes]) -> list[bytes]:
    splitter = LineSplitter()
    return [line for chunk in chunks for line in splitter.feed(chunk)]


@pytest.mark.parametrize("size", [1, 7, 64, 1000, len(STREAM)])
def test_every_line_comes_out_whole_whatever_the_chunk_size(size: int) -> None:
    chunks = [STREAM[i:i + size] for i in range(0, len(STREAM), size)]
    assert lines_of(chunks) == [e.rstrip(b"\n") for e in EVENTS]


def test_a_line_is_held_back_until_it_ends() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b'{"type":"ADD') == []
    assert splitter.feed(b'ED"}') == []
    assert splitter.feed(b'\n{"a"') == [b'{"type":"ADDED"}']
    assert splitter.feed(b":1}\n") == [b'{"a":1}']


def test_blank_lines_are_skipped() -> None:
    assert lines_of([b"\n\r\n  \n", b'{"a":1}\n\n']) == [b'{"a":1}']
