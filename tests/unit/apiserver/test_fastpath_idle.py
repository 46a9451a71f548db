"""The lean front's idle timeout (apiserver/fastpath.py): a connection that sends nothing,
or stops half-way through a request head, is closed; one handed to aiohttp is not the lean
front's to close any more."""

from __future__ import annotations

import asyncio
from typing import Any

from pyk8s.apiserver import fastpath


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.closed = False
        self.protocol: Any = None

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass


class Recorder(asyncio.Protocol):
    def __init__(self) -> None:
        self.data = b""

    def data_received(self, data: bytes) -> None:
        self.data += data


def _connect(timeout: float, recorder: Recorder | None = None
             ) -> tuple[fastpath.FastProtocol, FakeTransport]:
    protocol = fastpath.FastProtocol(None, lambda: recorder or Recorder(),  # type: ignore[arg-type]
                                     frozenset(), set(), idle_timeout=timeout)
    transport = FakeTransport()
    protocol.connection_made(transport)
    return protocol, transport


def test_silent_connection_is_closed_after_the_idle_timeout() -> None:
    async def main() -> tuple[bool, bool]:
        _protocol, transport = _connect(0.05)
        await asyncio.sleep(0.02)
        early = transport.closed
        await asyncio.sleep(0.08)
        return early, transport.closed

    assert asyncio.run(main()) == (False, True)


def test_bytes_keep_a_connection_alive_and_a_stalled_head_is_closed() -> None:
    async def main() -> list[bool]:
        protocol, transport = _connect(0.08)
        seen = []
        for piece in (b"GET /api/v1/namespaces", b"/default HTTP/1.1\r\n", b"Host: x\r\n"):
            await asyncio.sleep(0.05)
            protocol.data_received(piece)
            seen.append(transport.closed)
        await asyncio.sleep(0.15)
        seen.append(transport.closed)
        return seen

    assert asyncio.run(main()) == [False, False, False, True]


def test_handed_off_connection_is_left_to_aiohttp() -> None:
    async def main() -> tuple[bool, bytes]:
        recorder = Recorder()
        protocol, transport = _connect(0.05, recorder)
        protocol.data_received(b"GET /api HTTP/1.1\r\nHost: x\r\n\r\n")  # discovery: not ours
        await asyncio.sleep(0.12)
        return transport.closed, recorder.data

    closed, handed = asyncio.run(main())
    assert not closed
    assert handed == b"GET /api HTTP/1.1\r\nHost: x\r\n\r\n"
