"""ApiClient's own HTTP/1.1 transport against scripted servers on loopback: every framing the
API server may use (Content-Length, chunked, close-delimited), kept-alive connections that the
server closes while idle, timeouts, and the mapping of every failure to ApiError."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import orjson
import pytest

from pyk8s.client import ApiClient, ApiError
from pyk8s.machinery.resources import CATALOGUE

PODS = CATALOGUE.resource("v1", "pods")

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytes], Awaitable[bool]]
"""Answers one request (its head and body already read); returns False to close."""


async def read_request(reader: asyncio.StreamReader) -> bytes | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    body = await reader.readexactly(length) if length else b""
    return head + body


class Server:
    """A loopback HTTP server whose every answer is written by a test."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[bytes] = []
        self.connections = 0
        self.url = ""
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while (request := await read_request(reader)) is not None:
                self.requests.append(request)
                if not await self.handler(reader, writer, request):
                    break
                await writer.drain()
        finally:
            writer.close()


def json_answer(value: object, status: int = 200, extra: bytes = b"") -> bytes:
    body = orjson.dumps(value)
    return (b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n"
            % (status, len(body), extra) + body)


def chunked(body: bytes, size: int) -> bytes:
    out = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size])
                   for i in range(0, len(body), size))
    return out + b"0\r\nTrailer: x\r\n\r\n"


def run(coro: Awaitable[None]) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_requests_share_one_kept_alive_connection_and_send_their_bodies() -> None:
    async def handler(reader, writer, request):  # type: ignore[no-untyped-def]
        writer.write(json_answer({"kind": "Pod", "echo": request.split(b"\r\n\r\n", 1)[1].decode()}))
        return True

    async def main() -> None:
        async with Server(handler) as server:
            client = ApiClient(server.url, user_agent="tester", max_connections=1)
            for i in range(3):
                obj = await client.create(PODS, {"metadata": {"name": f"p{i}"}})
                assert orjson.loads(obj["echo"]) == {"metadata": {"name": f"p{i}"}}
            assert server.connections == 1
            first = server.requests[0].decode()
            assert first.startswith("POST /api/v1/namespaces/default/pods HTTP/1.1\r\n")
            assert "User-Agent: tester\r\n" in first
            assert "Content-Type: application/json\r\n" in first
            await client.close()

    run(main())


def test_query_parameters_are_percent_encoded() -> None:
    async def handler(reader, writer, request):  # type: ignore[no-untyped-def]
        writer.write(json_answer({"kind": "PodList", "items": [{"metadata": {"name": "a"}}],
                                  "metadata": {}}))
        return True

    async def main() -> None:
        async with Server(handler) as server:
            client = ApiClient(server.url)
            result = await client.list(PODS, "ns", label_selector="app in (a b),x=y",
                                       field_selector="spec.nodeName!=")
            assert result["items"][0]["kind"] == "Pod"  # list fills in the kind
            line = server.requests[0].split(b"\r\n", 1)[0].decode()
            assert line == ("GET /api/v1/namespaces/ns/pods?labelSelector=app%20in%20%28a%20b"
                            "%29%2Cx%3Dy&fieldSelector=spec.nodeName%21%3D HTTP/1.1")
            await client.request("GET", "/apis/x/v1/things/a b?dryRun=All", params={"n": "1 2"})
            line = server.requests[1].split(b"\r\n", 1)[0].decode()
            assert line == "GET /apis/x/v1/things/a%20b?dryRun=All&n=1%202 HTTP/1.1"
            await client.close()

    run(main())


@pytest.mark.parametrize("size", [1, 5, 1000])
def test_chunked_and_close_delimited_bodies(size: int) -> None:
    payload = orjson.dumps({"kind": "Pod", "metadata": {"name": "x" * 300}})

    async def handler(reader, writer, request):  # type: ignore[no-untyped-def]
        if b"/pods/chunked" in request:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n" + chunked(payload, size))
            return True
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"
                     b"Content-Type: application/json\r\nConnection: close\r\n\r\n" + payload)
        return False

    async def main() -> None:
        async with Server(handler) as server:
            client = ApiClient(server.url)
            for name in ("chunked", "closed", "chunked", "closed"):
                assert (await client.get(PODS, "default", name))["metadata"]["name"] == "x" * 300
            await client.close()

    run(main())


def test_a_kept_alive_connection_closed_by_the_server_is_replaced_once() -> None:
    """A request on a reused connection that the server closes without a byte of answer (it
    timed the connection out as it arrived) is sent again on a fresh connection; on a fresh
    connection the same failure is the server's answer: 503."""
    answered: set[asyncio.StreamWriter] = set()

    async def handler(reader, writer, request):  # type: ignore[no-untyped-def]
        if writer in answered or b"/pods/mute" in request:
            return False  # closes without answering
        answered.add(writer)
        writer.write(json_answer({"kind": "Pod", "n": len(server.requests)}))
        return True

    async def main() -> None:
        nonlocal server
        async with Server(handler) as server:
            client = ApiClient(server.url)
            assert (await client.get(PODS, "default", "a"))["n"] == 1
            assert (await client.patch(PODS, "default", "a", {"x": 1}))["n"] == 3
            assert server.connections == 2
            assert server.requests[1] == server.requests[2]
            with pytest.raises(ApiError) as err:
                await client.get(PODS, "default", "mute")
            assert err.value.code == 503
            await client.close()

    server: Server
    run(main())


