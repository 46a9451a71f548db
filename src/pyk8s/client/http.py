"""A small HTTP/1.1 client for the one server a component talks to (the transport of ApiClient).

Why not aiohttp's client: every pod costs each component several requests and watch events,
and aiohttp spends ~0.3-0.6 ms of CPU per request on machinery this client never needs
(URL objects, multidict headers, payload registries, per-request timeouts, SSL parameter
merging, tracing hooks). Here a request is one pre-built header block plus the body, written
in one call on a kept-alive connection; the response is parsed from one buffer with
``bytes.find``. Only what the API server speaks is supported: HTTP/1.1, Content-Length or
chunked bodies, no compression, no redirects.

Every failure of the connection or of the response framing raises :class:`HttpError` (an
``OSError``), which ApiClient maps to 503 as it did aiohttp's errors.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Mapping
from urllib.parse import quote, urlencode, urlsplit

IDLE_SECONDS = 30.0
"""A kept-alive connection idle for longer is dropped rather than reused: well under the
server's keep-alive timeout, so a request rarely meets a connection the server is closing."""

MAX_HEAD = 64 * 1024
PAUSE_ABOVE = 8 << 20
"""A watch whose consumer falls behind stops reading the socket beyond this many bytes."""


class HttpError(OSError):
    """The connection failed or the response was not valid HTTP/1.1."""


class Response:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


