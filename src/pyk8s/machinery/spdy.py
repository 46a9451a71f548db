"""SPDY/3.1 framing, as ``kubectl port-forward`` speaks it (upstream: moby/spdystream).

Sans-I/O: :class:`FrameParser` turns bytes (in whatever pieces they arrive: kubectl splits
frames across many WebSocket messages) into :class:`Frame` values, and :class:`Framer`
turns frames into bytes. Header blocks are zlib streams primed with SPDY/3's dictionary, one
compression context per direction for the whole connection, so a parser and a framer each
belong to exactly one connection and must see every frame in order.

Frame layout (SPDY/3 draft, section 2.2): a control frame starts with the control bit, the
version (3) and a type; a data frame with a 31-bit stream id. Both carry 8 bits of flags and
a 24-bit length. Only what port-forward needs is given meaning here (SYN_STREAM, SYN_REPLY,
RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE, DATA); CREDENTIAL and unknown
types are skipped, as the spec asks. Flow control is not enforced: spdystream, the peer,
neither sends nor honours WINDOW_UPDATE.
"""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

VERSION = 3

SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS = 1, 2, 3, 4
PING, GOAWAY, HEADERS, WINDOW_UPDATE = 6, 7, 8, 9
DATA = 0  # not a control type: the frame kind of data frames here

FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02

# RST_STREAM status codes
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, CANCEL, INTERNAL_ERROR = 1, 2, 3, 5, 6

MAX_DATA = (1 << 24) - 1


_DICTIONARY_WORDS = (
    "options head post put delete trace accept accept-charset accept-encoding "
    "accept-language accept-ranges age allow authorization cache-control connection "
    "content-base content-encoding content-language content-length content-location "
    "content-md5 content-range content-type date etag expect expires from host if-match "
    "if-modified-since if-none-match if-range if-unmodified-since last-modified location "
    "max-forwards pragma proxy-authenticate proxy-authorization range referer retry-after "
    "server te trailer transfer-encoding upgrade user-agent vary via warning "
    "www-authenticate method get status 200_OK version HTTP/1.1 url public set-cookie "
    "keep-alive origin"
)
_DICTIONARY_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417"
    "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently"
    "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error"
    "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct "
    "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,"
    "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
    "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset="
    "iso-8859-1,utf-,*,enq=0."
)


def _dictionary() -> bytes:
    """The SPDY/3 header-compression dictionary (draft 3, section 2.6.10.1): length-prefixed
    header names and common values (``_`` stands for a space), then a run of status codes,
    dates and media types. 1423 bytes; the zlib dictionary id checks it on both sides."""
    words = [w.replace("_", " ") for w in _DICTIONARY_WORDS.split()]
    return b"".join(struct.pack(">I", len(w)) + w.encode() for w in words) \
        + _DICTIONARY_TAIL.encode()


DICTIONARY = _dictionary()


class ProtocolError(Exception):
    """The peer sent something that is not SPDY/3; the connection cannot go on."""


@dataclass
class Frame:
    """One frame. ``kind`` is a control type or :data:`DATA`. Fields not used by a kind keep
    their defaults: ``status`` is RST_STREAM's and GOAWAY's, ``value`` PING's id and
    WINDOW_UPDATE's delta, ``last_stream_id`` GOAWAY's."""

    kind: int
    stream_id: int = 0
    flags: int = 0
    data: bytes = b""
    headers: dict[str, list[str]] = field(default_factory=dict)
    associated_id: int = 0
    priority: int = 0
    status: int = 0
    value: int = 0
    settings: list[tuple[int, int, int]] = field(default_factory=list)

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)

    def header(self, name: str) -> str:
        values = self.headers.get(name.lower())
        return values[0] if values else ""


def _encode_headers(headers: Mapping[str, str | Iterable[str]]) -> bytes:
    parts = [struct.pack(">I", len(headers))]
    for name, value in headers.items():
        raw_name = name.lower().encode()
        raw_value = (value if isinstance(value, str) else "\0".join(value)).encode()
        parts += [struct.pack(">I", len(raw_name)), raw_name,
                  struct.pack(">I", len(raw_value)), raw_value]
    return b"".join(parts)


def _decode_headers(raw: bytes) -> dict[str, list[str]]:
    try:
        (count,) = struct.unpack_from(">I", raw)
        offset, out = 4, {}
        for _ in range(count):
            (n,) = struct.unpack_from(">I", raw, offset)
            name = raw[offset + 4:offset + 4 + n].decode()
            offset += 4 + n
            (n,) = struct.unpack_from(">I", raw, offset)
            value = raw[offset + 4:offset + 4 + n].decode()
            offset += 4 + n
            out.setdefault(name.lower(), []).extend(value.split("\0"))
    except (struct.error, UnicodeDecodeError) as exc:
        raise ProtocolError(f"malformed header block: {exc}") from None
    return out