def test_errors_are_status_errors_and_a_silent_server_times_out() -> None:
    status = {"kind": "Status", "code": 409, "reason": "AlreadyExists", "message": "exists"}

    async def handler(reader, writer, request):  # type: ignore[no-untyped-def]
        if b"/pods/status" in request:
            writer.write(json_answer(status, 409))
        elif b"/pods/text" in request:
            writer.write(b"HTTP/1.1 500 Oops\r\nContent-Length: 4\r\n\r\nboom")
        elif b"/pods/plain" in request:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok")
        elif b"/pods/garbage" in request:
            writer.write(b"SPDY/3 nonsense\r\n\r\n")
            return False
        else:
            await asyncio.sleep(5)
        return True

    async def main() -> None:
        async with Server(handler) as server:
            client = ApiClient(server.url)
            with pytest.raises(ApiError) as err:
                await client.get(PODS, "default", "status")
            assert (err.value.code, err.value.reason, err.value.message) == (409, "AlreadyExists",
                                                                             "exists")
            with pytest.raises(ApiError) as err:
                await client.get(PODS, "default", "text")
            assert (err.value.code, err.value.message) == (500, "boom")
            assert await client.request("GET", "/api/v1/namespaces/default/pods/plain") == "ok"
            with pytest.raises(ApiError) as err:
                await client.get(PODS, "default", "garbage")
            assert err.value.code == 503
            with pytest.raises(ApiError) as err:
                await client.request("GET", "/api/v1/namespaces/default/pods/slow", timeout=0.2)
            assert (err.value.code, err.value.reason) == (503, "ServiceUnavailable")
            # The pool recovers: the timed-out connection was dropped, not reused.
            assert await client.request("GET", "/api/v1/namespaces/default/pods/plain") == "ok"
            await client.close()

    run(main())


def test_nothing_listening_is_service_unavailable() -> None:
    async def main() -> None:
        async with Server(lambda *a: asyncio.sleep(0, True)) as server:
            url = server.url
        client = ApiClient(url)
        with pytest.raises(ApiError) as err:
            await client.get(PODS, "default", "a")
        assert err.value.code == 503
        with pytest.raises(ApiError) as err:
            async for _ in client.watch(PODS):
                pass
        assert err.value.code == 503
        await client.close()

    run(main())


def test_the_client_follows_a_reassigned_server() -> None:
    async def handler(reader, writer, request):  # type: ignore[no-untyped-def]
        writer.write(json_answer({"kind": "Pod"}))
        return True

    async def main() -> None:
        async with Server(handler) as first, Server(handler) as second:
            client = ApiClient(first.url)
            await client.get(PODS, "default", "a")
            client.server = second.url
            await client.get(PODS, "default", "a")
            assert (len(first.requests), len(second.requests)) == (1, 1)
            await client.close()

    run(main())


@pytest.mark.parametrize("size", [1, 7, 100, 100000])
def test_a_watch_yields_every_event_whatever_the_chunking(size: int) -> None:
    events = [{"type": "ADDED", "object": {"metadata": {"name": f"p{i}", "resourceVersion": str(i)}}}
              for i in range(40)]
    events.append({"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired",
                                                "message": "too old"}})
    stream = b"".join(orjson.dumps(e) + b"\n" for e in events)

    async def handler(reader, writer, request):  # type: ignore[no-untyped-def]
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        for i in range(0, len(stream), size):
            piece = stream[i:i + size]
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            if i % (size * 10) == 0:
                await writer.drain()
                await asyncio.sleep(0)
        writer.write(b"0\r\n\r\n")
        return True

    async def main() -> None:
        async with Server(handler) as server:
            client = ApiClient(server.url)
            seen = []
            with pytest.raises(ApiError) as err:
                async for event in client.watch(PODS, "ns", resource_version="5"):
                    seen.append(event)
            assert seen == events[:-1]
            assert (err.value.code, err.value.reason) == (410, "Expired")
            line = server.requests[0].split(b"\r\n", 1)[0].decode()
            assert line.startswith("GET /api/v1/namespaces/ns/pods?watch=1&resourceVersion=5&")
            await client.close()

    run(main())


def test_a_watch_ends_when_the_server_ends_it_and_reports_a_refusal() -> None:
    async def handler(reader, writer, request):  # type: ignore[no-untyped-def]
        if b"resourceVersion=1" in request:
            writer.write(json_answer({"kind": "Status", "code": 403, "reason": "Forbidden",
                                      "message": "no"}, 403))
            return True
        event = orjson.dumps({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}})
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n" + chunked(event + b"\n\n", 3))
        return True

    async def main() -> None:
        async with Server(handler) as server:
            client = ApiClient(server.url)
            events = [e async for e in client.watch(PODS, resource_version="2")]
            assert events == [{"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}}]
            with pytest.raises(ApiError) as err:
                async for _ in client.watch(PODS, resource_version="1"):
                    pass
            assert (err.value.code, err.value.reason) == (403, "Forbidden")
            await client.close()

    run(main())


def test_a_server_url_that_is_not_http_is_service_unavailable() -> None:
    async def main() -> None:
        client = ApiClient("ftp://example.invalid")
        with pytest.raises(ApiError) as err:
            await client.get(PODS, "default", "a")
        assert err.value.code == 503
        await client.close()

    run(main())
