"""The node server (upstream: the kubelet's port 10250), what the API server proxies to.

``GET /containerLogs/{namespace}/{pod}/{container}`` with ``follow``, ``tailLines``,
``timestamps``, ``previous``, ``sinceSeconds``, ``sinceTime`` and ``limitBytes``, answered
as upstream's kubelet does (plain text, streamed when following). ``/exec/..`` and
``/attach/{namespace}/{pod}/{container}`` stream over WebSocket or SPDY/3.1
(:mod:`streaming`; attach through the runtime's ``attach``, with the container's stdin);
``/portForward/{namespace}/{pod}`` carries SPDY/3.1 in a WebSocket (:mod:`portforward`);
``/stats/summary`` reports resource usage (:mod:`stats`); ``/healthz`` answers ``ok``;
``/pods`` lists the pods this node runs; ``/configz`` shows the kubelet's settings in the
``KubeletConfiguration`` spelling. The API server's ``nodes/{name}/proxy`` reaches all of
these.

HTTPS only, with client-certificate authentication when a client CA is configured
(:mod:`tls`).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from pyk8s.kubelet.logs import LogOptions, follow_log
from pyk8s.kubelet.portforward import serve_port_forward
from pyk8s.kubelet.stats import StatsProvider
from pyk8s.kubelet.status import latest_by_name
from pyk8s.kubelet.streaming import serve_attach, serve_exec
from pyk8s.kubelet.tls import authorizer, serving_context
from pyk8s.machinery.meta import parse_rfc3339
from pyk8s.runtime import ContainerState, ContainerStatus, SandboxState

if TYPE_CHECKING:
    from pyk8s.kubelet.kubelet import Kubelet

log = logging.getLogger("pyk8s.kubelet.server")


def _int(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"invalid {name}: {raw!r}") from None


def _bool(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "yes")


def make_app(kubelet: Kubelet) -> web.Application:
    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def pods(request: web.Request) -> web.Response:
        items = kubelet.informer.list() if kubelet.informer is not None else []
        return web.json_response({"kind": "PodList", "apiVersion": "v1", "metadata": {},
                                  "items": items})

    async def container_logs(request: web.Request) -> web.StreamResponse:
        ns, name = request.match_info["namespace"], request.match_info["pod"]
        container = request.match_info["container"]
        pod = kubelet.informer.get(f"{ns}/{name}") if kubelet.informer is not None else None
        if pod is None:
            raise web.HTTPNotFound(text=f'pod "{name}" not found')
        uid = pod["metadata"]["uid"]
        runtime = kubelet.runtime
        sandboxes = [sb.id for sb in await runtime.list_pod_sandboxes()
                     if sb.config.pod_uid == uid]
        containers = [c for sb in sandboxes for c in await runtime.list_containers(sb)]
        latest, previous = latest_by_name(containers).get(container, (None, None))
        previous_wanted = _bool(request, "previous")
        target = previous if previous_wanted else latest
        if target is None:
            if previous_wanted:
                raise web.HTTPBadRequest(
                    text=f'previous terminated container "{container}" in pod "{name}" not found')
            known = {c["name"] for key in ("containers", "initContainers")
                     for c in (pod.get("spec") or {}).get(key) or []}
            if container not in known:
                raise web.HTTPBadRequest(
                    text=f'container {container} is not valid for pod {name}')
            raise web.HTTPBadRequest(
                text=f'container "{container}" in pod "{name}" is waiting to start: '
                     "ContainerCreating")
        since = None
        seconds = _int(request, "sinceSeconds")
        if seconds is not None:
            since = kubelet.clock.now() - timedelta(seconds=seconds)
        elif request.query.get("sinceTime"):
            since = parse_rfc3339(request.query["sinceTime"])
        opts = LogOptions(tail_lines=_int(request, "tailLines"), since=since,
                          timestamps=_bool(request, "timestamps"),
                          limit_bytes=_int(request, "limitBytes"),
                          follow=_bool(request, "follow") and not previous_wanted)
        cid = target.id

        async def running() -> bool:
            try:
                return (await runtime.container_status(cid)).state == ContainerState.RUNNING
            except Exception:
                return False

        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        try:
            async for chunk in follow_log(Path(target.log_path), opts, running):
                await response.write(chunk)
        except (ConnectionResetError, asyncio.CancelledError):
            return response
        await response.write_eof()
        return response

    async def running_container(request: web.Request
                                ) -> tuple[dict[str, Any], ContainerStatus]:
        """The pod and the running container the request names, or upstream's refusal."""
        ns, name = request.match_info["namespace"], request.match_info["pod"]
        container = request.match_info["container"]
        pod = kubelet.informer.get(f"{ns}/{name}") if kubelet.informer is not None else None
        if pod is None:
            raise web.HTTPNotFound(text=f'pod "{name}" not found')
        uid = pod["metadata"]["uid"]
        running = [c for sb in await kubelet.runtime.list_pod_sandboxes()
                   if sb.config.pod_uid == uid
                   for c in await kubelet.runtime.list_containers(sb.id)
                   if c.name == container and c.state == ContainerState.RUNNING]
        if not running:
            raise web.HTTPBadRequest(
                text=f'container "{container}" in pod "{name}" is not running')
        return pod, running[-1]

    async def exec_handler(request: web.Request) -> web.StreamResponse:
        _, container = await running_container(request)
        return await serve_exec(request, kubelet.runtime, container.id)

    async def attach_handler(request: web.Request) -> web.StreamResponse:
        pod, container = await running_container(request)
        spec = next((c for key in ("containers", "initContainers", "ephemeralContainers")
                     for c in (pod.get("spec") or {}).get(key) or []
                     if c.get("name") == container.name), {})
        return await serve_attach(request, kubelet.runtime, container.id,
                                  tty=spec.get("tty") is True)

    async def configz(request: web.Request) -> web.Response:
        return web.json_response({"kubeletconfig": kubelet_configuration(kubelet)})

    async def port_forward_handler(request: web.Request) -> web.StreamResponse:
        ns, name = request.match_info["namespace"], request.match_info["pod"]
        pod = kubelet.informer.get(f"{ns}/{name}") if kubelet.informer is not None else None
        if pod is None:
            raise web.HTTPNotFound(text=f'pod "{name}" not found')
        uid = pod["metadata"]["uid"]
        sandboxes = [sb for sb in await kubelet.runtime.list_pod_sandboxes()
                     if sb.config.pod_uid == uid and sb.state == SandboxState.READY]
        if not sandboxes:
            raise web.HTTPBadRequest(text=f'pod "{name}" has no running sandbox')
        return await serve_port_forward(request, kubelet.runtime, sandboxes[-1].id, name)

    stats = StatsProvider(kubelet.runtime, kubelet.settings.node_name,
                          lambda: kubelet.informer.list() if kubelet.informer is not None else [])

    async def stats_summary(request: web.Request) -> web.Response:
        return web.json_response(await stats.summary())

    app = web.Application(middlewares=[authorizer(bool(kubelet.settings.client_ca_file))])
    app.router.add_get("/stats/summary", stats_summary)
    app.router.add_get("/portForward/{namespace}/{pod}", port_forward_handler)
    app.router.add_get("/attach/{namespace}/{pod}/{container}", attach_handler)
    app.router.add_post("/attach/{namespace}/{pod}/{container}", attach_handler)
    app.router.add_get("/configz", configz)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/exec/{namespace}/{pod}/{container}", exec_handler)
    app.router.add_post("/exec/{namespace}/{pod}/{container}", exec_handler)
    app.router.add_get("/pods", pods)
    app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", container_logs)
    return app


