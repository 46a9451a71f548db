"""``/openapi/v3`` (index and per group-version documents) and ``/openapi/v2``.

kubectl's apply, ``create -f`` and ``replace -f`` need, in the group-version document, a
PATCH operation tagged with the object's group-version-kind and listing a ``fieldValidation``
parameter; then they leave validation to the server. ``kubectl explain`` finds the kind
through the same tags and prints the schema from ``components.schemas``; client-side apply
builds its strategic merge patch from the patch extensions there. Schemas are therefore
either absent or complete, never partial: they come from the official definitions
(:mod:`pyk8s.machinery.schema`), with every type a document refers to included.

Documents are built on first request and kept as bytes. The index's ``hash`` depends only
on the catalogue (the definitions are fixed for a build), so it is computed without
building any document. ``/openapi/v2`` is served as JSON to clients that accept JSON; the
protobuf form kubectl asks for is answered 404, which makes kubectl use its compiled-in
types, as it does against any server without v2.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import orjson
from aiohttp import web

from pyk8s.apiserver.http import json_response, raw_response
from pyk8s.machinery import errors
from pyk8s.machinery.resources import Catalogue, Resource
from pyk8s.machinery.schema import definitions as schema_defs
from pyk8s.machinery.schema.openapi import V2_REF, V3_REF, v2_definitions, v3_schemas

_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
_SHARED = [_META + "Status", _META + "DeleteOptions", _META + "Patch", _META + "WatchEvent"]
_JSON_TYPES = ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"]
_PATCH_TYPES = ["application/apply-patch+yaml", "application/json-patch+json",
                "application/merge-patch+json", "application/strategic-merge-patch+json"]


def _query(name: str, kind: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": {"type": kind, "uniqueItems": True}}


_WRITE_PARAMS = [_query("dryRun"), _query("fieldManager"), _query("fieldValidation")]
_PATCH_PARAMS = [*_WRITE_PARAMS, _query("force", "boolean")]
_LIST_PARAMS = [_query(n) for n in ("continue", "fieldSelector", "labelSelector",
                                    "resourceVersion", "resourceVersionMatch")] + [
    _query("limit", "integer"), _query("timeoutSeconds", "integer"),
    _query("watch", "boolean"), _query("allowWatchBookmarks", "boolean")]
_DELETE_PARAMS = [_query("dryRun"), _query("gracePeriodSeconds", "integer"),
                  _query("propagationPolicy")]


def _definition(defs: schema_defs.Definitions, group: str, version: str, kind: str) -> str | None:
    return defs.by_gvk(group, version, kind)


class _Op:
    """One operation, rendered for v3 or v2."""

    def __init__(self, gvk: dict[str, str], action: str, op_id: str, params: list[dict[str, Any]],
                 response: str | None, body: str | None = None,
                 body_types: list[str] | None = None) -> None:
        self.gvk, self.action, self.op_id, self.params = gvk, action, op_id, params
        self.response, self.body, self.body_types = response, body, body_types or _JSON_TYPES

    def v3(self) -> dict[str, Any]:
        op: dict[str, Any] = {"operationId": self.op_id, "parameters": self.params}
        if self.body:
            op["requestBody"] = {"content": {
                t: {"schema": {"$ref": V3_REF + self.body}} for t in self.body_types},
                "required": True}
        content = ({t: {"schema": {"$ref": V3_REF + self.response}} for t in _JSON_TYPES}
                   if self.response else {})
        op["responses"] = {"200": {"description": "OK", "content": content}}
        op["x-kubernetes-action"] = self.action
        op["x-kubernetes-group-version-kind"] = self.gvk
        return op

    def v2(self) -> dict[str, Any]:
        params = [{"name": p["name"], "in": "query", "type": p["schema"]["type"],
                   "uniqueItems": True} for p in self.params]
        if self.body:
            params.append({"name": "body", "in": "body", "required": True,
                           "schema": {"$ref": V2_REF + self.body}})
        response: dict[str, Any] = {"description": "OK"}
        if self.response:
            response["schema"] = {"$ref": V2_REF + self.response}
        return {"operationId": self.op_id, "consumes": self.body_types if self.body else ["*/*"],
                "produces": _JSON_TYPES, "parameters": params,
                "responses": {"200": response}, "x-kubernetes-action": self.action,
                "x-kubernetes-group-version-kind": self.gvk}


def _operations(defs: schema_defs.Definitions, prefix: str,
                resources: list[Resource]) -> tuple[dict[str, dict[str, _Op]], list[str]]:
    """Paths → method → operation, and the definitions they refer to."""
    paths: dict[str, dict[str, _Op]] = {}
    roots: list[str] = list(_SHARED)
    for r in resources:
        gvk = {"group": r.group, "version": r.version, "kind": r.kind}
        kind_def = _definition(defs, r.group, r.version, r.kind)
        list_def = _definition(defs, r.group, r.version, r.list_kind)
        roots += [d for d in (kind_def, list_def) if d]
        base = f"{prefix}/namespaces/{{namespace}}/{r.plural}" if r.namespaced else f"{prefix}/{r.plural}"
        name = r.kind + ("Namespaced" if r.namespaced else "")
        collection: dict[str, _Op] = {}
        if "list" in r.verbs:
            collection["get"] = _Op(gvk, "list", f"list{name}", _LIST_PARAMS, list_def)
        if "create" in r.verbs:
            collection["post"] = _Op(gvk, "post", f"create{name}", _WRITE_PARAMS, kind_def, kind_def)
        if collection:
            paths[base] = collection
        if "get" in r.verbs:
            paths[f"{base}/{{name}}"] = {
                "get": _Op(gvk, "get", f"read{name}", [], kind_def),
                "put": _Op(gvk, "put", f"replace{name}", _WRITE_PARAMS, kind_def, kind_def),
                "patch": _Op(gvk, "patch", f"patch{name}", _PATCH_PARAMS, kind_def,
                             _META + "Patch", _PATCH_TYPES),
                "delete": _Op(gvk, "delete", f"delete{name}", _DELETE_PARAMS, _META + "Status",
                              _META + "DeleteOptions"),
            }
        for sub in r.subresources:
            if sub.name not in ("status", "scale"):
                continue
            sub_gvk = {"group": sub.group if sub.version else r.group,
                       "version": sub.version or r.version, "kind": sub.kind}
            sub_def = _definition(defs, sub_gvk["group"], sub_gvk["version"], sub.kind)
            if sub_def:
                roots.append(sub_def)
            title = f"{r.kind}{sub.name.capitalize()}" + ("Namespaced" if r.namespaced else "")
            ops: dict[str, _Op] = {"get": _Op(sub_gvk, "get", f"read{title}", [], sub_def)}
            if "update" in sub.verbs:
                ops["put"] = _Op(sub_gvk, "put", f"replace{title}", _WRITE_PARAMS, sub_def, sub_def)
            if "patch" in sub.verbs:
                ops["patch"] = _Op(sub_gvk, "patch", f"patch{title}", _PATCH_PARAMS, sub_def,
                                   _META + "Patch", _PATCH_TYPES)
            paths[f"{base}/{{name}}/{sub.name}"] = ops
    return paths, roots


def _path_params(path: str) -> list[dict[str, Any]]:
    return [{"name": p, "in": "path", "required": True, "schema": {"type": "string", "uniqueItems": True}}
            for p in ("name", "namespace") if f"{{{p}}}" in path]


class OpenAPI:
    def __init__(self, catalogue: Catalogue) -> None:
        self._catalogue = catalogue
        self._groups: dict[str, tuple[str, str]] = {}
        for group, versions in catalogue.group_versions.items():
            for version in versions:
                key = f"apis/{group}/{version}" if group else f"api/{version}"
                self._groups[key] = (group, version)
        self._docs: dict[str, bytes] = {}
        self._v2: bytes | None = None
        self._lock = threading.Lock()
        self._index = {"paths": {
            key: {"serverRelativeURL": f"/openapi/v3/{key}?hash={self._hash(key)}"}
            for key in self._groups
        }}

    def _hash(self, key: str) -> str:
        group, version = self._groups[key]
        shape = [(r.kind, r.plural, r.namespaced, r.verbs, [s.name for s in r.subresources])
                 for r in self._catalogue.in_group_version(group, version)]
        text = orjson.dumps([schema_defs.KUBERNETES_VERSION, key, shape])
        return hashlib.sha256(text).hexdigest()[:32].upper()

    def document_for(self, key: str) -> bytes | None:
        """The v3 document of one group-version (``api/v1``, ``apis/apps/v1``), or None."""
        body = self._docs.get(key)
        if body is not None or key not in self._groups:
            return body
        group, version = self._groups[key]
        defs = schema_defs.get()
        ops, roots = _operations(defs, "/" + key, self._catalogue.in_group_version(group, version))
        paths = {path: {"parameters": _path_params(path), **{m: op.v3() for m, op in methods.items()}}
                 for path, methods in ops.items()}
        doc = {
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": schema_defs.KUBERNETES_VERSION},
            "paths": paths,
            "components": {"schemas": v3_schemas(defs, defs.closure(roots))},
        }
        body = orjson.dumps(doc)
        with self._lock:
            self._docs[key] = body
        return body

    def v2_document(self) -> bytes:
        if self._v2 is not None:
            return self._v2
        defs = schema_defs.get()
        paths: dict[str, Any] = {}
        roots: list[str] = []
        for key, (group, version) in self._groups.items():
            ops, gv_roots = _operations(defs, "/" + key,
                                        self._catalogue.in_group_version(group, version))
            roots += gv_roots
            for path, methods in ops.items():
                params = [{"name": p["name"], "in": "path", "required": True, "type": "string",
                           "uniqueItems": True} for p in _path_params(path)]
                paths[path] = {"parameters": params, **{m: op.v2() for m, op in methods.items()}}
        doc = {
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": schema_defs.KUBERNETES_VERSION},
            "paths": paths,
            "definitions": v2_definitions(defs, defs.closure(roots)),
        }
        self._v2 = orjson.dumps(doc)
        return self._v2

    async def index(self, request: web.Request) -> web.Response:
        return json_response(self._index)

    async def document(self, request: web.Request) -> web.Response:
        key = request.match_info["path"].strip("/")
        body = self.document_for(key)
        if body is None:
            raise web.HTTPNotFound()
        return raw_response(body)

    async def v2(self, request: web.Request) -> web.Response:
        accept = request.headers.get("Accept", "")
        if accept and not any(t in accept for t in ("json", "*/*")):
            # kubectl asks for protobuf only; 404 makes it use its built-in types.
            raise errors.ApiError(404, "NotFound",
                                  "the server could not find the requested resource", details={})
        return raw_response(self.v2_document())
