"""``exec`` and ``attach`` as the kubelet serves them to the API server, which proxies
``pods/exec`` and ``pods/attach`` here: ``/exec/{namespace}/{pod}/{container}?command=..``
and ``/attach/{namespace}/{pod}/{container}``, with ``input``/``output``/``error``/``tty``
set to ``1`` (upstream's parameter names), over either transport kubectl speaks:

- **WebSocket**, subprotocol ``v5.channel.k8s.io`` (or ``v4``): every binary message starts
  with a channel byte -- 0 stdin, 1 stdout, 2 stderr, 3 the final ``Status`` (JSON;
  ``NonZeroExitCode`` with the code as a cause, as kubectl expects), 4 terminal resize
  (``{"Width":..,"Height":..}``), and in v5 a 255 message whose second byte names a channel
  the client has closed (stdin's end).
- **SPDY/3.1** over an HTTP upgrade (kubectl's fallback, or with
  ``KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false``), protocol ``v4.channel.k8s.io``
  (upstream: ``pkg/kubelet/cri/streaming/remotecommand``): the client opens one stream per
  channel, named by its ``streamType`` header (``error``, ``stdin``, ``stdout``, ``stderr``,
  ``resize``) and the session starts once all it asked for are there; its FIN on ``stdin``
  closes stdin; resize events are JSON objects back to back. At the end the status goes on
  the ``error`` stream, every stream gets its FIN and the connection is closed.

Both transports are adapted to one small interface (:class:`Channels`), so the session
logic (:func:`_run`) is written once. An attach ends when the container exits (status
``Success``, as upstream's) and detaches when the client goes away; an exec ends with its
command.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import WSMsgType, web

from pyk8s.kubelet.portforward import SpdyConnection, Stream
from pyk8s.machinery import spdy
from pyk8s.runtime import ExecProcess, Runtime, RuntimeOperationError

log = logging.getLogger("pyk8s.kubelet.streaming")

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
SPDY_PROTOCOLS = ("v4.channel.k8s.io",)
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
STREAM_TYPES = {"stdin": STDIN, "stdout": STDOUT, "stderr": STDERR, "error": ERROR,
                "resize": RESIZE}
STREAM_NAMES = {channel: name for name, channel in STREAM_TYPES.items()}
STREAM_CREATION_TIMEOUT = 30.0
"""How long the SPDY client has to open its streams (upstream's default: 30 s)."""
CHUNK = 32 * 1024


def _flag(request: web.Request, *names: str) -> bool:
    return any(request.query.get(n, "").lower() in ("1", "true") for n in names)


@dataclass(frozen=True)
class Options:
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool

    @classmethod
    def of(cls, request: web.Request, tty: bool | None = None) -> Options:
        opts = cls(_flag(request, "input", "stdin"), _flag(request, "output", "stdout"),
                   _flag(request, "error", "stderr"),
                   _flag(request, "tty") if tty is None else tty)
        if not (opts.stdin or opts.stdout or opts.stderr):
            raise web.HTTPBadRequest(text="you must specify at least 1 of stdin, stdout, stderr")
        return opts


def exit_status(code: int, command: list[str]) -> dict[str, Any]:
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command "
                       f"{command}, exit code {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def failure_status(message: str) -> dict[str, Any]:
    return {"metadata": {}, "status": "Failure", "message": message,
            "reason": "InternalError", "code": 500}


class Channels(Protocol):
    """One client connection, whichever the transport. ``events`` yields ``(STDIN, data)``,
    ``(CLOSE, b"")`` when the client closed stdin and ``(RESIZE, json)``, and ends when the
    client is gone."""

    @property
    def response(self) -> web.StreamResponse:
        """What the handler returns (already prepared)."""
        ...

    @property
    def ready(self) -> bool:
        """False when the client did not set the connection up (its SPDY streams)."""
        ...

    async def send(self, channel: int, data: bytes) -> None: ...

    def events(self) -> AsyncIterator[tuple[int, bytes]]: ...

    async def finish(self, status: dict[str, Any]) -> None: ...


# ---- WebSocket ----------------------------------------------------------------------------

class _WebSocketChannels:
    ready = True

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.response = self.ws = ws

    async def send(self, channel: int, data: bytes) -> None:
        await self.ws.send_bytes(bytes([channel]) + data)

    async def events(self) -> AsyncIterator[tuple[int, bytes]]:
        async for msg in self.ws:
            if msg.type != WSMsgType.BINARY or not msg.data:
                continue
            channel, payload = msg.data[0], msg.data[1:]
            if channel == CLOSE:
                if payload[:1] == bytes([STDIN]):
                    yield CLOSE, b""
            else:
                yield channel, payload

    async def finish(self, status: dict[str, Any]) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.send_bytes(bytes([ERROR]) + json.dumps(status).encode())
        with contextlib.suppress(Exception):
            await self.ws.close()


# ---- SPDY ---------------------------------------------------------------------------------

class _SpdyChannels:
    """The server end of a SPDY/3.1 exec or attach connection (see the module docstring)."""

    def __init__(self, request: web.Request, response: web.StreamResponse, raw: spdy.RawBytes,
                 expected: set[str]) -> None:
        assert request.transport is not None
        self.response = response
        self._transport = request.transport
        self._raw = raw
        self._expected = expected
        self._arrived = asyncio.Event()
        self._events: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self.streams: dict[str, Stream] = {}
        self.conn = SpdyConnection(self._write, self._on_stream)
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def accept(cls, request: web.Request, opts: Options) -> _SpdyChannels:
        offered = [v.strip() for h in request.headers.getall("X-Stream-Protocol-Version", [])
                   for v in h.split(",") if v.strip()]
        if not offered:
            raise web.HTTPBadRequest(
                text="unable to upgrade: X-Stream-Protocol-Version is required")
        chosen = next((v for v in offered if v in SPDY_PROTOCOLS), None)
        if chosen is None:
            raise web.HTTPForbidden(
                text=f"unable to upgrade: unable to negotiate protocol: client supports "
                     f"[{' '.join(offered)}], server accepts [{' '.join(SPDY_PROTOCOLS)}]",
                headers={"X-Accepted-Stream-Protocol-Versions": ", ".join(SPDY_PROTOCOLS)})
        if request.transport is None:
            raise web.HTTPBadRequest(text="the connection is gone")
        raw = spdy.RawBytes()
        request.protocol.set_parser(raw)  # type: ignore[arg-type]
        response = web.StreamResponse(status=101, headers={
            "Connection": "Upgrade", "Upgrade": "SPDY/3.1",
            "X-Stream-Protocol-Version": chosen})
        await response.prepare(request)
        expected = {"error"}
        expected |= {"stdin"} if opts.stdin else set()
        expected |= {"stdout"} if opts.stdout else set()
        expected |= {"stderr"} if opts.stderr and not opts.tty else set()
        expected |= {"resize"} if opts.tty else set()
        channels = cls(request, response, raw, expected)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(channels._arrived.wait(), STREAM_CREATION_TIMEOUT)
        return channels

    @property
    def ready(self) -> bool:
        return self._arrived.is_set()

    async def _write(self, data: bytes) -> None:
        if self._transport.is_closing():
            raise ConnectionResetError("the client went away")
        self._transport.write(data)
        while self._transport.get_write_buffer_size() > 1 << 20 \
                and not self._transport.is_closing():
            await asyncio.sleep(0.005)  # a slow client: stop producing

    async def _read(self) -> None:
        try:
            while (chunk := await self._raw.queue.get()) is not None:
                await self.conn.feed(chunk)
        except (spdy.ProtocolError, ConnectionError) as exc:
            log.info("streaming connection closed on an error error=%s", str(exc)[:200])
        finally:
            self.conn.shutdown()
            self._events.put_nowait(None)

    def _on_stream(self, stream: Stream) -> None:
        kind = stream.header("streamType")
        if kind not in STREAM_TYPES or kind in self.streams:
            return
        self.streams[kind] = stream
        if kind == "stdin":
            self._spawn(self._stdin(stream))
        elif kind == "resize":
            self._spawn(self._resizes(stream))
        if self._expected <= set(self.streams):
            self._arrived.set()

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _stdin(self, stream: Stream) -> None:
        while chunk := await stream.reader.read(CHUNK):
            self._events.put_nowait((STDIN, chunk))
        self._events.put_nowait((CLOSE, b""))

    async def _resizes(self, stream: Stream) -> None:
        decoder, text = json.JSONDecoder(), ""
        while chunk := await stream.reader.read(4096):
            text += chunk.decode(errors="replace")
            while text := text.lstrip():
                try:
                    size, end = decoder.raw_decode(text)
                except ValueError:
                    break
                text = text[end:]
                self._events.put_nowait((RESIZE, json.dumps(size).encode()))

    async def send(self, channel: int, data: bytes) -> None:
        stream = self.streams.get(STREAM_NAMES[channel])
        if stream is not None:
            if self.conn.gone:
                raise ConnectionResetError("the client went away")
            await stream.write(data)

    async def events(self) -> AsyncIterator[tuple[int, bytes]]:
        while (event := await self._events.get()) is not None:
            yield event

    async def finish(self, status: dict[str, Any] | None) -> None:
        with contextlib.suppress(ConnectionError):
            for name in ("stdout", "stderr"):
                if name in self.streams:
                    await self.streams[name].close()
            error = self.streams.get("error")
            if error is not None and status is not None:
                await error.write(json.dumps(status).encode())
            if error is not None:
                await error.close()
        self.response.force_close()
        self._transport.close()  # after what is buffered has gone out
        for task in [self._reader, *self._tasks]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _open(request: web.Request, opts: Options, verb: str) -> Channels:
    """Accept the client's upgrade (refusals are HTTP errors, before it)."""
    if request.headers.get("Upgrade", "").lower() == "spdy/3.1":
        channels = await _SpdyChannels.accept(request, opts)
        if not channels.ready:
            log.info("%s closed: the client did not open its streams in time", verb)
            await channels.finish(None)
        return channels
    ws = web.WebSocketResponse(protocols=PROTOCOLS, autoping=True, max_msg_size=0)
    if not ws.can_prepare(request).ok:
        raise web.HTTPBadRequest(text=f"{verb} needs an upgrade: WebSocket "
                                      f"({PROTOCOLS[0]}) or SPDY/3.1 ({SPDY_PROTOCOLS[0]})")
    await ws.prepare(request)
    return _WebSocketChannels(ws)


# ---- the session --------------------------------------------------------------------------

async def _pump(stream: asyncio.StreamReader, channel: int, channels: Channels) -> None:
    while chunk := await stream.read(CHUNK):
        await channels.send(channel, chunk)


async def _feed(channels: Channels, proc: ExecProcess, stdin: bool, attach: bool) -> None:
    async for channel, payload in channels.events():
        if channel == STDIN and stdin:
            await proc.write_stdin(payload)
        elif channel == RESIZE:
            with contextlib.suppress(ValueError, TypeError, KeyError):
                size = json.loads(payload)
                proc.resize(int(size["Width"]), int(size["Height"]))
        elif channel == CLOSE:
            proc.close_stdin()
    # The client went away: an exec's stdin ends; an attach detaches.
    if attach:
        proc.kill()
    else:
        proc.close_stdin()


async def _run(channels: Channels, proc: ExecProcess, opts: Options, *, attach: bool,
               command: list[str]) -> None:
    feeder = asyncio.ensure_future(_feed(channels, proc, opts.stdin, attach))
    pumps = [asyncio.ensure_future(_pump(proc.stdout, STDOUT, channels))] \
        if opts.stdout or opts.tty else []
    if opts.stderr and not opts.tty:
        pumps.append(asyncio.ensure_future(_pump(proc.stderr, STDERR, channels)))
    try:
        if pumps:
            await asyncio.gather(*pumps)
        code = await proc.wait()
        await _cancel(feeder)
        await channels.finish(exit_status(0 if attach else code, command))
    except (ConnectionError, RuntimeError):  # the client went away while we wrote
        proc.kill()
        await _cancel(feeder)
        await channels.finish(failure_status("the client went away"))
    except asyncio.CancelledError:
        proc.kill()
        raise
    finally:
        for task in [feeder, *pumps]:
            await _cancel(task)


async def _cancel(task: asyncio.Future[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


async def serve_exec(request: web.Request, runtime: Runtime,
                     container_id: str) -> web.StreamResponse:
    command = request.query.getall("command", [])
    if not command:
        raise web.HTTPBadRequest(text="you must specify at least 1 command")
    opts = Options.of(request)
    channels = await _open(request, opts, "exec")
    if not channels.ready:
        return channels.response
    try:
        proc = await runtime.exec(container_id, command, stdin=opts.stdin, tty=opts.tty)
    except RuntimeOperationError as exc:
        await channels.finish(failure_status(exc.message))
        return channels.response
    except Exception as exc:  # a runtime bug: the client still gets an answer
        log.exception("exec failed to start container=%s", container_id)
        await channels.finish(failure_status(f"exec failed: {type(exc).__name__}"))
        return channels.response
    await _run(channels, proc, opts, attach=False, command=command)
    return channels.response


async def serve_attach(request: web.Request, runtime: Runtime, container_id: str,
                       tty: bool) -> web.StreamResponse:
    """``tty``: the container's, from the pod spec (upstream's kubelet ignores the
    request's): with a terminal there is no stderr."""
    opts = Options.of(request, tty=tty)
    channels = await _open(request, opts, "attach")
    if not channels.ready:
        return channels.response
    try:
        proc = await runtime.attach(container_id, stdin=opts.stdin, tty=opts.tty)
    except RuntimeOperationError as exc:
        await channels.finish(failure_status(exc.message))
        return channels.response
    except Exception as exc:  # a runtime bug: the client still gets an answer
        log.exception("attach failed to start container=%s", container_id)
        await channels.finish(failure_status(f"attach failed: {type(exc).__name__}"))
        return channels.response
    await _run(channels, proc, opts, attach=True, command=[])
    return channels.response
