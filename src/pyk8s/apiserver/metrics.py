"""``metrics.k8s.io/v1beta1`` (upstream: metrics-server, an aggregated API), served by the
API server itself from the kubelets' ``/stats/summary``, so ``kubectl top`` works.

metrics-server scrapes every node periodically and answers from memory; here nodes are asked
on demand, concurrently, each with a short timeout, for the nodes a request concerns (all of
them for ``nodes``; those running the selected pods for ``pods``). A node that does not answer
is left out, as metrics-server leaves out what it could not scrape. Quantities are written as
metrics-server writes them: CPU in nanocores (``"1234n"``), memory in KiB (``"5678Ki"``).
Nothing is stored; the resources are read-only (``get``, ``list``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
from aiohttp import web

from pyk8s.apiserver import listing, nodeproxy
from pyk8s.apiserver.handlers import CTX
from pyk8s.apiserver.http import json_response
from pyk8s.apiserver.listing import ListQuery
from pyk8s.machinery import errors
from pyk8s.machinery.meta import now_rfc3339
from pyk8s.machinery.resources import CATALOGUE, Catalogue, Resource

log = logging.getLogger("pyk8s.apiserver.metrics")

GROUP, VERSION = "metrics.k8s.io", "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"
READ_ONLY = ("get", "list")
NODE_METRICS = Resource(GROUP, VERSION, "NodeMetrics", "nodes", False, verbs=READ_ONLY,
                        stored=False)
POD_METRICS = Resource(GROUP, VERSION, "PodMetrics", "pods", True, verbs=READ_ONLY,
                       stored=False)
RESOURCES = (NODE_METRICS, POD_METRICS)
NODES = CATALOGUE.resource("v1", "nodes")
PODS = CATALOGUE.resource("v1", "pods")
SCRAPE_TIMEOUT = 5.0
DEFAULT_WINDOW = 10.0


def with_metrics(catalogue: Catalogue) -> Catalogue:
    """The catalogue discovery shows: the built-in resources plus these."""
    return Catalogue((*catalogue.resources, *RESOURCES))


def _cpu(block: dict[str, Any]) -> str:
    return f"{int(block.get('usageNanoCores') or 0)}n"


def _memory(block: dict[str, Any]) -> str:
    return f"{int(block.get('workingSetBytes') or 0) // 1024}Ki"


def _window(block: dict[str, Any]) -> str:
    seconds = float(block.get("windowSeconds") or DEFAULT_WINDOW)
    return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"


def _meta(obj: dict[str, Any], namespaced: bool) -> dict[str, Any]:
    source = obj.get("metadata") or {}
    meta: dict[str, Any] = {"name": source.get("name", ""), "creationTimestamp": now_rfc3339()}
    if namespaced:
        meta["namespace"] = source.get("namespace", "")
    if source.get("labels"):
        meta["labels"] = source["labels"]
    return meta


async def _summaries(request: web.Request, nodes: list[dict[str, Any]]
                     ) -> dict[str, dict[str, Any]]:
    """node name → its ``/stats/summary``, for the nodes that answered in time."""
    ctx = request.app[CTX]
    timeout = aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT)

    async def one(session: aiohttp.ClientSession, node: dict[str, Any]
                  ) -> tuple[str, dict[str, Any] | None]:
        name = node["metadata"]["name"]
        try:
            host, port = nodeproxy.node_endpoint(node)
            url = f"{ctx.settings.kubelet_scheme}://{host}:{port}/stats/summary"
            async with session.get(url) as response:
                if response.status != 200:
                    log.info("metrics scrape failed node=%s status=%d", name, response.status)
                    return name, None
                return name, await response.json()
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError, errors.ApiError) as exc:
            log.info("metrics scrape failed node=%s error=%s", name, type(exc).__name__)
            return name, None

    async with nodeproxy.kubelet_session(ctx, timeout) as session:
        results = await asyncio.gather(*(one(session, n) for n in nodes))
    return {name: summary for name, summary in results if summary is not None}


async def _list(request: web.Request, resource: Resource, namespace: str | None
                ) -> list[dict[str, Any]]:
    ctx = request.app[CTX]
    query = ListQuery(namespace, label_selector=request.query.get("labelSelector", ""),
                      field_selector=request.query.get("fieldSelector", ""))
    page = await listing.list_objects(ctx, resource, query)
    return [item.load() for item in page.items]


def _node_metrics(node: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    stats = summary.get("node") or {}
    cpu, memory = stats.get("cpu") or {}, stats.get("memory") or {}
    return {"kind": "NodeMetrics", "apiVersion": API_VERSION, "metadata": _meta(node, False),
            "timestamp": cpu.get("time") or now_rfc3339(), "window": _window(cpu),
            "usage": {"cpu": _cpu(cpu), "memory": _memory(memory)}}


def _pod_metrics(pod: dict[str, Any], stats: dict[str, Any]) -> dict[str, Any]:
    containers = stats.get("containers") or []
    first_cpu = (containers[0].get("cpu") or {}) if containers else {}
    return {"kind": "PodMetrics", "apiVersion": API_VERSION, "metadata": _meta(pod, True),
            "timestamp": first_cpu.get("time") or now_rfc3339(), "window": _window(first_cpu),
            "containers": [{"name": c.get("name", ""),
                            "usage": {"cpu": _cpu(c.get("cpu") or {}),
                                      "memory": _memory(c.get("memory") or {})}}
                           for c in containers]}


def _list_body(kind: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"kind": kind, "apiVersion": API_VERSION, "metadata": {}, "items": items}


async def node_metrics(request: web.Request) -> web.Response:
    name = request.match_info.get("name")
    nodes = await _list(request, NODES, None)
    if name is not None:
        nodes = [n for n in nodes if n["metadata"]["name"] == name]
    summaries = await _summaries(request, nodes)
    items = [_node_metrics(n, summaries[n["metadata"]["name"]]) for n in nodes
             if n["metadata"]["name"] in summaries]
    if name is None:
        return json_response(_list_body("NodeMetricsList", items))
    if not items:
        raise errors.not_found(GROUP, "nodemetrics", name)
    return json_response(items[0])


async def pod_metrics(request: web.Request) -> web.Response:
    namespace = request.match_info.get("namespace")
    name = request.match_info.get("name")
    pods = [p for p in await _list(request, PODS, namespace)
            if (p.get("spec") or {}).get("nodeName")
            and (p.get("status") or {}).get("phase") == "Running"]
    if name is not None:
        pods = [p for p in pods if p["metadata"]["name"] == name]
    wanted = {p["spec"]["nodeName"] for p in pods}
    nodes = [n for n in await _list_all_nodes(request) if n["metadata"]["name"] in wanted]
    stats: dict[str, dict[str, Any]] = {}
    for summary in (await _summaries(request, nodes)).values():
        for entry in summary.get("pods") or []:
            ref = entry.get("podRef") or {}
            stats[ref.get("uid", "")] = entry
    items = [_pod_metrics(p, stats[p["metadata"]["uid"]]) for p in pods
             if p["metadata"].get("uid") in stats]
    if name is None:
        return json_response(_list_body("PodMetricsList", items))
    if not items:
        raise errors.not_found(GROUP, "podmetrics", name)
    return json_response(items[0])


async def _list_all_nodes(request: web.Request) -> list[dict[str, Any]]:
    page = await listing.list_objects(request.app[CTX], NODES, ListQuery(None))
    return [item.load() for item in page.items]


def add_routes(router: web.UrlDispatcher) -> None:
    """Before the generic ``/apis/{group}/{version}/...`` route, which would not find these."""
    base = f"/apis/{GROUP}/{VERSION}"
    router.add_get(f"{base}/nodes", node_metrics)
    router.add_get(f"{base}/nodes/{{name}}", node_metrics)
    router.add_get(f"{base}/pods", pod_metrics)
    router.add_get(f"{base}/namespaces/{{namespace}}/pods", pod_metrics)
    router.add_get(f"{base}/namespaces/{{namespace}}/pods/{{name}}", pod_metrics)
