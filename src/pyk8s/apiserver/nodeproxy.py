"""Subresources served by a node: the API server proxies them to the pod's kubelet.

``pods/log`` is answered by the node server of the node the pod runs on, found from the
Node object (an InternalIP, else a Hostname address, and ``daemonEndpoints.kubeletEndpoint``),
as upstream's API server does. The API server checks what it can itself first (the pod is
bound, the container exists and has started) so that those errors read as upstream's.
"""

from __future__ import annotations

import contextlib
from typing import Any

import aiohttp
from aiohttp import web

from pyk8s.apiserver import rest
from pyk8s.apiserver.context import ApiContext
from pyk8s.machinery import errors
from pyk8s.machinery.resources import CATALOGUE, Resource

NODES = CATALOGUE.resource("v1", "nodes")
LOG_PARAMS = ("follow", "tailLines", "timestamps", "previous", "sinceSeconds", "sinceTime",
              "limitBytes")
DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"


def pick_container(pod: dict[str, Any], requested: str) -> str:
    name = pod["metadata"]["name"]
    spec = pod.get("spec") or {}
    names = [c.get("name") for c in (spec.get("containers") or [])]
    others = [c.get("name") for key in ("initContainers", "ephemeralContainers")
              for c in (spec.get(key) or [])]
    if requested:
        if requested not in names and requested not in others:
            raise errors.bad_request(f"container {requested} is not valid for pod {name}")
        return requested
    default = (pod["metadata"].get("annotations") or {}).get(DEFAULT_CONTAINER_ANNOTATION)
    if default in names:
        return str(default)
    if len(names) == 1:
        return str(names[0])
    raise errors.bad_request(
        f"a container name must be specified for pod {name}, choose one of: [{' '.join(map(str, names))}]")


def _waiting_reason(pod: dict[str, Any], container: str) -> str | None:
    """Why a container has no logs yet, or None when it has started at some point."""
    status = pod.get("status") or {}
    for key in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"):
        for cs in status.get(key) or []:
            if cs.get("name") != container:
                continue
            state = cs.get("state") or {}
            if "waiting" in state and not cs.get("lastState", {}).get("terminated") \
                    and not cs.get("restartCount"):
                return str(state["waiting"].get("reason") or "ContainerCreating")
            return None
    return "ContainerCreating"


def node_endpoint(node: dict[str, Any]) -> tuple[str, int]:
    status = node.get("status") or {}
    addresses = status.get("addresses") or []
    address = ""
    for kind in ("InternalIP", "ExternalIP", "Hostname"):
        address = next((a.get("address", "") for a in addresses if a.get("type") == kind), "")
        if address:
            break
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port") or 10250
    if not address:
        name = node["metadata"]["name"]
        raise errors.ApiError(503, "ServiceUnavailable", f"node {name} reports no address")
    return address, int(port)


async def pod_logs(request: web.Request, ctx: ApiContext, pods: Resource, namespace: str,
                   name: str) -> web.StreamResponse:
    pod = await rest.get(ctx, pods, namespace, name)
    container = pick_container(pod, request.query.get("container", ""))
    node_name = (pod.get("spec") or {}).get("nodeName")
    reason = _waiting_reason(pod, container)
    if reason is not None or not node_name:
        raise errors.bad_request(
            f'container "{container}" in pod "{name}" is waiting to start: {reason or "ContainerCreating"}')
    node = await rest.get(ctx, NODES, "", node_name)
    host, port = node_endpoint(node)
    params = {k: request.query[k] for k in LOG_PARAMS if k in request.query}
    url = f"{ctx.settings.kubelet_scheme}://{host}:{port}/containerLogs/{namespace}/{name}/{container}"
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=5)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session, \
                session.get(url, params=params) as upstream:
            if upstream.status != 200:
                text = (await upstream.text())[:1000].strip()
                code = upstream.status if upstream.status in (400, 404) else 500
                reason_text = {400: "BadRequest", 404: "NotFound"}.get(code, "InternalError")
                raise errors.ApiError(code, reason_text, text or f"node {node_name} answered {upstream.status}")
            response = web.StreamResponse(headers={"Content-Type": "text/plain"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            with contextlib.suppress(ConnectionResetError):
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            return response
    except (aiohttp.ClientError, OSError) as exc:
        raise errors.ApiError(
            503, "ServiceUnavailable",
            f"unable to reach node {node_name} at {host}:{port}: {type(exc).__name__}") from None