class FrameParser:
    """Bytes in, frames out. One per connection direction (it owns the inflate context)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)

    def feed(self, data: bytes) -> Iterator[Frame]:
        self._buffer += data
        while len(self._buffer) >= 8:
            length = int.from_bytes(self._buffer[5:8], "big")
            if len(self._buffer) < 8 + length:
                return
            head = bytes(self._buffer[:8])
            body = bytes(self._buffer[8:8 + length])
            del self._buffer[:8 + length]
            frame = self._frame(head, body)
            if frame is not None:
                yield frame

    def _block(self, compressed: bytes) -> dict[str, list[str]]:
        try:
            raw = self._inflate.decompress(compressed)
        except zlib.error as exc:
            raise ProtocolError(f"header block does not inflate: {exc}") from None
        return _decode_headers(raw)

    def _frame(self, head: bytes, body: bytes) -> Frame | None:
        word, flags = struct.unpack_from(">I", head)[0], head[4]
        if not word & 0x80000000:
            return Frame(DATA, stream_id=word & 0x7FFFFFFF, flags=flags, data=body)
        version, kind = (word >> 16) & 0x7FFF, word & 0xFFFF
        if version != VERSION:
            raise ProtocolError(f"unsupported SPDY version {version}")
        try:
            if kind == SYN_STREAM:
                sid, assoc = struct.unpack_from(">II", body)
                return Frame(kind, sid & 0x7FFFFFFF, flags, associated_id=assoc & 0x7FFFFFFF,
                             priority=body[8] >> 5, headers=self._block(body[10:]))
            if kind in (SYN_REPLY, HEADERS):
                (sid,) = struct.unpack_from(">I", body)
                return Frame(kind, sid & 0x7FFFFFFF, flags, headers=self._block(body[4:]))
            if kind == RST_STREAM:
                sid, status = struct.unpack_from(">II", body)
                return Frame(kind, sid & 0x7FFFFFFF, flags, status=status)
            if kind == SETTINGS:
                (count,) = struct.unpack_from(">I", body)
                entries = []
                for i in range(count):
                    fid, value = struct.unpack_from(">II", body, 4 + 8 * i)
                    entries.append((fid >> 24, fid & 0xFFFFFF, value))
                return Frame(kind, flags=flags, settings=entries)
            if kind == PING:
                return Frame(kind, flags=flags, value=struct.unpack_from(">I", body)[0])
            if kind == GOAWAY:
                last, status = struct.unpack_from(">II", body)
                return Frame(kind, stream_id=last & 0x7FFFFFFF, flags=flags, status=status)
            if kind == WINDOW_UPDATE:
                sid, delta = struct.unpack_from(">II", body)
                return Frame(kind, sid & 0x7FFFFFFF, flags, value=delta & 0x7FFFFFFF)
        except (struct.error, IndexError) as exc:
            raise ProtocolError(f"truncated control frame of type {kind}: {exc}") from None
        return None  # CREDENTIAL, unknown types: ignored (draft 3, 2.2.1)


class Framer:
    """Frames out as bytes. One per connection direction (it owns the deflate context), so
    frames carrying headers must be written in the order they are made."""

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY,
                                         DICTIONARY)

    def _block(self, headers: Mapping[str, str | Iterable[str]]) -> bytes:
        raw = _encode_headers(headers)
        return self._deflate.compress(raw) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    @staticmethod
    def _control(kind: int, flags: int, body: bytes) -> bytes:
        return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(body)) + body

    def syn_stream(self, stream_id: int, headers: Mapping[str, str | Iterable[str]], *,
                   flags: int = 0, priority: int = 0) -> bytes:
        body = struct.pack(">IIBB", stream_id, 0, (priority & 7) << 5, 0) + self._block(headers)
        return self._control(SYN_STREAM, flags, body)

    def syn_reply(self, stream_id: int, headers: Mapping[str, str | Iterable[str]] | None = None,
                  *, flags: int = 0) -> bytes:
        return self._control(SYN_REPLY, flags,
                             struct.pack(">I", stream_id) + self._block(headers or {}))

    @staticmethod
    def data(stream_id: int, payload: bytes = b"", *, fin: bool = False) -> bytes:
        out = []
        view = memoryview(payload)
        while True:
            chunk, view = view[:MAX_DATA], view[MAX_DATA:]
            last = not view
            flags = FLAG_FIN if fin and last else 0
            out.append(struct.pack(">II", stream_id & 0x7FFFFFFF, (flags << 24) | len(chunk))
                       + bytes(chunk))
            if last:
                return b"".join(out)

    def rst_stream(self, stream_id: int, status: int = CANCEL) -> bytes:
        return self._control(RST_STREAM, 0, struct.pack(">II", stream_id, status))

    def ping(self, ping_id: int) -> bytes:
        return self._control(PING, 0, struct.pack(">I", ping_id))

    def goaway(self, last_stream_id: int, status: int = 0) -> bytes:
        return self._control(GOAWAY, 0, struct.pack(">II", last_stream_id, status))

    def settings(self, entries: Iterable[tuple[int, int, int]] = ()) -> bytes:
        items = list(entries)
        body = struct.pack(">I", len(items)) + b"".join(
            struct.pack(">II", (flag << 24) | sid, value) for flag, sid, value in items)
        return self._control(SETTINGS, 0, body)

    def window_update(self, stream_id: int, delta: int) -> bytes:
        return self._control(WINDOW_UPDATE, 0, struct.pack(">II", stream_id, delta))


class RawBytes:
    """What aiohttp feeds an upgraded connection's bytes to (the hook WebSocketResponse
    uses): they go to a queue, None at the end. aiohttp's parser does not know the SPDY
    upgrade, so this is installed before the 101 goes out: the client sends nothing more
    until it has read it. (The API server's proxy and the kubelet's node server both take
    SPDY upgrades.)"""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.queue.put_nowait(bytes(data))
        return False, b""

    def feed_eof(self) -> None:
        self.queue.put_nowait(None)
