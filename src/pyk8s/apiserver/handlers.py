"""Resource endpoints: URL → (resource, namespace, name, subresource) → verb.

Paths are upstream's: ``/api/v1/...`` for the core group, ``/apis/<group>/<version>/...``
otherwise, ``namespaces/<ns>/<plural>[/<name>[/<subresource>]]`` for namespaced resources,
and the deprecated ``watch/`` prefix. Everything verb-specific is delegated to
:mod:`rest`, :mod:`listing`, :mod:`subresources` and :mod:`watch`; this module only routes,
decodes and renders.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import hdrs, web

from pyk8s.apiserver import codec, fieldmanager, listing, rest, subresources, validation
from pyk8s.apiserver.context import ApiContext
from pyk8s.apiserver.http import guarded, json_response, raw_response
from pyk8s.apiserver.render import list_body, object_body
from pyk8s.apiserver.watch import serve_watch
from pyk8s.machinery import errors
from pyk8s.machinery.resources import Resource

CTX = web.AppKey("ctx", ApiContext)

_NOT_FOUND = errors.ApiError(404, "NotFound", "the server could not find the requested resource",
                             details={})


@dataclass(frozen=True, slots=True)
class Target:
    resource: Resource
    namespace: str | None
    name: str
    subresource: str
    watch: bool


def resolve(ctx: ApiContext, group: str, version: str, rest_path: str) -> Target:
    parts = [p for p in rest_path.split("/") if p]
    watch = False
    if parts and parts[0] == "watch":
        watch = True
        parts = parts[1:]
    if not parts:
        raise _NOT_FOUND
    namespace: str | None = None
    if parts[0] == "namespaces" and len(parts) >= 3:
        candidate = ctx.catalogue.by_plural(group, version, parts[2])
        if candidate is not None and candidate.namespaced:
            namespace = parts[1]
            parts = parts[2:]
    resource = ctx.catalogue.by_plural(group, version, parts[0])
    if resource is None or (len(parts) > 3 and parts[2] != "proxy"):  # proxy/<path...>
        raise _NOT_FOUND
    name = parts[1] if len(parts) > 1 else ""
    sub = parts[2] if len(parts) > 2 else ""
    if resource.namespaced and name and namespace is None:
        raise _NOT_FOUND
    if sub and resource.subresource(sub) is None:
        raise _NOT_FOUND
    return Target(resource, namespace, name, sub, watch)


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("true", "1")


def _manager(request: web.Request, options_kind: str) -> str:
    return fieldmanager.manager_name(request.query.get("fieldManager"),
                                     request.headers.get("User-Agent"), options_kind)


def _dry_run(request: web.Request) -> bool:
    values = request.query.getall("dryRun", [])
    for value in values:
        if value != "All":
            raise errors.bad_request(f'dryRun: Unsupported value: "{value}": supported values: "All"')
    return bool(values)


def _int_param(request: web.Request, name: str) -> int | None:
    text = request.query.get(name)
    if text in (None, ""):
        return None
    try:
        return int(text)
    except ValueError:
        raise errors.bad_request(f"{name}: invalid value {text!r}: must be an integer") from None


async def read_body(request: web.Request) -> Any:
    return (await _read_raw_body(request))[1]


async def _read_raw_body(request: web.Request) -> tuple[bytes, Any]:
    if request.content_length is not None and request.content_length > codec.MAX_BODY:
        raise errors.too_large(codec.MAX_BODY)
    content = request.content
    if content.is_eof():
        # All of it is here already (the usual small body): take the buffer in one call
        # rather than aiohttp's read loop (two awaits, a resize, a bytearray copy).
        raw = content.read_nowait(-1)
    else:
        raw = await request.read()
    if len(raw) > codec.MAX_BODY:
        raise errors.too_large(codec.MAX_BODY)
    return raw, codec.decode_body(raw, request.headers.get("Content-Type"))


async def _read_validated(request: web.Request) -> tuple[Any, validation.FieldValidation]:
    """The body and the request's ``fieldValidation`` (with the raw JSON body, which
    duplicate-key detection needs)."""
    fv = validation.FieldValidation(
        validation.directive(request.method, request.query.get("fieldValidation")))
    raw, body = await _read_raw_body(request)
    if codec.media_type(request.headers.get("Content-Type")) in codec.JSON_BODY_TYPES:
        fv.raw = raw
    return body, fv


def _with_warnings(response: web.Response, fv: validation.FieldValidation) -> web.Response:
    for value in fv.header_values():
        response.headers.add("Warning", value)
    return response


def _check_verb(resource: Resource, verb: str, sub: str) -> None:
    verbs = resource.verbs
    if sub:
        found = resource.subresource(sub)
        verbs = found.verbs if found else ()
    if verb not in verbs:
        raise errors.method_not_supported(resource.group, resource.plural + (f"/{sub}" if sub else ""), verb)


async def handle_core(request: web.Request) -> web.StreamResponse:
    return await dispatch(request, request.app[CTX], "", request.match_info["version"],
                           request.match_info["rest"])


async def handle_group(request: web.Request) -> web.StreamResponse:
    return await dispatch(request, request.app[CTX], request.match_info["group"],
                           request.match_info["version"], request.match_info["rest"])


# The application's resource routes, ``/api/{version}/{rest:.+}`` and
# ``/apis/{group}/{version}/{rest:.+}``, as aiohttp's router matches them: on the path with
# ``%2F`` and ``%25`` still encoded, the parameters unquoted after the match.
_CORE_PATH = re.compile(r"/api/(?P<version>[^{}/]+)/(?P<rest>.+)")
_GROUP_PATH = re.compile(r"/apis/(?P<group>[^{}/]+)/(?P<version>[^{}/]+)/(?P<rest>.+)")


def _unquote(value: str) -> str:
    return value.replace("%2F", "/").replace("%25", "%") if "%" in value else value


def api_route(path_safe: str) -> tuple[str, str, str] | None:
    """(group, version, rest) of a path the resource routes take (``path_safe``: the URL's
    path as the router sees it), or None."""
    if path_safe.startswith("/api/"):
        match = _CORE_PATH.fullmatch(path_safe)
        if match is None:
            return None
        return "", _unquote(match["version"]), _unquote(match["rest"])
    if path_safe.startswith("/apis/"):
        match = _GROUP_PATH.fullmatch(path_safe)
        if match is None:
            return None
        return _unquote(match["group"]), _unquote(match["version"]), _unquote(match["rest"])
    return None


RequestHandler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


def direct_dispatch(ctx: ApiContext, application: RequestHandler,
                    bypass: frozenset[str]) -> RequestHandler:
    """The server's request handler: resource requests go straight to :func:`dispatch`
    (behind :func:`~pyk8s.apiserver.http.guarded`, as the middleware would put them), every
    other request to ``application`` (aiohttp's handling of the app: router, middleware).
    Every pod costs the server several requests, and aiohttp's route resolution,
    middleware chain and response signals were a tenth of its CPU per request. Groups in
    ``bypass`` have routes of their own and always take the application's way, as do
    requests with ``Expect`` (the application answers ``100-continue``)."""

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        route = api_route(request.rel_url.path_safe)
        if route is None or route[0] in bypass or hdrs.EXPECT in request.headers:
            return await application(request)
        return await guarded(request, dispatch, ctx, *route)

    return handle


async def dispatch(request: web.BaseRequest, ctx: ApiContext, group: str, version: str,
                    path: str) -> web.StreamResponse:
    target = resolve(ctx, group, version, path)
    method = request.method
    res, ns, name, sub = target.resource, target.namespace, target.name, target.subresource
    if sub in subresources.STREAMING:
        return await subresources.streaming(request, ctx, target)
    if method == "GET":
        negotiated = codec.negotiate(request.headers.get("Accept"))
        if not name:
            if target.watch or _flag(request, "watch"):
                _check_verb(res, "watch", "")
                return await serve_watch(request, ctx, res, ns, negotiated)
            _check_verb(res, "list", "")
            return await _list(request, ctx, res, ns, negotiated)
        if target.watch:
            _check_verb(res, "watch", "")
            return await serve_watch(request, ctx, res, ns, negotiated, name=name)
        _check_verb(res, "get", sub)
        if sub == "scale":
            return json_response(await subresources.get_scale(ctx, res, ns or "", name))
        obj = await rest.get(ctx, res, ns or "", name)
        return _object_response(request, res, obj, negotiated)
    if method == "POST":
        if name and not sub:
            raise errors.method_not_supported(res.group, res.plural, "create")
        if sub:
            _check_verb(res, "create", sub)
            body = await read_body(request)
            return await subresources.post(request, ctx, target, body, _dry_run(request))
        _check_verb(res, "create", "")
        body, fv = await _read_validated(request)
        body = validation.decode_body(res, body, fv)
        if not res.stored:
            return await subresources.virtual_create(request, ctx, res, ns or "", body)
        obj = await rest.create(ctx, res, ns or "", body, dry_run=_dry_run(request),
                                manager=_manager(request, "CreateOptions"))
        return _with_warnings(_object_response(request, res, obj, None, status=201), fv)
    if method == "PUT":
        if not name:
            raise errors.method_not_supported(res.group, res.plural, "update")
        _check_verb(res, "update", sub)
        body, fv = await _read_validated(request)
        dry = _dry_run(request)
        manager = _manager(request, "UpdateOptions")
        if sub == "scale":
            return json_response(await subresources.update_scale(ctx, res, ns or "", name, body,
                                                                 dry, manager))
        body = validation.decode_body(res, body, fv)
        if sub == "finalize":
            obj = await subresources.finalize_namespace(ctx, res, name, body, dry)
        else:
            obj = await rest.update(ctx, res, ns or "", name, body, subresource=sub, dry_run=dry,
                                    manager=manager)
        return _with_warnings(_object_response(request, res, obj, None), fv)
    if method == "PATCH":
        if not name:
            raise errors.method_not_supported(res.group, res.plural, "patch")
        _check_verb(res, "patch", sub)
        patch_type = codec.media_type(request.headers.get("Content-Type"))
        if patch_type not in codec.PATCH_TYPES:
            raise errors.unsupported_media_type(", ".join(codec.PATCH_TYPES))
        if patch_type == codec.APPLY_PATCH:
            manager = fieldmanager.require_apply_manager(request.query.get("fieldManager"))
        else:
            if "force" in request.query:
                raise fieldmanager.forbid_force()
            manager = _manager(request, "PatchOptions")
        body, fv = await _read_validated(request)
        obj, created = await subresources.patch_resource(
            ctx, res, ns or "", name, sub, patch_type, body,
            dry_run=_dry_run(request), force=_flag(request, "force"), field_validation=fv,
            manager=manager)
        if sub == "scale":
            return json_response(obj)
        return _with_warnings(
            _object_response(request, res, obj, None, status=201 if created else 200), fv)
    if method == "DELETE":
        options = await _delete_options(request)
        dry = _dry_run(request) or options.get("dryRun") == ["All"]
        if not name:
            _check_verb(res, "deletecollection", "")
            return await _delete_collection(request, ctx, res, ns, options, dry)
        _check_verb(res, "delete", sub)
        obj, _gone = await rest.delete(ctx, res, ns or "", name, options, dry_run=dry)
        return _object_response(request, res, obj, None)
    raise errors.ApiError(405, "MethodNotAllowed",
                          "the server does not allow this method on the requested resource")


async def _delete_options(request: web.Request) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if request.can_read_body:
        raw = await request.read()
        if raw.strip():
            body = codec.decode_body(raw, request.headers.get("Content-Type"))
            if not isinstance(body, dict):
                raise errors.bad_request("the body of a delete must be a DeleteOptions object")
            options.update(body)
    grace = _int_param(request, "gracePeriodSeconds")
    if grace is not None:
        options["gracePeriodSeconds"] = grace
    if "propagationPolicy" in request.query:
        options["propagationPolicy"] = request.query["propagationPolicy"]
    if "orphanDependents" in request.query:
        options["orphanDependents"] = _flag(request, "orphanDependents")
    return options


def _object_response(request: web.Request, res: Resource, obj: dict[str, Any],
                     negotiated: codec.Negotiated | None, status: int = 200) -> web.Response:
    if negotiated is None:
        negotiated = codec.negotiate(request.headers.get("Accept"))
    body, content_type = object_body(res, obj, negotiated, request.query.get("includeObject"))
    return raw_response(body, status=status, content_type=content_type)


def _list_query(request: web.Request, ns: str | None) -> listing.ListQuery:
    limit = _int_param(request, "limit") or 0
    return listing.ListQuery(
        namespace=ns,
        label_selector=request.query.get("labelSelector", ""),
        field_selector=request.query.get("fieldSelector", ""),
        limit=limit,
        continue_token=request.query.get("continue", ""),
        resource_version=request.query.get("resourceVersion"),
        resource_version_match=request.query.get("resourceVersionMatch", ""),
    )


async def _list(request: web.Request, ctx: ApiContext, res: Resource, ns: str | None,
                negotiated: codec.Negotiated) -> web.Response:
    page = await listing.list_objects(ctx, res, _list_query(request, ns))
    body, content_type = list_body(res, page, negotiated, request.query.get("includeObject"))
    return raw_response(body, content_type=content_type)


async def _delete_collection(request: web.Request, ctx: ApiContext, res: Resource,
                             ns: str | None, options: dict[str, Any], dry: bool) -> web.Response:
    query = _list_query(request, ns)
    query.limit = 0
    page = await listing.list_objects(ctx, res, query)
    deleted = []
    for cached in page.items:
        try:
            obj, _ = await rest.delete(ctx, res, cached.namespace, cached.name, options, dry_run=dry)
        except errors.ApiError as err:
            if err.code == 404:
                continue
            raise
        deleted.append(obj)
    body = {"kind": res.list_kind, "apiVersion": res.api_version,
            "metadata": {"resourceVersion": str(ctx.cache.revision)}, "items": deleted}
    return raw_response(orjson.dumps(body))
