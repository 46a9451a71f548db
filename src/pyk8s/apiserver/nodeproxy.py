"""Subresources served by a node: the API server proxies them to the pod's kubelet.

``pods/exec`` is a WebSocket (``v5.channel.k8s.io``, what kubectl 1.32 asks for first) relayed
message by message between kubectl and the kubelet's exec endpoint; the channel framing is
the kubelet's business. ``pods/log`` is answered by the node server of the node the pod runs on, found from the
Node object (an InternalIP, else a Hostname address, and ``daemonEndpoints.kubeletEndpoint``),
as upstream's API server does. The API server checks what it can itself first (the pod is
bound, the container exists and has started) so that those errors read as upstream's.
"""

from __future__ import annotations

import asyncio
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


EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")


def _exec_query(request: web.Request, container: str) -> list[tuple[str, str]]:
    commands = request.query.getall("command", [])
    if not commands:
        raise errors.bad_request("you must specify at least 1 command")
    flags = {"input": "stdin", "output": "stdout", "error": "stderr", "tty": "tty"}
    query = [("command", c) for c in commands]
    for ours, theirs in flags.items():
        if request.query.get(theirs, "").lower() in ("1", "true"):
            query.append((ours, "1"))
    query.append(("container", container))
    return query


async def pod_exec(request: web.Request, ctx: ApiContext, pods: Resource, namespace: str,
                   name: str) -> web.StreamResponse:
    pod = await rest.get(ctx, pods, namespace, name)
    container = pick_container(pod, request.query.get("container", ""))
    phase = (pod.get("status") or {}).get("phase")
    if phase in ("Succeeded", "Failed"):
        raise errors.bad_request(f"cannot exec into a container in a completed pod; current phase is {phase}")
    node_name = (pod.get("spec") or {}).get("nodeName")
    if not node_name or _waiting_reason(pod, container) is not None:
        raise errors.bad_request(f'container "{container}" in pod "{name}" is waiting to start')
    if request.headers.get("Upgrade", "").lower() != "websocket":
        # kubectl falls back to SPDY when the WebSocket upgrade fails; that transport is not
        # served, and this Status is what it then prints.
        raise errors.bad_request("exec needs a WebSocket upgrade (v5.channel.k8s.io); SPDY is not supported")
    host, port = node_endpoint(await rest.get(ctx, NODES, "", node_name))
    scheme = "wss" if ctx.settings.kubelet_scheme == "https" else "ws"
    url = f"{scheme}://{host}:{port}/exec/{namespace}/{name}/{container}"
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
    protocols = tuple(p for p in offered if p in EXEC_PROTOCOLS) or EXEC_PROTOCOLS[:1]
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=5))
    try:
        try:
            upstream = await session.ws_connect(url, params=_exec_query(request, container),
                                                protocols=protocols, heartbeat=None)
        except aiohttp.WSServerHandshakeError as exc:
            raise errors.bad_request(f"node {node_name} refused exec: {exc.message}") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise errors.ApiError(503, "ServiceUnavailable",
                                  f"unable to reach node {node_name} at {host}:{port}: {type(exc).__name__}") from None
        client = web.WebSocketResponse(protocols=(upstream.protocol or protocols[0],),
                                       autoping=True, max_msg_size=0)
        await client.prepare(request)
        await _relay(client, upstream)
        return client
    finally:
        await session.close()


async def _relay(client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse) -> None:
    """Copy messages both ways until either side closes, then close the other."""
    async def down() -> None:
        async for msg in upstream:
            if msg.type == aiohttp.WSMsgType.BINARY:
                await client.send_bytes(msg.data)
            elif msg.type == aiohttp.WSMsgType.TEXT:
                await client.send_str(msg.data)
            else:
                break

    async def up() -> None:
        async for msg in client:
            if msg.type == aiohttp.WSMsgType.BINARY:
                await upstream.send_bytes(msg.data)
            elif msg.type == aiohttp.WSMsgType.TEXT:
                await upstream.send_str(msg.data)
            else:
                break

    tasks = [asyncio.create_task(down()), asyncio.create_task(up())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, ConnectionResetError, aiohttp.ClientError):
                await task
        with contextlib.suppress(ConnectionResetError, aiohttp.ClientError):
            await upstream.close()
        with contextlib.suppress(ConnectionResetError):
            await client.close()
