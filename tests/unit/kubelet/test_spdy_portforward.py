"""SPDY/3.1 framing and the port-forward protocol, driven as kubectl drives them: a client
framer writes SYN_STREAMs with the port-forward headers into the kubelet's session, in
byte-sized pieces, and reads back what it answers. Forwarded connections reach a real
echo server on loopback."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Awaitable, Callable

import pytest

from pyk8s.kubelet.portforward import PortForwardSession
from pyk8s.machinery import spdy


class TestFraming:
    def test_dictionary_is_spdy3s(self) -> None:
        # The zlib dictionary id both peers check; kubectl's header blocks start 78 f9.
        assert len(spdy.DICTIONARY) == 1423
        assert zlib.adler32(spdy.DICTIONARY) == 0xE3C6A7C2

    def test_control_frames_round_trip_through_one_byte_pieces(self) -> None:
        framer, parser = spdy.Framer(), spdy.FrameParser()
        wire = b"".join([
            framer.syn_stream(1, {"streamType": "error", "port": "80", "requestID": "0"}),
            framer.syn_stream(3, {"streamType": "data", "port": "80", "requestID": "0"}),
            framer.syn_reply(1),
            spdy.Framer.data(3, b"GET / HTTP/1.0\r\n\r\n", fin=True),
            framer.rst_stream(3, spdy.CANCEL),
            framer.ping(7),
            framer.settings([(0, 7, 65536)]),
            framer.window_update(3, 1000),
            framer.goaway(3),
        ])
        frames = [f for i in range(len(wire)) for f in parser.feed(wire[i:i + 1])]
        kinds = [f.kind for f in frames]
        assert kinds == [spdy.SYN_STREAM, spdy.SYN_STREAM, spdy.SYN_REPLY, spdy.DATA,
                         spdy.RST_STREAM, spdy.PING, spdy.SETTINGS, spdy.WINDOW_UPDATE,
                         spdy.GOAWAY]
        assert frames[1].stream_id == 3 and frames[1].header("streamtype") == "data"
        assert frames[1].header("requestID") == "0"
        assert frames[2].headers == {}
        assert frames[3].data == b"GET / HTTP/1.0\r\n\r\n" and frames[3].fin
        assert (frames[4].stream_id, frames[4].status) == (3, spdy.CANCEL)
        assert frames[5].value == 7
        assert frames[6].settings == [(0, 7, 65536)]
        assert frames[7].value == 1000
        assert frames[8].stream_id == 3

    def test_header_blocks_start_with_the_dictionary_zlib_header(self) -> None:
        frame = spdy.Framer().syn_stream(1, {"port": "80"})
        assert frame[18:20] == b"\x78\xf9"

    def test_multi_valued_headers_are_nul_separated(self) -> None:
        framer, parser = spdy.Framer(), spdy.FrameParser()
        (frame,) = parser.feed(framer.syn_reply(1, {"x": ["a", "b"]}))
        assert frame.headers == {"x": ["a", "b"]}

    def test_unknown_control_types_are_skipped(self) -> None:
        unknown = b"\x80\x03\x00\x0a\x00\x00\x00\x02ab"
        (frame,) = spdy.FrameParser().feed(unknown + spdy.Framer().ping(1))
        assert frame.kind == spdy.PING

    def test_other_versions_are_a_protocol_error(self) -> None:
        with pytest.raises(spdy.ProtocolError):
            list(spdy.FrameParser().feed(b"\x80\x02\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01"))


class Client:
    """kubectl's side: writes frames into the session, reads what it sends back."""

    def __init__(self, dial: Callable[[int], Awaitable[tuple[asyncio.StreamReader,
                                                              asyncio.StreamWriter]]]) -> None:
        self.framer = spdy.Framer()
        self.parser = spdy.FrameParser()
        self.frames: asyncio.Queue[spdy.Frame] = asyncio.Queue()
        self.received: dict[int, tuple[bytes, bool]] = {}
        self.session = PortForwardSession(self._receive, dial, "p")

    async def _receive(self, data: bytes) -> None:
        for frame in self.parser.feed(data):
            self.frames.put_nowait(frame)

    async def send(self, data: bytes) -> None:
        for i in range(0, len(data), 3):  # kubectl splits frames across messages
            await self.session.feed(data[i:i + 3])

    async def open(self, request_id: str, port: int) -> tuple[int, int]:
        sid = 1 + 4 * int(request_id)
        headers = {"streamType": "error", "port": str(port), "requestID": request_id}
        await self.send(self.framer.syn_stream(sid, headers))
        await self.send(spdy.Framer.data(sid, fin=True))  # kubectl never writes to it
        await self.send(self.framer.syn_stream(sid + 2, {**headers, "streamType": "data"}))
        return sid, sid + 2

    async def collect(self, stream_id: int) -> tuple[bytes, bool]:
        """Data on a stream until its FIN; frames of other streams are kept for later."""
        while True:
            data, fin = self.received.get(stream_id, (b"", False))
            if fin:
                return data, fin
            frame = await asyncio.wait_for(self.frames.get(), 5)
            if frame.kind == spdy.DATA:
                data, fin = self.received.get(frame.stream_id, (b"", False))
                self.received[frame.stream_id] = (data + frame.data, fin or frame.fin)


