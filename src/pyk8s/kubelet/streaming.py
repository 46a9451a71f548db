"""``exec`` over WebSocket, as the kubelet serves it to the API server (which proxies
``pods/exec`` here unchanged): ``GET /exec/{namespace}/{pod}/{container}?command=..`` with
``input``/``output``/``error``/``tty`` set to ``1`` (upstream's parameter names), upgraded to
the ``v5.channel.k8s.io`` (or ``v4``) subprotocol.

Framing: every binary message starts with a channel byte -- 0 stdin, 1 stdout, 2 stderr,
3 the final ``Status`` (JSON; ``NonZeroExitCode`` with the code as a cause, as kubectl
expects), 4 terminal resize (``{"Width":..,"Height":..}``), and in v5 a 255 message whose
second byte names a channel the client has closed (stdin's end). SPDY, the older transport,
is not served.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from aiohttp import WSMsgType, web

from pyk8s.runtime import ExecProcess, Runtime, RuntimeOperationError

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