def kubelet_configuration(kubelet: Kubelet) -> dict[str, Any]:
    """The settings that have a ``KubeletConfiguration`` (v1beta1) field, so spelled."""
    settings = kubelet.settings
    return {
        "kind": "KubeletConfiguration", "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "enableServer": bool(settings.server_address), "address": settings.server_address,
        "port": settings.server_port, "podCIDR": settings.pod_cidr,
        "maxPods": settings.max_pods, "registerNode": settings.register_node,
        "nodeLeaseDurationSeconds": settings.node_lease_duration_seconds,
        "nodeStatusUpdateFrequency": f"{settings.node_status_update_frequency:g}s",
        "nodeStatusReportFrequency": f"{settings.node_status_report_frequency:g}s",
        "tlsCertFile": settings.tls_cert_file,
        "tlsPrivateKeyFile": settings.tls_private_key_file,
        "authentication": {"x509": {"clientCAFile": settings.client_ca_file}},
        "evictionHard": {"memory.available": settings.eviction_memory_reserve},
    }


async def serve(kubelet: Kubelet, address: str, port: int) -> None:
    runner = web.AppRunner(make_app(kubelet), access_log=None)
    await runner.setup()
    context = serving_context(kubelet.settings, kubelet.node_ip)
    site = web.TCPSite(runner, address, port, ssl_context=context)
    await site.start()
    log.info("node server listening address=%s port=%d tls=true client_auth=%s", address, port,
             bool(kubelet.settings.client_ca_file))
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        log.info("node server stopped")
