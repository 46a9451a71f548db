"""A lean HTTP/1.1 front for the API's resource requests; aiohttp serves everything else.

Why: every pod costs the server four or five small requests (create, binding, status,
Event, a share of the Lease renewals). aiohttp's per-request machinery (its request handler
task, ``Request`` and ``StreamWriter`` objects, response preparation and signals) cost about
200 µs of CPU per request here, as much as a binding's own work, and the server's event loop
thread is the control plane's bottleneck.

How: each connection starts with :class:`FastProtocol`. It parses request heads itself and
serves a request through :func:`pyk8s.apiserver.handlers.direct_dispatch`'s route (same
authentication, error boundary and handlers) when the request is a plain one: HTTP/1.1, a
resource path, a ``Content-Length`` body (or none), no ``Expect``, no ``Upgrade``, not a
watch, not a streaming subresource (exec, attach, logs, port-forward, proxy). The first
request that is not plain hands the connection to aiohttp for good: the bytes buffered so far
are fed to a fresh aiohttp request handler, which becomes the transport's protocol. Requests
on one connection are answered in order, one at a time, as HTTP/1.1 requires.

The handlers return aiohttp ``Response`` objects as before; this module writes their status,
headers and body in one ``transport.write``.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from pyk8s.apiserver import codec, handlers
from pyk8s.apiserver.context import ApiContext
from pyk8s.apiserver.http import guarded, status_response
from pyk8s.apiserver.subresources import STREAMING
from pyk8s.machinery import errors

log = logging.getLogger("pyk8s.apiserver.fastpath")

MAX_HEAD = 64 * 1024
# A connection with no request in flight is closed after this long without a byte from its
# client (aiohttp's keep-alive timeout): clients that vanished do not hold connections.
IDLE_TIMEOUT = 75.0
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
_REASONS = {s.value: s.phrase for s in HTTPStatus}


class _Body:
    """What the handlers use of aiohttp's request payload stream: the whole body is here."""

    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data = data

    def is_eof(self) -> bool:
        return True

    def read_nowait(self, n: int = -1) -> bytes:
        data, self._data = self._data, b""
        return data


class _Url:
    __slots__ = ("path", "path_safe", "query_string")

    def __init__(self, path: str, query_string: str) -> None:
        self.path = self.path_safe = path
        self.query_string = query_string


class FastRequest:
    """The part of ``aiohttp.web.BaseRequest`` the resource handlers use."""

    __slots__ = (
        "_body",
        "_query",
        "_state",
        "content",
        "headers",
        "method",
        "path",
        "raw_path",
        "rel_url",
        "transport",
    )

    def __init__(self, method: str, path: str, query_string: str, raw_path: str,
                 headers: CIMultiDictProxy[str], body: bytes,
                 transport: asyncio.BaseTransport) -> None:
        self.method = method
        self.path = path
        self.raw_path = raw_path
        self.rel_url = _Url(path, query_string)
        self.headers = headers
        self.transport = transport
        self._body = body
        self._query: MultiDictProxy[str] | None = None
        self._state: dict[str, Any] = {}
        self.content = _Body(body)

    @property
    def query(self) -> MultiDictProxy[str]:
        if self._query is None:
            qs = self.rel_url.query_string
            self._query = MultiDictProxy(MultiDict(parse_qsl(qs, keep_blank_values=True))
                                         if qs else MultiDict())
        return self._query

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("Content-Length")
        return int(value) if value is not None else None

    @property
    def can_read_body(self) -> bool:
        return bool(self._body)

    async def read(self) -> bytes:
        return self._body

    def __getitem__(self, key: str) -> Any:
        return self._state[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._state[key] = value

    def get(self, key: str, default: Any = None) -> Any:
        return self._state.get(key, default)


_date_cache: tuple[int, bytes] = (0, b"")


def _date() -> bytes:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, email.utils.formatdate(now, usegmt=True).encode())
    return _date_cache[1]


def _response_bytes(resp: web.StreamResponse, close: bool) -> bytes:
    body = resp.body if isinstance(resp, web.Response) else None
    if not isinstance(body, bytes):
        raise TypeError(f"cannot write a {type(resp).__name__} with a {type(body).__name__} body")
    status = resp.status
    head = [b"HTTP/1.1 %d %s\r\n" % (status, (resp.reason or _REASONS.get(status, "")).encode())]
    for name, value in resp.headers.items():
        if name.lower() not in ("content-length", "connection", "date"):
            head.append(f"{name}: {value}\r\n".encode("latin-1"))
    head.append(b"Date: %s\r\nContent-Length: %d\r\n" % (_date(), len(body)))
    if close:
        head.append(b"Connection: close\r\n")
    head.append(b"\r\n")
    head.append(body)
    return b"".join(head)