async def echo_server() -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read()  # until the client half-closes
        writer.write(b"echo:" + data)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def dial_loopback(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


class TestPortForwardSession:
    def test_every_stream_is_answered_and_data_flows_both_ways(self) -> None:
        async def scenario() -> None:
            server, port = await echo_server()
            client = Client(dial_loopback)
            error_id, data_id = await client.open("0", port)
            replies = [await client.frames.get(), await client.frames.get()]
            assert [(f.kind, f.stream_id) for f in replies] == [
                (spdy.SYN_REPLY, error_id), (spdy.SYN_REPLY, data_id)]
            await client.send(spdy.Framer.data(data_id, b"hello"))
            await client.send(spdy.Framer.data(data_id, fin=True))
            assert await client.collect(data_id) == (b"echo:hello", True)
            assert await client.collect(error_id) == (b"", True)  # closed, no error
            await client.session.close()
            server.close()

        asyncio.run(scenario())

    def test_two_connections_at_once(self) -> None:
        async def scenario() -> None:
            server, port = await echo_server()
            client = Client(dial_loopback)
            _, first = await client.open("0", port)
            _, second = await client.open("1", port)
            await client.send(spdy.Framer.data(second, b"two", fin=True))
            await client.send(spdy.Framer.data(first, b"one", fin=True))
            got = {first: await client.collect(first), second: await client.collect(second)}
            assert got == {first: (b"echo:one", True), second: (b"echo:two", True)}
            await client.session.close()
            server.close()

        asyncio.run(scenario())

    def test_a_port_nobody_listens_on_is_reported_on_the_error_stream(self) -> None:
        async def refuse(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            raise ConnectionRefusedError(111, "Connection refused")

        async def scenario() -> None:
            client = Client(refuse)
            error_id, data_id = await client.open("0", 9)
            message, fin = await client.collect(error_id)
            assert fin
            assert message == b"error forwarding port 9 to pod p: Connection refused"
            assert await client.collect(data_id) == (b"", True)
            await client.session.close()

        asyncio.run(scenario())

    def test_invalid_port_and_pings(self) -> None:
        async def scenario() -> None:
            client = Client(dial_loopback)
            error_id, _ = await client.open("0", 0)
            assert (await client.collect(error_id))[0] == b'invalid port "0"'
            await client.send(client.framer.ping(5))
            while (frame := await client.frames.get()).kind != spdy.PING:
                pass
            assert frame.value == 5
            await client.session.close()

        asyncio.run(scenario())

    def test_a_reset_data_stream_ends_the_forward(self) -> None:
        async def scenario() -> None:
            closed = asyncio.Event()

            async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                await reader.read()
                closed.set()
                writer.close()

            server = await asyncio.start_server(hold, "127.0.0.1", 0)
            client = Client(dial_loopback)
            error_id, data_id = await client.open("0", server.sockets[0].getsockname()[1])
            await client.send(spdy.Framer.data(data_id, b"x"))
            await asyncio.sleep(0.05)
            await client.send(client.framer.rst_stream(data_id))
            await asyncio.wait_for(closed.wait(), 5)
            assert await client.collect(error_id) == (b"", True)
            await client.session.close()
            server.close()

        asyncio.run(scenario())