def parse_head(head: bytes) -> tuple[int, dict[str, str], bool]:
    """Status, lower-cased headers and whether the connection stays open after it."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise HttpError(f"bad status line {lines[0][:100]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise HttpError(f"bad header line {line[:100]!r}")
        headers[name.strip().lower()] = value.strip()
    keep_alive = parts[0] != "HTTP/1.0" and headers.get("connection", "").lower() != "close"
    return int(parts[1]), headers, keep_alive


CHUNKED = -1
UNTIL_CLOSE = -2


class Connection(asyncio.Protocol):
    """One TCP (TLS) connection, one request at a time.

    A request's response is parsed here as its bytes arrive and handed over whole through one
    future: the requesting coroutine wakes once, not once per read or per parsing step. A
    watch (``stream``) gets the head that way, then reads the body piece by piece."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self.keep_alive = True
        self.reused = False
        self.received = False
        self.idle_since = 0.0
        self.pending: asyncio.Future[Response] | None = None
        self._head_only = False
        self._head: tuple[int, dict[str, str]] | None = None
        self._length = 0
        self._chunks: list[bytes] = []
        self._waiter: asyncio.Future[None] | None = None
        self._stream_done = False
        self._paused = False

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received = True
        self.buf += data
        if self.pending is not None:
            self._advance()
            return
        if len(self.buf) > PAUSE_ABOVE and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._ended(None)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended(exc)

    def _ended(self, exc: BaseException | None) -> None:
        self.eof = True
        self.keep_alive = False
        if exc is not None and self.error is None:
            self.error = exc
        if self.pending is not None:
            self._advance()
            if self.pending is not None:
                self.fail(HttpError(f"connection closed: {self.error}" if self.error
                                    else "server closed the connection"))
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- a request's response --------------------------------------------------------------

    @property
    def usable(self) -> bool:
        return self.keep_alive and not self.eof

    def expect(self, future: asyncio.Future[Response], *, head_only: bool = False) -> None:
        """The next response completes ``future``; with ``head_only`` a successful one does
        as soon as its head is in (its body is then read with :meth:`read_piece`)."""
        self.pending = future
        self._head_only = head_only
        self._head = None
        self._chunks = []
        self.received = False
        if self.buf or self.eof:
            self._advance()

    def fail(self, exc: BaseException) -> None:
        future, self.pending = self.pending, None
        self.keep_alive = False
        if future is not None and not future.done():
            future.set_exception(exc)

    def time_out(self, seconds: float) -> None:
        self.fail(HttpError(f"no response within {seconds}s"))

    def _advance(self) -> None:
        try:
            response = self._parse()
        except HttpError as exc:
            self.fail(exc)
            return
        if response is not None:
            future, self.pending = self.pending, None
            if future is not None and not future.done():
                future.set_result(response)

    def _parse(self) -> Response | None:
        buf = self.buf
        while self._head is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    raise HttpError("response head too large")
                return None
            status, headers, keep_alive = parse_head(bytes(buf[:end]))
            del buf[:end + 4]
            if 100 <= status < 200:
                continue
            self._head = (status, headers)
            self.keep_alive = self.keep_alive and keep_alive
            if status in (204, 304):
                self._length = 0
            elif "chunked" in headers.get("transfer-encoding", "").lower():
                self._length = CHUNKED
            elif "content-length" in headers:
                length = headers["content-length"]
                if not length.isdigit():
                    raise HttpError(f"bad Content-Length {length[:50]!r}")
                self._length = int(length)
            else:
                self._length = UNTIL_CLOSE
                self.keep_alive = False
            if self._head_only and status < 400:
                self._stream_done = False
                return Response(status, headers, b"")
        status, headers = self._head
        length = self._length
        if length >= 0:
            if len(buf) < length:
                return None
            body = bytes(buf[:length])
            del buf[:length]
        elif length == CHUNKED:
            pieces, done = self._take_chunks()
            self._chunks += pieces
            if not done:
                return None
            body = b"".join(self._chunks)
            self._chunks = []
        else:
            if not self.eof:
                return None
            body = self.take()
        return Response(status, headers, body)

    def _take_chunks(self) -> tuple[list[bytes], bool]:
        """The data of every complete chunk buffered, and whether the last chunk (and its
        trailers) came. The buffer is cut once, not once per chunk."""
        buf = self.buf
        pieces: list[bytes] = []
        pos = 0
        done = False
        while True:
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                if len(buf) - pos > MAX_HEAD:
                    raise HttpError("chunk size line too long")
                break
            size_text = bytes(buf[pos:line_end]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise HttpError(f"bad chunk size {size_text[:20]!r}") from None
            start = line_end + 2
            if size == 0:
                if buf[start:start + 2] == b"\r\n":
                    pos = start + 2
                else:
                    trailers_end = buf.find(b"\r\n\r\n", start)
                    if trailers_end < 0:
                        break
                    pos = trailers_end + 4
                done = True
                break
            if len(buf) < start + size + 2:
                break
            if buf[start + size:start + size + 2] != b"\r\n":
                raise HttpError("chunk not terminated by CRLF")
            pieces.append(bytes(buf[start:start + size]))
            pos = start + size + 2
        if pos:
            del buf[:pos]
        return pieces, done

    # -- a streamed body -------------------------------------------------------------------

    def take(self) -> bytes:
        """Everything buffered, leaving the buffer empty."""
        data = bytes(self.buf)
        self.buf.clear()
        return data

    async def read_piece(self) -> bytes | None:
        """The next piece of a streamed body (all complete data buffered), None at its end;
        raises HttpError if the connection ends before the body does."""
        while True:
            if self._length == CHUNKED:
                if self._stream_done:
                    return None
                pieces, done = self._take_chunks()
                self._stream_done = done
                if pieces:
                    return pieces[0] if len(pieces) == 1 else b"".join(pieces)
                if done:
                    return None
            elif self.buf:
                return self.take()
            elif self.eof and self._length == UNTIL_CLOSE:
                return None
            await self._more()

    async def _more(self) -> None:
        """Wait until more bytes arrive; raise if the connection ended instead."""
        if self.eof:
            raise HttpError(f"connection closed: {self.error}" if self.error
                            else "server closed the connection")
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        waiter = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        try:
            await waiter
        finally:
            self._waiter = None

    def close(self) -> None:
        self.keep_alive = False
        if self.transport is not None:
            self.transport.close()


class Pool:
    """Kept-alive connections to one server, at most ``limit`` in use at once (a burst of
    requests queues for a free one rather than paying a TLS handshake each)."""

    def __init__(self, server: str, ssl_context: ssl.SSLContext | None, *,
                 user_agent: str, limit: int) -> None:
        self.server = server
        url = urlsplit(server)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise HttpError(f"unsupported server URL {server!r}")
        self.host = url.hostname
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.prefix = url.path.rstrip("/")
        if url.scheme == "https":
            if ssl_context is None:  # as aiohttp's ssl=False: encrypted, unverified
                ssl_context = ssl.create_default_context()
                ssl_context.check_hostname = False
                ssl_context.verify_mode = ssl.CERT_NONE
            self.ssl: ssl.SSLContext | None = ssl_context
        else:
            self.ssl = None
        host_header = url.netloc.rpartition("@")[2]
        self.head_suffix = (f"Host: {host_header}\r\nUser-Agent: {user_agent}\r\n"
                            "Accept: application/json\r\n").encode("latin-1")
        self._idle: list[Connection] = []
        self._slots = asyncio.Semaphore(limit) if limit > 0 else None
        self._all: set[Connection] = set()

    def target(self, path: str, query: Mapping[str, str] | None) -> bytes:
        """The percent-encoded request target; a query already in ``path`` is kept."""
        path, sep, raw_query = path.partition("?")
        target = self.prefix + quote(path, safe="/:@!$&'()*+,;=-._~%")
        if sep:
            target += "?" + quote(raw_query, safe="=&;:@!$'()*+,/?-._~%")
        if query:
            target += ("&" if sep else "?") + urlencode(query, quote_via=quote, safe="")
        return target.encode("latin-1")

    def request_bytes(self, method: str, target: bytes, body: bytes | None,
                      content_type: str) -> bytes:
        head = b"%s %s HTTP/1.1\r\n" % (method.encode("ascii"), target) + self.head_suffix
        if body is None:
            return head + b"\r\n"
        return (head + b"Content-Type: %s\r\nContent-Length: %d\r\n\r\n"
                % (content_type.encode("latin-1"), len(body)) + body)

    async def connect(self) -> Connection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(loop.create_connection(
                Connection, self.host, self.port, ssl=self.ssl,
                server_hostname=self.host if self.ssl is not None else None), 10.0)
        except TimeoutError:
            raise HttpError(f"connect to {self.host}:{self.port} timed out") from None
        self._all.add(conn)
        return conn

    def _take_idle(self) -> Connection | None:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if conn.usable and not conn.buf and now - conn.idle_since < IDLE_SECONDS:
                conn.reused = True
                return conn
            conn.close()
            self._all.discard(conn)
        return None

    def _release(self, conn: Connection, reusable: bool) -> None:
        if reusable and conn.usable and not conn.buf:
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
        else:
            conn.close()
            self._all.discard(conn)

    async def request(self, method: str, target: bytes, body: bytes | None,
                      content_type: str, timeout: float | None) -> Response:
        data = self.request_bytes(method, target, body, content_type)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        slots = self._slots
        if slots is not None:
            # No asyncio.wait_for here: it costs a task per queued request, and bursts
            # queue hundreds. A request whose turn comes after its deadline fails then.
            await slots.acquire()
            if deadline is not None and loop.time() >= deadline:
                slots.release()
                raise HttpError(f"no free connection within {timeout}s")
        try:
            return await self._exchange(loop, data, deadline)
        finally:
            if slots is not None:
                slots.release()

    async def _exchange(self, loop: asyncio.AbstractEventLoop, data: bytes,
                        deadline: float | None) -> Response:
        conn = self._take_idle()
        while True:
            if conn is None:
                conn = await self.connect()
            future: asyncio.Future[Response] = loop.create_future()
            conn.expect(future)
            timer = None
            if deadline is not None:
                timer = loop.call_at(deadline, conn.time_out, round(deadline - loop.time(), 3))
            ok = False
            try:
                conn.transport.write(data)  # type: ignore[union-attr]
                response = await future
                ok = True
                return response
            except HttpError:
                # A kept-alive connection the server closed while idle, before any byte of a
                # response: the request never reached it; send it once more on a fresh one
                # (as Go's net/http does for errServerClosedIdle).
                if conn.reused and conn.eof and not conn.received:
                    self._release(conn, False)
                    conn = None
                    continue
                raise
            finally:
                if timer is not None:
                    timer.cancel()
                if conn is not None:
                    conn.pending = None
                    self._release(conn, ok)

    async def stream(self, target: bytes) -> tuple[Connection, Response]:
        """A GET on a connection of its own (a watch holds it for its lifetime: it never
        waits for requests, nor requests for it). The response is whole if it failed (status
        >= 400); else its body is read with ``read_piece`` and the caller forgets the
        connection once done."""
        conn = await self.connect()
        try:
            future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
            conn.expect(future, head_only=True)
            conn.transport.write(  # type: ignore[union-attr]
                self.request_bytes("GET", target, None, ""))
            response = await future
        except BaseException:
            self.forget(conn)
            raise
        return conn, response

    def forget(self, conn: Connection) -> None:
        conn.close()
        self._all.discard(conn)

    def close_now(self) -> None:
        for conn in list(self._all):
            conn.close()
        self._all.clear()
        self._idle.clear()
