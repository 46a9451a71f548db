"""``exec`` over WebSocket, as the kubelet serves it to the API server (which proxies
``pods/exec`` here unchanged): ``GET /exec/{namespace}/{pod}/{container}?command=..`` with
``input``/``output``/``error``/``tty`` set to ``1`` (upstream's parameter names), upgraded to
the ``v5.channel.k8s.io`` (or ``v4``) subprotocol.

Framing: every binary message starts with a channel byte -- 0 stdin, 1 stdout, 2 stderr,
3 the final ``Status`` (JSON; ``NonZeroExitCode`` with the code as a cause, as kubectl
expects), 4 terminal resize (``{"Width":..,"Height":..}``), and in v5 a 255 message whose
second byte names a channel the client has closed (stdin's end). SPDY, the older transport,
is not served. ``attach`` uses the same framing (:func:`serve_attach`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from pyk8s.runtime import ExecProcess, Runtime, RuntimeOperationError
from pyk8s.runtime.logs import parse_record

log = logging.getLogger("pyk8s.kubelet.streaming")

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255


def _flag(request: web.Request, *names: str) -> bool:
    return any(request.query.get(n, "").lower() in ("1", "true") for n in names)


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


async def _pump(stream: asyncio.StreamReader, channel: int, ws: web.WebSocketResponse) -> None:
    while chunk := await stream.read(32 * 1024):
        await ws.send_bytes(bytes([channel]) + chunk)


async def _feed(ws: web.WebSocketResponse, proc: ExecProcess, stdin: bool) -> None:
    async for msg in ws:
        if msg.type != WSMsgType.BINARY or not msg.data:
            continue
        channel, payload = msg.data[0], msg.data[1:]
        if channel == STDIN and stdin:
            await proc.write_stdin(payload)
        elif channel == RESIZE:
            with contextlib.suppress(ValueError, TypeError, KeyError):
                size = json.loads(payload)
                proc.resize(int(size["Width"]), int(size["Height"]))
        elif channel == CLOSE and payload[:1] == bytes([STDIN]):
            proc.close_stdin()
    proc.close_stdin()  # the client went away


async def serve_exec(request: web.Request, runtime: Runtime, container_id: str) -> web.StreamResponse:
    command = request.query.getall("command", [])
    if not command:
        raise web.HTTPBadRequest(text="you must specify at least 1 command")
    stdin = _flag(request, "input", "stdin")
    stdout = _flag(request, "output", "stdout")
    stderr = _flag(request, "error", "stderr")
    tty = _flag(request, "tty")
    ws = web.WebSocketResponse(protocols=PROTOCOLS, autoping=True)
    if not ws.can_prepare(request).ok:
        raise web.HTTPBadRequest(text="exec needs a WebSocket upgrade (v5.channel.k8s.io); "
                                      "SPDY is not supported")
    await ws.prepare(request)
    try:
        proc = await runtime.exec(container_id, command, stdin=stdin, tty=tty)
    except RuntimeOperationError as exc:
        await ws.send_bytes(bytes([ERROR]) + json.dumps(failure_status(exc.message)).encode())
        await ws.close()
        return ws
    feeder = asyncio.create_task(_feed(ws, proc, stdin))
    pumps = [asyncio.create_task(_pump(proc.stdout, STDOUT, ws))] if stdout or tty else []
    if stderr and not tty:
        pumps.append(asyncio.create_task(_pump(proc.stderr, STDERR, ws)))
    try:
        if pumps:
            await asyncio.gather(*pumps)
        code = await proc.wait()
        await ws.send_bytes(bytes([ERROR]) + json.dumps(exit_status(code, command)).encode())
    except (ConnectionResetError, asyncio.CancelledError):
        proc.kill()
        raise
    finally:
        feeder.cancel()
        with contextlib.suppress(Exception):
            await ws.close()
    return ws


async def serve_attach(request: web.Request, log_path: Path,
                       running: Callable[[], Awaitable[bool]], poll: float = 0.1
                       ) -> web.StreamResponse:
    """``attach`` for a runtime whose containers write only to their log file (the process
    runtime's shims do): new output is streamed as it is logged, stdout records on channel
    1 and stderr on 2, until the container stops; then a ``Success`` status, as upstream
    ends an attach. The container has no stdin to attach to: stdin frames are dropped."""
    stdout = _flag(request, "output", "stdout")
    stderr = _flag(request, "error", "stderr")
    ws = web.WebSocketResponse(protocols=PROTOCOLS, autoping=True)
    if not ws.can_prepare(request).ok:
        raise web.HTTPBadRequest(text="attach needs a WebSocket upgrade (v5.channel.k8s.io)")
    await ws.prepare(request)
    try:
        offset = log_path.stat().st_size
    except OSError:
        offset = 0

    async def drain() -> None:  # the client's frames: stdin and resizes have nowhere to go
        async for _ in ws:
            pass

    reader = asyncio.create_task(drain())
    try:
        while not reader.done():
            alive = await running()
            try:
                with log_path.open("rb") as f:
                    if f.seek(0, 2) < offset:
                        offset = 0  # rotated or truncated
                    f.seek(offset)
                    chunk = f.read()
            except OSError:
                chunk = b""
            end = chunk.rfind(b"\n") + 1
            offset += end
            for line in chunk[:end].split(b"\n"):
                record = parse_record(line) if line else None
                if record is None:
                    continue
                channel = STDERR if record.stream == "stderr" else STDOUT
                if (channel == STDOUT and stdout) or (channel == STDERR and stderr):
                    await ws.send_bytes(bytes([channel]) + record.content
                                        + (b"" if record.partial else b"\n"))
            if not alive and not end:
                await ws.send_bytes(bytes([ERROR]) + json.dumps(exit_status(0, [])).encode())
                break
            await asyncio.sleep(poll)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        reader.cancel()
        with contextlib.suppress(Exception):
            await ws.close()
    return ws
