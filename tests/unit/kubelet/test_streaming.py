"""The node server's exec and attach endpoints over both of kubectl's transports, driven as
kubectl drives them: SPDY/3.1 after an HTTP upgrade (streams named by ``streamType``, the
v4 status on the error stream) and WebSocket v5 (channel bytes). The runtime is a fake whose
"process" echoes its stdin; the server is a real aiohttp server on loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from pyk8s.kubelet.streaming import serve_attach, serve_exec
from pyk8s.machinery import spdy
from pyk8s.runtime import RuntimeOperationError


class EchoProcess:
    """Echoes stdin to stdout (upper-cased to stderr); exits with ``code`` once stdin ends."""

    def __init__(self, code: int = 0) -> None:
        self.stdout = asyncio.StreamReader()
        self.stderr = asyncio.StreamReader()
        self.code = code
        self.sizes: list[tuple[int, int]] = []
        self.killed = False
        self._done = asyncio.Event()

    async def write_stdin(self, data: bytes) -> None:
        self.stdout.feed_data(data)
        self.stderr.feed_data(data.upper())

    def close_stdin(self) -> None:
        if not self._done.is_set():
            self.stdout.feed_eof()
            self.stderr.feed_eof()
            self._done.set()

    def resize(self, width: int, height: int) -> None:
        self.sizes.append((width, height))

    async def wait(self) -> int:
        await self._done.wait()
        return self.code

    def kill(self) -> None:
        self.killed = True
        self.close_stdin()


class FakeRuntime:
    def __init__(self, code: int = 0) -> None:
        self.code = code
        self.processes: list[EchoProcess] = []
        self.calls: list[tuple[str, Any]] = []

    async def exec(self, container_id: str, command: list[str], *, stdin: bool = False,
                   tty: bool = False) -> EchoProcess:
        if command == ["missing"]:
            raise RuntimeOperationError("ExecError", 'exec "missing": not found')
        self.calls.append(("exec", (command, stdin, tty)))
        self.processes.append(EchoProcess(self.code))
        return self.processes[-1]

    async def attach(self, container_id: str, *, stdin: bool, tty: bool) -> EchoProcess:
        self.calls.append(("attach", (stdin, tty)))
        self.processes.append(EchoProcess())
        return self.processes[-1]


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def node_server(runtime: FakeRuntime, tty: bool = False) -> AsyncIterator[TestServer]:
    async def exec_handler(request: web.Request) -> web.StreamResponse:
        return await serve_exec(request, runtime, "cid")  # type: ignore[arg-type]

    async def attach_handler(request: web.Request) -> web.StreamResponse:
        return await serve_attach(request, runtime, "cid", tty=tty)  # type: ignore[arg-type]

    app = web.Application()
    app.router.add_route("*", "/exec/ns/pod/c", exec_handler)
    app.router.add_route("*", "/attach/ns/pod/c", attach_handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


class SpdyClient:
    """kubectl's SPDY side: the upgrade, then streams it opens and frames it reads."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.framer, self.parser = spdy.Framer(), spdy.FrameParser()
        self.data: dict[int, bytes] = {}
        self.fin: set[int] = set()
        self.replies: set[int] = set()
        self.next_id = 1

    @classmethod
    async def connect(cls, server: TestServer, path: str,
                      versions: tuple[str, ...] = ("v5.channel.k8s.io", "v4.channel.k8s.io",
                                                   "v3.channel.k8s.io")
                      ) -> tuple[SpdyClient | None, int, dict[str, str], bytes]:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        head = [f"POST {path} HTTP/1.1", f"Host: {server.host}", "Connection: Upgrade",
                "Upgrade: SPDY/3.1", "Content-Length: 0",
                *(f"X-Stream-Protocol-Version: {v}" for v in versions)]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in
                   (line.partition(":") for line in lines[1:] if line)}
        if status != 101:
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            writer.close()
            return None, status, headers, body
        return cls(reader, writer), status, headers, b""

    def open(self, stream_type: str) -> int:
        sid, self.next_id = self.next_id, self.next_id + 2
        self.writer.write(self.framer.syn_stream(sid, {"streamType": stream_type}))
        return sid

    def send(self, sid: int, data: bytes = b"", fin: bool = False) -> None:
        self.writer.write(spdy.Framer.data(sid, data, fin=fin))

    async def until(self, done: Callable[[], bool], timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while not done():
                chunk = await self.reader.read(65536)
                if not chunk:
                    return
                for frame in self.parser.feed(chunk):
                    if frame.kind == spdy.SYN_REPLY:
                        self.replies.add(frame.stream_id)
                    elif frame.kind == spdy.DATA:
                        self.data[frame.stream_id] = self.data.get(frame.stream_id, b"") \
                            + frame.data
                        if frame.fin:
                            self.fin.add(frame.stream_id)

    async def closed(self) -> bool:
        async with asyncio.timeout(10):
            return await self.reader.read() == b""


class TestSpdy:
    def test_exec_with_stdin_output_and_the_exit_code_on_the_error_stream(self) -> None:
        async def go() -> None:
            runtime = FakeRuntime(code=3)
            async with node_server(runtime) as server:
                client, status, headers, _ = await SpdyClient.connect(
                    server, "/exec/ns/pod/c?command=sh&input=1&output=1&error=1")
                assert status == 101 and client is not None
                assert headers["x-stream-protocol-version"] == "v4.channel.k8s.io"
                assert headers["upgrade"] == "SPDY/3.1"
                error, stdin = client.open("error"), client.open("stdin")
                stdout, stderr = client.open("stdout"), client.open("stderr")
                await client.until(lambda: client.replies == {error, stdin, stdout, stderr})
                client.send(stdin, b"hello ")
                client.send(stdin, b"there", fin=True)  # kubectl's stdin hits EOF
                await client.until(lambda: error in client.fin)
                assert client.data[stdout] == b"hello there"
                assert client.data[stderr] == b"HELLO THERE"
                assert {stdout, stderr} <= client.fin
                result = json.loads(client.data[error])
                assert result["reason"] == "NonZeroExitCode"
                assert result["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
                assert await client.closed()
            assert runtime.calls == [("exec", (["sh"], True, False))]
        asyncio.run(go())

    def test_success_is_a_success_status_and_resizes_reach_a_terminal(self) -> None:
        async def go() -> None:
            runtime = FakeRuntime()
            async with node_server(runtime) as server:
                client, _, _, _ = await SpdyClient.connect(
                    server, "/exec/ns/pod/c?command=sh&input=1&output=1&tty=1")
                assert client is not None
                error, stdin = client.open("error"), client.open("stdin")
                stdout, resize = client.open("stdout"), client.open("resize")
                await client.until(lambda: len(client.replies) == 4)
                client.send(resize, b'{"Width":80,"Height":24}\n{"Width":100,')
                client.send(resize, b'"Height":30}\n')
                await asyncio.sleep(0.1)
                client.send(stdin, b"x", fin=True)
                await client.until(lambda: error in client.fin)
                assert json.loads(client.data[error])["status"] == "Success"
                assert client.data[stdout] == b"x"
            assert runtime.processes[0].sizes == [(80, 24), (100, 30)]
        asyncio.run(go())

    def test_attach_ends_with_success_and_detaches_when_the_client_goes(self) -> None:
        async def go() -> None:
            runtime = FakeRuntime()
            async with node_server(runtime) as server:
                client, _, _, _ = await SpdyClient.connect(
                    server, "/attach/ns/pod/c?input=1&output=1")
                assert client is not None
                client.open("error"), client.open("stdin"), client.open("stdout")
                await client.until(lambda: len(client.replies) == 3)
                client.writer.close()  # kubectl killed
                async with asyncio.timeout(10):
                    while not (runtime.processes and runtime.processes[0].killed):
                        await asyncio.sleep(0.02)
            assert runtime.calls == [("attach", (True, False))]
        asyncio.run(go())

    def test_a_failure_to_start_is_an_internal_error_status(self) -> None:
        async def go() -> None:
            async with node_server(FakeRuntime()) as server:
                client, _, _, _ = await SpdyClient.connect(
                    server, "/exec/ns/pod/c?command=missing&output=1")
                assert client is not None
                error = client.open("error")
                client.open("stdout")
                await client.until(lambda: error in client.fin)
                result = json.loads(client.data[error])
                assert (result["reason"], result["code"]) == ("InternalError", 500)
                assert "missing" in result["message"]
        asyncio.run(go())

    def test_protocols_it_cannot_speak_are_refused_before_the_upgrade(self) -> None:
        async def go() -> None:
            async with node_server(FakeRuntime()) as server:
                client, status, headers, body = await SpdyClient.connect(
                    server, "/exec/ns/pod/c?command=sh&output=1",
                    versions=("v3.channel.k8s.io", "channel.k8s.io"))
                assert client is None and status == 403
                assert b"unable to upgrade: unable to negotiate protocol" in body
                assert headers["x-accepted-stream-protocol-versions"] == "v4.channel.k8s.io"
                _, status, _, body = await SpdyClient.connect(
                    server, "/exec/ns/pod/c?command=sh")
                assert status == 400
                assert body == b"you must specify at least 1 of stdin, stdout, stderr"
        asyncio.run(go())


class TestWebSocket:
    def test_attach_uses_the_containers_tty_and_detaches_on_close(self) -> None:
        async def go() -> None:
            runtime = FakeRuntime()
            async with node_server(runtime, tty=True) as server, \
                    aiohttp.ClientSession() as session:
                url = f"http://{server.host}:{server.port}/attach/ns/pod/c?input=1&output=1"
                async with session.ws_connect(url, protocols=("v5.channel.k8s.io",)) as ws:
                    await ws.send_bytes(b"\x04" + b'{"Width":90,"Height":20}')
                    await ws.send_bytes(b"\x00typed")
                    message = await ws.receive_bytes(timeout=10)
                    assert message == b"\x01typed"
                async with asyncio.timeout(10):
                    while not runtime.processes[0].killed:
                        await asyncio.sleep(0.02)
            assert runtime.calls == [("attach", (True, True))]
            assert runtime.processes[0].sizes == [(90, 20)]
        asyncio.run(go())

    def test_exec_closes_stdin_on_the_v5_close_signal(self) -> None:
        async def go() -> None:
            runtime = FakeRuntime(code=0)
            async with node_server(runtime) as server, aiohttp.ClientSession() as session:
                url = (f"http://{server.host}:{server.port}/exec/ns/pod/c"
                       "?command=cat&input=1&output=1")
                async with session.ws_connect(url, protocols=("v5.channel.k8s.io",)) as ws:
                    await ws.send_bytes(b"\x00abc")
                    await ws.send_bytes(b"\xff\x00")
                    got = [await ws.receive_bytes(timeout=10) for _ in range(2)]
            assert got[0] == b"\x01abc"
            assert json.loads(got[1][1:])["status"] == "Success"
        asyncio.run(go())
