"""``port-forward`` as the kubelet serves it: SPDY/3.1 streams, the ``portforward.k8s.io``
protocol (upstream: ``pkg/kubelet/cri/streaming/portforward/httpstream.go``).

kubectl 1.32 tunnels the SPDY connection through a WebSocket
(``SPDY/3.1+portforward.k8s.io``): every binary message carries the next bytes of the SPDY
byte stream, with frames split across messages at will. The API server relays those
messages unchanged, so this module sees the byte stream kubectl writes.

Per forwarded TCP connection kubectl opens two streams carrying the headers ``streamType``
(``error`` or ``data``), ``port`` and ``requestID``. Every stream gets an empty SYN_REPLY at
once (the client waits for it). Once both streams of a request are there, the runtime opens a
connection to the port in the pod's network and bytes are copied both ways: the client's FIN
on the data stream half-closes the pod connection; the pod closing its side ends the data
stream with a FIN. A failure is written as text on the error stream, which is then closed;
kubectl prints it. The error stream is always closed when the forward ends, since kubectl
waits for it.

Concurrency: one reader (the WebSocket) feeds frames in order; each request is one task;
writes go through one lock so compressed header blocks leave in the order they were made.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from aiohttp import WSMsgType, web

from pyk8s.machinery import spdy
from pyk8s.runtime import Runtime

log = logging.getLogger("pyk8s.kubelet.portforward")

PROTOCOL = "portforward.k8s.io"
WEBSOCKET_PROTOCOL = "SPDY/3.1+portforward.k8s.io"
PAIR_TIMEOUT = 30.0
"""How long the first stream of a request waits for its partner (upstream: 30 s)."""
CHUNK = 32 * 1024

Send = Callable[[bytes], Awaitable[None]]
Dial = Callable[[int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


class Stream:
    """One SPDY stream, seen from the side that accepted it."""

    def __init__(self, conn: SpdyConnection, frame: spdy.Frame) -> None:
        self.conn = conn
        self.id = frame.stream_id
        self.headers = frame.headers
        self.reader = asyncio.StreamReader()
        self.reset = False
        self.closed = False  # our FIN sent
        if frame.fin:
            self.reader.feed_eof()

    def header(self, name: str) -> str:
        values = self.headers.get(name.lower())
        return values[0] if values else ""

    async def write(self, data: bytes) -> None:
        if self.closed or self.reset:
            return
        for start in range(0, len(data), CHUNK):
            await self.conn.send(spdy.Framer.data(self.id, data[start:start + CHUNK]))

    async def close(self) -> None:
        """Half-close: no more data from us (a FIN)."""
        if self.closed or self.reset:
            return
        self.closed = True
        await self.conn.send(spdy.Framer.data(self.id, fin=True))

    def _remote_reset(self) -> None:
        self.reset = True
        if not self.reader.at_eof():
            self.reader.feed_eof()


class SpdyConnection:
    """The server side of one SPDY/3.1 connection: accepts the client's streams, answers
    PINGs, ignores SETTINGS and WINDOW_UPDATE. ``on_stream`` is called for each new stream
    after its SYN_REPLY went out."""

    def __init__(self, send: Send, on_stream: Callable[[Stream], None]) -> None:
        self._send = send
        self._on_stream = on_stream
        self._parser = spdy.FrameParser()
        self._framer = spdy.Framer()
        self._lock = asyncio.Lock()
        self.streams: dict[int, Stream] = {}
        self.last_stream_id = 0
        self.gone = False

    async def send(self, frame_bytes: bytes) -> None:
        if self.gone:
            return
        async with self._lock:
            await self._send(frame_bytes)

    async def _send_made(self, make: Callable[[spdy.Framer], bytes]) -> None:
        """For frames with header blocks: compress and send under one lock, in order."""
        if self.gone:
            return
        async with self._lock:
            await self._send(make(self._framer))

    async def feed(self, data: bytes) -> None:
        """Bytes from the client. Raises :class:`spdy.ProtocolError` on garbage."""
        for frame in self._parser.feed(data):
            await self._handle(frame)

    async def _handle(self, frame: spdy.Frame) -> None:
        if frame.kind == spdy.DATA:
            stream = self.streams.get(frame.stream_id)
            if stream is None:
                await self._send_made(lambda f: f.rst_stream(frame.stream_id, spdy.INVALID_STREAM))
                return
            if frame.data and not stream.reader.at_eof():
                stream.reader.feed_data(frame.data)
            if frame.fin and not stream.reader.at_eof():
                stream.reader.feed_eof()
        elif frame.kind == spdy.SYN_STREAM:
            if frame.stream_id in self.streams or frame.stream_id % 2 == 0:
                await self._send_made(lambda f: f.rst_stream(frame.stream_id, spdy.PROTOCOL_ERROR))
                return
            stream = Stream(self, frame)
            self.streams[stream.id] = stream
            self.last_stream_id = max(self.last_stream_id, stream.id)
            await self._send_made(lambda f: f.syn_reply(stream.id))
            self._on_stream(stream)
        elif frame.kind == spdy.RST_STREAM:
            stream = self.streams.pop(frame.stream_id, None)
            if stream is not None:
                stream._remote_reset()
        elif frame.kind == spdy.PING:
            await self._send_made(lambda f: f.ping(frame.value))
        elif frame.kind == spdy.GOAWAY:
            self.shutdown()

    def forget(self, stream: Stream) -> None:
        self.streams.pop(stream.id, None)

    def shutdown(self) -> None:
        """The transport is gone: every stream ends."""
        self.gone = True
        for stream in list(self.streams.values()):
            stream._remote_reset()
        self.streams.clear()

    async def goaway(self) -> None:
        await self._send_made(lambda f: f.goaway(self.last_stream_id))


class PortForwardSession:
    """The ``portforward.k8s.io`` protocol over one :class:`SpdyConnection`. ``dial(port)``
    opens a connection to the port in the pod's network (the runtime's business) and raises
    ``OSError`` or a runtime error with a readable message when it cannot."""

    def __init__(self, send: Send, dial: Dial, pod: str) -> None:
        self.conn = SpdyConnection(send, self._on_stream)
        self._dial = dial
        self._pod = pod
        self._pending: dict[str, tuple[Stream | None, Stream | None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def feed(self, data: bytes) -> None:
        await self.conn.feed(data)

    def _on_stream(self, stream: Stream) -> None:
        request_id = stream.header("requestID") or str(stream.id)
        kind = stream.header("streamType")
        error, data = self._pending.get(request_id, (None, None))
        if kind == "error":
            error = stream
        elif kind == "data":
            data = stream
        else:
            self._spawn(self._refuse(stream, f'invalid stream type "{kind}"'))
            return
        if error is not None and data is not None:
            self._pending.pop(request_id, None)
            self._spawn(self._forward(error, data))
        else:
            self._pending[request_id] = (error, data)
            self._spawn(self._expire(request_id))

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refuse(self, stream: Stream, message: str) -> None:
        await stream.write(message.encode())
        await stream.close()

    async def _expire(self, request_id: str) -> None:
        await asyncio.sleep(PAIR_TIMEOUT)
        error, data = self._pending.pop(request_id, (None, None))
        if error is not None:
            await self._refuse(error, f"timed out waiting for the data stream of request {request_id}")
        if data is not None:
            await data.close()

    async def _forward(self, error: Stream, data: Stream) -> None:
        raw_port = data.header("port")
        try:
            port = int(raw_port)
            if not 0 < port < 65536:
                raise ValueError
        except ValueError:
            await self._refuse(error, f'invalid port "{raw_port}"')
            await data.close()
            return
        try:
            reader, writer = await self._dial(port)
        except Exception as exc:  # the runtime's words, for the user
            message = getattr(exc, "message", None) or getattr(exc, "strerror", None) or str(exc)
            await self._refuse(error, f"error forwarding port {port} to pod {self._pod}: {message}")
            await data.close()
            self.conn.forget(error)
            self.conn.forget(data)
            return

        async def upstream() -> None:  # client → pod
            while chunk := await data.reader.read(CHUNK):
                writer.write(chunk)
                await writer.drain()
            if not data.reset and writer.can_write_eof():
                writer.write_eof()

        async def downstream() -> None:  # pod → client
            while chunk := await reader.read(CHUNK):
                await data.write(chunk)

        up = asyncio.ensure_future(upstream())
        down = asyncio.ensure_future(downstream())
        try:
            while not down.done():
                await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
                if up.done() and (data.reset or up.exception() is not None):
                    break  # the client gave up on this connection
        except asyncio.CancelledError:
            raise
        finally:
            for task in (up, down):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, OSError, ConnectionError):
                    await task
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()
            with contextlib.suppress(OSError, ConnectionError):
                await data.close()
                await error.close()
            self.conn.forget(error)
            self.conn.forget(data)

    async def close(self) -> None:
        """The transport is gone: stop every forward."""
        self.conn.shutdown()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def serve_port_forward(request: web.Request, runtime: Runtime, sandbox_id: str,
                             pod: str) -> web.StreamResponse:
    """The WebSocket end of a forward: binary messages are the SPDY byte stream both ways."""
    ws = web.WebSocketResponse(protocols=(WEBSOCKET_PROTOCOL,), autoping=True, max_msg_size=0)
    if not ws.can_prepare(request).ok:
        raise web.HTTPBadRequest(
            text=f"port-forward needs a WebSocket upgrade with the {WEBSOCKET_PROTOCOL} "
                 "subprotocol")
    await ws.prepare(request)

    async def dial(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await runtime.port_forward(sandbox_id, port)

    session = PortForwardSession(ws.send_bytes, dial, pod)
    log.debug("port-forward opened pod=%s", pod)
    try:
        async for msg in ws:
            if msg.type != WSMsgType.BINARY:
                break
            await session.feed(msg.data)
    except spdy.ProtocolError as exc:
        log.info("port-forward closed on a protocol error pod=%s error=%s", pod, str(exc)[:200])
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        await session.close()
        with contextlib.suppress(Exception):
            await ws.close()
        log.debug("port-forward closed pod=%s", pod)
    return ws
