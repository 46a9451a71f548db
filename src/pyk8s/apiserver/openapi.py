"""A first ``/openapi/v3``: operations without schemas.

kubectl's apply, ``create -f`` and ``replace -f`` refuse to run unless the group-version
document has, for the object's kind, a PATCH operation tagged with its group-version-kind
and listing a ``fieldValidation`` parameter; then they leave validation to the server.
Schemas are deliberately left out: a partial schema makes kubectl print warnings, while
none makes it use its compiled-in types. The full definitions come with the API-fidelity
work. ``/openapi/v2`` is answered 404, which kubectl tolerates.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from aiohttp import web

from pyk8s.apiserver.http import json_response, raw_response
from pyk8s.machinery.resources import Catalogue, Resource

_WRITE_PARAMS = [
    {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
    {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
    {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
]
_PATCH_PARAMS = [*_WRITE_PARAMS,
                 {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": True}}]


def _gvk(r: Resource) -> dict[str, str]:
    return {"group": r.group, "version": r.version, "kind": r.kind}


def _op(r: Resource, action: str, op_id: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "operationId": op_id,
        "parameters": params,
        "responses": {"200": {"description": "OK"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": _gvk(r),
    }


def _paths(gv_prefix: str, resources: list[Resource]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for r in resources:
        base = f"{gv_prefix}/namespaces/{{namespace}}/{r.plural}" if r.namespaced else f"{gv_prefix}/{r.plural}"
        name = r.kind
        collection: dict[str, Any] = {}
        if "list" in r.verbs:
            collection["get"] = _op(r, "list", f"list{name}", [])
        if "create" in r.verbs:
            collection["post"] = _op(r, "post", f"create{name}", list(_WRITE_PARAMS))
        if collection:
            paths[base] = collection
        if "get" in r.verbs:
            paths[f"{base}/{{name}}"] = {
                "get": _op(r, "get", f"read{name}", []),
                "put": _op(r, "put", f"replace{name}", list(_WRITE_PARAMS)),
                "patch": _op(r, "patch", f"patch{name}", list(_PATCH_PARAMS)),
                "delete": _op(r, "delete", f"delete{name}", [
                    {"name": "dryRun", "in": "query", "schema": {"type": "string"}}]),
            }
    return paths


class OpenAPI:
    def __init__(self, catalogue: Catalogue) -> None:
        self._docs: dict[str, bytes] = {}
        for group, versions in catalogue.group_versions.items():
            for version in versions:
                key = f"apis/{group}/{version}" if group else f"api/{version}"
                prefix = "/" + key
                doc = {
                    "openapi": "3.0.0",
                    "info": {"title": "Kubernetes", "version": "v1.32.4"},
                    "paths": _paths(prefix, catalogue.in_group_version(group, version)),
                    "components": {"schemas": {}},
                }
                self._docs[key] = orjson.dumps(doc)
        self._index = {"paths": {
            key: {"serverRelativeURL": f"/openapi/v3/{key}?hash={hashlib.sha256(body).hexdigest()[:32].upper()}"}
            for key, body in self._docs.items()
        }}

    async def index(self, request: web.Request) -> web.Response:
        return json_response(self._index)

    async def document(self, request: web.Request) -> web.Response:
        key = request.match_info["path"].strip("/")
        body = self._docs.get(key)
        if body is None:
            raise web.HTTPNotFound()
        return raw_response(body)
