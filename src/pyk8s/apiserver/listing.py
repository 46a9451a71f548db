"""Lists: selectors, ``limit``/``continue`` paging and ``resourceVersion`` semantics.

Served from the watch cache where upstream's cacher would serve them (``resourceVersion``
unset: after the cache caught up with the store, so a client reads its own writes; ``0``:
whatever the cache holds; ``N``: once the cache reached N). Reads at an exact past revision,
and continue pages of a list the cache has moved past, go to the store's history; a
compacted revision there is 410 Gone, as with etcd.

A continue token is upstream's: base64 of ``{"v":"meta.k8s.io/v1","rv":R,"start":KEY}``
where KEY is the next key relative to the resource's prefix.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import orjson

from pyk8s.apiserver.context import ApiContext
from pyk8s.apiserver.watchcache import CachedObject, cached_object, select_fields
from pyk8s.machinery import errors, selectors
from pyk8s.machinery.resources import Resource
from pyk8s.storage import CompactedError, FutureRevisionError

Matcher = Callable[[CachedObject], bool]

_CONTINUE_GONE = (
    "The provided continue parameter is too old to display a consistent list result. You can "
    "start a new list without the continue parameter."
)


@dataclass(slots=True)
class ListQuery:
    namespace: str | None  # None: all namespaces (or a cluster-scoped resource)
    label_selector: str = ""
    field_selector: str = ""
    limit: int = 0
    continue_token: str = ""
    resource_version: str | None = None
    resource_version_match: str = ""


@dataclass(slots=True)
class ListPage:
    items: list[CachedObject]
    revision: int
    continue_token: str = ""
    remaining: int | None = None


def build_matcher(resource: Resource, label_selector: str, field_selector: str) -> Matcher:
    """A predicate over cached objects; 400 for a malformed or unsupported selector."""
    try:
        labels = selectors.parse_label_selector(label_selector) if label_selector else None
    except selectors.SelectorError as exc:
        raise errors.bad_request(f"unable to parse requirement: {exc}") from None
    try:
        fields = selectors.parse_field_selector(field_selector) if field_selector else None
    except selectors.SelectorError as exc:
        raise errors.bad_request(f"invalid field selector: {exc}") from None
    if fields is not None:
        allowed = {"metadata.name", "metadata.namespace", *resource.field_selectors}
        bad = selectors.unsupported_fields(fields, allowed)
        if bad:
            raise errors.bad_request(f'field label not supported: {bad[0]}')
    if labels is None and fields is None:
        return _everything
    if fields is None:
        assert labels is not None
        return lambda obj: labels.matches(obj.labels)
    select_fields(resource, {requirement[0] for requirement in fields.requirements})
    if labels is None:
        return lambda obj: fields.matches(obj)
    return lambda obj: labels.matches(obj.labels) and fields.matches(obj)


def _everything(obj: CachedObject) -> bool:
    return True


def _encode_token(revision: int, start: str) -> str:
    raw = orjson.dumps({"v": "meta.k8s.io/v1", "rv": revision, "start": start})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str) -> tuple[int, str]:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = orjson.loads(base64.urlsafe_b64decode(padded))
        if data.get("v") != "meta.k8s.io/v1":
            raise ValueError("wrong version")
        revision = int(data["rv"])
        start = data["start"]
        if not isinstance(start, str) or revision <= 0:
            raise ValueError("bad fields")
        return revision, start
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise errors.bad_request("continue key is not valid: unable to decode the continue token") from None


def parse_resource_version(text: str) -> int:
    try:
        value = int(text)
        if value < 0:
            raise ValueError
        return value
    except ValueError:
        raise errors.bad_request(f'Invalid value: "{text}": resourceVersion must be a non-negative integer') from None


async def list_objects(ctx: ApiContext, resource: Resource, query: ListQuery) -> ListPage:
    matches = build_matcher(resource, query.label_selector, query.field_selector)
    cache = ctx.cache
    limit = query.limit if query.limit > 0 else 0
    if query.continue_token:
        if query.resource_version not in (None, "", "0") or query.resource_version_match:
            raise errors.bad_request(
                "specifying resource version is not allowed when using continue")
        revision, start = _decode_token(query.continue_token)
        start_key = _scoped_prefix(resource, query.namespace) + start
        if cache.revision == revision:
            return _page_from_cache(ctx, resource, query, matches, limit, start_key)
        return await _page_from_store(ctx, resource, query, matches, limit, start_key, revision)

    rv_text = query.resource_version
    match = query.resource_version_match
    if match not in ("", "NotOlderThan", "Exact"):
        raise errors.bad_request(
            f'resourceVersionMatch: Unsupported value: "{match}": supported values: "Exact", "NotOlderThan"')
    if match and rv_text in (None, ""):
        raise errors.bad_request(
            "resourceVersionMatch is forbidden unless resourceVersion is provided")
    if match == "Exact":
        revision = parse_resource_version(rv_text or "")
        if revision == 0:
            raise errors.bad_request(
                'resourceVersionMatch "Exact" is forbidden for resourceVersion "0"')
        if revision != cache.revision:
            return await _page_from_store(ctx, resource, query, matches, limit, "", revision)
    elif rv_text in (None, ""):
        await cache.wait_fresh()
    elif rv_text != "0":
        wanted = parse_resource_version(rv_text)
        if not await cache.wait_for(wanted):
            raise errors.timeout(f"Too large resource version: {wanted}, current: {cache.revision}")
    return _page_from_cache(ctx, resource, query, matches, limit, "")


def _scoped_prefix(resource: Resource, namespace: str | None) -> str:
    if namespace is not None and resource.namespaced:
        return f"{resource.storage_prefix}{namespace}/"
    return resource.storage_prefix


def _page_from_cache(
    ctx: ApiContext, resource: Resource, query: ListQuery, matches: Matcher, limit: int,
    start_key: str,
) -> ListPage:
    cache = ctx.cache.cache_for(resource)
    revision = ctx.cache.revision
    items: list[CachedObject] = []
    scan: Iterable[CachedObject] = cache.scan(query.namespace, start_key)
    iterator = iter(scan)
    for obj in iterator:
        if not matches(obj):
            continue
        if limit and len(items) == limit:
            prefix = _scoped_prefix(resource, query.namespace)
            remaining = None
            if matches is _everything:
                remaining = 1 + sum(1 for _ in iterator)
            return ListPage(items, revision, _encode_token(revision, obj.key[len(prefix):]), remaining)
        items.append(obj)
    return ListPage(items, revision)


async def _page_from_store(
    ctx: ApiContext, resource: Resource, query: ListQuery, matches: Matcher, limit: int,
    start_key: str, revision: int,
) -> ListPage:
    prefix = _scoped_prefix(resource, query.namespace)
    start = max(start_key, prefix)
    items: list[CachedObject] = []
    chunk = max(limit, 500) if limit else 0
    while True:
        try:
            result = await ctx.store.list(prefix, start=start, limit=chunk, revision=revision)
        except CompactedError:
            if query.continue_token:
                raise errors.gone(_CONTINUE_GONE) from None
            raise errors.gone(
                f"The resourceVersion for the provided list is too old. ({revision})") from None
        except FutureRevisionError:
            raise errors.timeout(
                f"Too large resource version: {revision}, current: {ctx.cache.revision}") from None
        for kv in result.kvs:
            obj = cached_object(resource, kv.key, kv.value, kv.mod_revision)
            if not matches(obj):
                continue
            if limit and len(items) == limit:
                return ListPage(items, result.revision,
                                _encode_token(result.revision, obj.key[len(prefix):]))
            items.append(obj)
        if not result.more or not result.kvs:
            return ListPage(items, result.revision)
        start = result.kvs[-1].key + "\x00"
