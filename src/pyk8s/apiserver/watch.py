"""Watch streams: newline-delimited JSON events, held open until ``timeoutSeconds``.

A watch that starts below what the cache remembers gets one ``ERROR`` event carrying a 410
``Status`` (as upstream sends it), so informers re-list. Bookmarks are sent every
``BOOKMARK_INTERVAL`` seconds of quiet when the client allows them. Closing the stream early
would end ``kubectl get -w`` (it exits on EOF), so the stream lasts the full timeout: the
client's, or upstream's randomized default between ``min_request_timeout`` and twice that.

Writes are coalesced under load: an event for a watch that was written to less than
``MIN_WRITE_INTERVAL`` ago waits out the rest of that interval, and everything buffered by
then goes out in one write. Each write costs a TLS record and a system call per watcher,
whatever its size, so a busy watch costs per interval rather than per event; an event on a
quiet watch goes out at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from pyk8s.apiserver import codec
from pyk8s.apiserver.context import ApiContext
from pyk8s.apiserver.listing import build_matcher, parse_resource_version
from pyk8s.apiserver.render import TABLE_CONTENT_TYPE, include_mode, table_row
from pyk8s.apiserver.watchcache import CacheEvent
from pyk8s.machinery import errors, tables
from pyk8s.machinery.resources import Resource
from pyk8s.storage import CompactedError

BOOKMARK_INTERVAL = 60.0
MIN_WRITE_INTERVAL = 0.02
MAX_EVENTS_PER_WRITE = 256


def _since(text: str | None) -> int | None:
    return None if text in (None, "", "0") else parse_resource_version(str(text))


async def serve_watch(
    request: web.Request,
    ctx: ApiContext,
    res: Resource,
    namespace: str | None,
    negotiated: codec.Negotiated,
    *,
    name: str = "",
) -> web.StreamResponse:
    query = request.query
    field_selector = query.get("fieldSelector", "")
    if name:
        extra = f"metadata.name={name}"
        field_selector = f"{field_selector},{extra}" if field_selector else extra
    matches = build_matcher(res, query.get("labelSelector", ""), field_selector)
    since = _since(query.get("resourceVersion"))
    timeout_text = query.get("timeoutSeconds")
    if timeout_text:
        try:
            timeout = float(int(timeout_text))
        except ValueError:
            raise errors.bad_request(f"timeoutSeconds: invalid value {timeout_text!r}") from None
    else:
        base = ctx.settings.min_request_timeout
        timeout = base * (1 + random.random())
    bookmarks = query.get("allowWatchBookmarks", "").lower() in ("true", "1")
    include = include_mode(query.get("includeObject")) if negotiated.table else ""
    if since is not None and since > ctx.cache.revision:
        await ctx.cache.wait_for(since)

    content_type = TABLE_CONTENT_TYPE if negotiated.table else codec.JSON
    response = web.StreamResponse(headers={"Content-Type": content_type,
                                           "Cache-Control": "no-cache, private"})
    response.enable_chunked_encoding()
    try:
        watcher = ctx.cache.watch(res, namespace, matches, since)
    except CompactedError as exc:
        await response.prepare(request)
        status = errors.too_old_resource_version(exc.requested, exc.compacted).status()
        await response.write(orjson.dumps({"type": "ERROR", "object": status}) + b"\n")
        await response.write_eof()
        return response

    await response.prepare(request)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    next_bookmark = loop.time() + BOOKMARK_INTERVAL
    first_table = True
    events = watcher.events
    last_write = 0.0
    try:
        while True:
            now = loop.time()
            if now >= deadline:
                break
            await watcher.wait(min(deadline, next_bookmark) - now)
            if events:
                hold = last_write + MIN_WRITE_INTERVAL - loop.time()
                if hold > 0 and len(events) < MAX_EVENTS_PER_WRITE and not watcher.closed:
                    await asyncio.sleep(hold)
                chunks = []
                while events and len(chunks) < MAX_EVENTS_PER_WRITE:
                    event = events.popleft()
                    if negotiated.table:
                        chunks.append(_table_event(res, event, include, first_table))
                        first_table = False
                    else:
                        chunks.append(_json_event(event))
                await response.write(b"".join(chunks))
                last_write = loop.time()
                next_bookmark = last_write + BOOKMARK_INTERVAL
            elif watcher.closed:
                break
            elif bookmarks and loop.time() >= next_bookmark:
                await response.write(_bookmark(res, ctx.cache.revision))
                next_bookmark = loop.time() + BOOKMARK_INTERVAL
            elif loop.time() >= next_bookmark:
                next_bookmark = loop.time() + BOOKMARK_INTERVAL
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        ctx.cache.unwatch(res, watcher)
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
    return response


def _json_event(event: CacheEvent) -> bytes:
    """An event's line of a JSON watch stream; made once per event and type, however many
    watchers receive it (the cached object's bytes are spliced in, never re-encoded)."""
    line = event.line
    if line is None:
        line = event.line = b'{"type":"%s","object":%s}\n' % (event.type.encode(), event.obj.raw)
    return line


def _bookmark(res: Resource, revision: int) -> bytes:
    obj: dict[str, Any] = {"kind": res.kind, "apiVersion": res.api_version,
                           "metadata": {"resourceVersion": str(revision)}}
    return orjson.dumps({"type": "BOOKMARK", "object": obj}) + b"\n"


def _table_event(res: Resource, event: CacheEvent, include: str, with_columns: bool) -> bytes:
    obj = event.obj.load()
    now = datetime.now(UTC)
    body: dict[str, Any] = {
        "kind": "Table", "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": str(event.revision)},
        "columnDefinitions": tables.table_columns(res.group, res.plural) if with_columns else [],
        "rows": [table_row(res, obj, include, now)],
    }
    return orjson.dumps({"type": event.type, "object": body}) + b"\n"