class FastProtocol(asyncio.Protocol):
    """One client connection; see the module docstring."""

    def __init__(self, ctx: ApiContext, fallback: Callable[[], asyncio.Protocol],
                 bypass: frozenset[str], connections: set[FastProtocol],
                 idle_timeout: float = IDLE_TIMEOUT) -> None:
        self._ctx = ctx
        self._idle_timeout = idle_timeout
        self._idle: asyncio.TimerHandle | None = None
        self._active_at = 0.0  # loop time of the last bytes in or answer out
        self._fallback = fallback
        self._bypass = bypass
        self._connections = connections
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._task: asyncio.Task[None] | None = None
        self._handed_off = False
        self._closing = False

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._connections.add(self)
        loop = asyncio.get_running_loop()
        self._active_at = loop.time()
        self._idle = loop.call_at(self._active_at + self._idle_timeout, self._idle_expired)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._task is None:
            self._active_at = asyncio.get_running_loop().time()
            self._next()

    def eof_received(self) -> bool | None:
        self._closing = True
        if self._task is None:
            self.close()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        # A request in flight runs to its end, unanswered (as aiohttp's handlers do, without
        # handler cancellation): a write stopped half-way could leave what it reserved.
        self._connections.discard(self)
        self._closing = True
        self._buffer.clear()
        self._disarm_idle()

    def _disarm_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def _idle_expired(self) -> None:
        """The idle timer is armed once and, when it fires early (the connection was busy
        since), again for the rest of the timeout: re-arming it on every request cost ~4%
        of a small request's CPU."""
        self._idle = None
        if self._handed_off or self._transport is None or self._transport.is_closing():
            return
        loop = asyncio.get_running_loop()
        due = (loop.time() if self._task is not None else self._active_at) + self._idle_timeout
        if due > loop.time():
            self._idle = loop.call_at(due, self._idle_expired)
        else:
            self.close()

    def close(self) -> None:
        if self._transport is not None and not self._handed_off:
            self._transport.close()

    # -- requests --------------------------------------------------------------------------

    def _next(self) -> None:
        """Start serving the next complete request in the buffer, or hand the connection
        over to aiohttp if it is not a plain resource request."""
        if self._handed_off or (self._closing and not self._buffer):
            return
        buffer = self._buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HEAD:
                self._hand_off()
            return
        parsed = self._parse(bytes(buffer[:end]))
        if parsed is None:
            self._hand_off()
            return
        method, path, query_string, raw_path, headers, route, length, close = parsed
        if len(buffer) < end + 4 + length:
            return  # the body is still on its way
        body = bytes(buffer[end + 4:end + 4 + length])
        del buffer[:end + 4 + length]
        request = FastRequest(method, path, query_string, raw_path, headers, body,
                              self._transport)  # type: ignore[arg-type]
        self._task = asyncio.get_running_loop().create_task(self._serve(request, route, close))

    def _parse(self, head: bytes) -> tuple[Any, ...] | None:
        """The request head's parts if it is a plain resource request, else None."""
        try:
            text = head.decode("latin-1")
            line, *lines = text.split("\r\n")
            method, target, version = line.split(" ")
        except ValueError:
            return None
        if version != "HTTP/1.1" or method not in _METHODS or not target.startswith("/"):
            return None
        path, _, query_string = target.partition("?")
        if "%" in path or "/watch/" in path:
            return None
        route = handlers.api_route(path)
        if route is None or route[0] in self._bypass:
            return None
        headers: CIMultiDict[str] = CIMultiDict()
        for header in lines:
            name, sep, value = header.partition(":")
            if not sep or not name or name[-1] in " \t":
                return None
            headers.add(name, value.strip())
        if "Transfer-Encoding" in headers or "Expect" in headers or "Upgrade" in headers:
            return None
        try:
            length = int(headers.get("Content-Length", "0"))
        except ValueError:
            return None
        if length < 0 or length > codec.MAX_BODY:
            return None
        if query_string and _is_watch(query_string):
            return None
        if _streaming(route[2]):
            return None
        close = headers.get("Connection", "").lower() == "close"
        return method, path, query_string, target, CIMultiDictProxy(headers), route, length, close

    async def _serve(self, request: FastRequest, route: tuple[str, str, str], close: bool) -> None:
        try:
            response = await guarded(request, handlers.dispatch, self._ctx, *route)
            try:
                data = _response_bytes(response, close)
            except TypeError:
                log.exception("%s %s", request.method, request.path[:200])
                data = _response_bytes(status_response(errors.internal("response")), close)
        except asyncio.CancelledError:
            return
        except Exception:  # ConnectionResetError and the like: the client is gone
            log.debug("serving %s %s failed", request.method, request.path[:200], exc_info=True)
            self.close()
            return
        finally:
            self._task = None
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        transport.write(data)
        if close:
            self._closing = True
            self._buffer.clear()
            transport.close()
            return
        if self._closing and not self._buffer:
            transport.close()
            return
        self._active_at = asyncio.get_running_loop().time()
        if self._buffer:
            self._next()

    def _hand_off(self) -> None:
        """From now on aiohttp serves this connection, starting with what is buffered."""
        self._handed_off = True
        self._disarm_idle()
        self._connections.discard(self)
        transport = self._transport
        assert transport is not None
        protocol = self._fallback()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if self._buffer:
            data, self._buffer = bytes(self._buffer), bytearray()
            protocol.data_received(data)
        if self._closing:
            with contextlib.suppress(Exception):
                protocol.eof_received()


def _is_watch(query_string: str) -> bool:
    """Whether the query asks for a watch (any ``watch`` parameter: aiohttp decides)."""
    return any(key == "watch" for key, _ in parse_qsl(query_string, keep_blank_values=True))


def _streaming(rest: str) -> bool:
    """Whether a resource path names a streaming subresource (which aiohttp serves)."""
    parts = rest.split("/")
    return any(part in STREAMING for part in parts[1:])


def protocol_factory(ctx: ApiContext, fallback: Callable[[], asyncio.Protocol],
                     bypass: frozenset[str],
                     connections: set[FastProtocol]) -> Callable[[], FastProtocol]:
    def make() -> FastProtocol:
        return FastProtocol(ctx, fallback, bypass, connections)
    return make
