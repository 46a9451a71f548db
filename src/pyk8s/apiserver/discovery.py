"""Discovery: ``/api``, ``/apis`` (aggregated v2 or legacy), per-group and per-GV lists.

kubectl uses the aggregated form only when the response's Content-Type names it exactly;
everything is computed once from the catalogue at start.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pyk8s.apiserver.http import json_response
from pyk8s.machinery.resources import Catalogue, Resource

AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"


def _wants_aggregated(accept: str) -> str:
    for part in accept.split(","):
        compact = part.replace(" ", "").lower()
        if "as=apigroupdiscoverylist" in compact and "g=apidiscovery.k8s.io" in compact:
            if "v=v2beta1" in compact:
                return AGGREGATED_V2BETA1
            if "v=v2" in compact:
                return AGGREGATED_V2
    return ""


def _aggregated_resource(r: Resource) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": "Namespaced" if r.namespaced else "Cluster",
        "singularResource": r.singular_name,
        "verbs": list(r.verbs),
    }
    if r.short_names:
        entry["shortNames"] = list(r.short_names)
    if r.categories:
        entry["categories"] = list(r.categories)
    if r.subresources:
        entry["subresources"] = [{
            "subresource": s.name,
            "responseKind": {"group": s.group or r.group, "version": s.version or r.version,
                             "kind": s.kind},
            "verbs": list(s.verbs),
        } for s in r.subresources]
    return entry


def _legacy_resources(rs: list[Resource]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for r in rs:
        entry: dict[str, Any] = {
            "name": r.plural, "singularName": r.singular_name, "namespaced": r.namespaced,
            "kind": r.kind, "verbs": list(r.verbs),
        }
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.categories:
            entry["categories"] = list(r.categories)
        out.append(entry)
        for s in r.subresources:
            sub: dict[str, Any] = {"name": f"{r.plural}/{s.name}", "singularName": "",
                                   "namespaced": r.namespaced, "kind": s.kind,
                                   "verbs": list(s.verbs)}
            if s.group:
                sub["group"] = s.group
                sub["version"] = s.version
            out.append(sub)
    return out


class Discovery:
    def __init__(self, catalogue: Catalogue, server_address: str) -> None:
        self.catalogue = catalogue
        self.server_address = server_address
        groups = [g for g in catalogue.group_versions if g]
        self._aggregated_core = self._aggregated([""])
        self._aggregated_groups = self._aggregated(groups)
        self._group_list = {
            "kind": "APIGroupList", "apiVersion": "v1",
            "groups": [self._group(g) for g in groups],
        }

    def _aggregated(self, groups: list[str]) -> dict[str, Any]:
        items = []
        for group in groups:
            versions = [{
                "version": v, "freshness": "Current",
                "resources": [_aggregated_resource(r) for r in self.catalogue.in_group_version(group, v)],
            } for v in self.catalogue.group_versions[group]]
            items.append({"metadata": {"name": group, "creationTimestamp": None}, "versions": versions})
        return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
                "metadata": {}, "items": items}

    def _group(self, group: str) -> dict[str, Any]:
        versions = [{"groupVersion": f"{group}/{v}", "version": v}
                    for v in self.catalogue.group_versions[group]]
        return {"name": group, "versions": versions, "preferredVersion": versions[0]}

    def _answer(self, request: web.Request, aggregated: dict[str, Any], legacy: dict[str, Any]) -> web.Response:
        content_type = _wants_aggregated(request.headers.get("Accept", ""))
        if content_type:
            body = dict(aggregated)
            if content_type == AGGREGATED_V2BETA1:
                body["apiVersion"] = "apidiscovery.k8s.io/v2beta1"
            return json_response(body, content_type=content_type)
        return json_response(legacy)

    async def api(self, request: web.Request) -> web.Response:
        legacy = {"kind": "APIVersions", "versions": ["v1"],
                  "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                                  "serverAddress": self.server_address}]}
        return self._answer(request, self._aggregated_core, legacy)

    async def apis(self, request: web.Request) -> web.Response:
        return self._answer(request, self._aggregated_groups, self._group_list)

    async def group(self, request: web.Request) -> web.Response:
        group = request.match_info["group"]
        if group not in self.catalogue.group_versions or not group:
            raise web.HTTPNotFound()
        body = {"kind": "APIGroup", "apiVersion": "v1", **self._group(group)}
        return json_response(body)

    async def group_version(self, request: web.Request) -> web.Response:
        group = request.match_info.get("group", "")
        version = request.match_info["version"]
        resources = self.catalogue.in_group_version(group, version)
        if not resources:
            raise web.HTTPNotFound()
        body = {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": f"{group}/{version}" if group else version,
                "resources": _legacy_resources(resources)}
        return json_response(body)
