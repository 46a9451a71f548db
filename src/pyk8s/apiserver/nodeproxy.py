"""Subresources served by a node: the API server proxies them to the pod's kubelet.

``pods/exec`` and ``pods/attach`` are a WebSocket (``v5.channel.k8s.io``, what kubectl 1.32
asks for first) relayed message by message between kubectl and the kubelet's endpoint, or
-- kubectl's fallback -- a SPDY/3.1 upgrade proxied to the kubelet and then copied byte for
byte; the channel framing is the kubelet's business. ``nodes/{name}/proxy/{path}`` is
proxied to the node server as plain HTTP requests. ``pods/log`` is answered by the node server of the node the pod runs on, found from the
Node object (an InternalIP, else a Hostname address, and ``daemonEndpoints.kubeletEndpoint``),
as upstream's API server does. The API server checks what it can itself first (the pod is
bound, the container exists and has started) so that those errors read as upstream's.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Coroutine
from typing import Any
from urllib.parse import urlencode

import aiohttp
import yarl
from aiohttp import web
from multidict import CIMultiDict

from pyk8s.apiserver import rest
from pyk8s.apiserver.context import ApiContext, ServerSettings
from pyk8s.machinery import errors
from pyk8s.machinery.resources import CATALOGUE, Resource
from pyk8s.machinery.spdy import RawBytes

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


_KUBELET_TLS: dict[tuple[str, str], ssl.SSLContext] = {}


def kubelet_tls(settings: ServerSettings) -> ssl.SSLContext:
    """The API server's kubelet client certificate (``<data-dir>/pki``); the kubelet's own
    certificate is checked only against ``kubelet_certificate_authority`` when one is set."""
    key = (str(settings.data_dir), settings.kubelet_certificate_authority)
    context = _KUBELET_TLS.get(key)
    if context is None:
        pki = settings.data_dir / "pki"
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        context.load_cert_chain(pki / "apiserver-kubelet-client.crt",
                                pki / "apiserver-kubelet-client.key")
        if settings.kubelet_certificate_authority:
            context.load_verify_locations(cafile=settings.kubelet_certificate_authority)
        else:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        _KUBELET_TLS[key] = context
    return context


def kubelet_session(ctx: ApiContext,
                    timeout: aiohttp.ClientTimeout | None = None) -> aiohttp.ClientSession:
    """A client session for talking to kubelets (a fresh one per request: these are long
    streams or rare scrapes, and a session is cheap next to them)."""
    ssl_context: ssl.SSLContext | bool = False
    if ctx.settings.kubelet_scheme == "https":
        ssl_context = kubelet_tls(ctx.settings)
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=ssl_context),
        timeout=timeout or aiohttp.ClientTimeout(total=None, sock_connect=5))


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
    try:
        async with kubelet_session(ctx) as session, \
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
    return [*(("command", c) for c in commands), *_stream_flags(request),
            ("container", container)]


def _running_container(pod: dict[str, Any], requested: str, verb: str) -> tuple[str, str]:
    """(container, node name) for exec and attach, with upstream's refusals."""
    name = pod["metadata"]["name"]
    container = pick_container(pod, requested)
    phase = (pod.get("status") or {}).get("phase")
    if phase in ("Succeeded", "Failed"):
        raise errors.bad_request(
            f"cannot {verb} into a container in a completed pod; current phase is {phase}")
    node_name = (pod.get("spec") or {}).get("nodeName")
    if not node_name or _waiting_reason(pod, container) is not None:
        raise errors.bad_request(f'container "{container}" in pod "{name}" is waiting to start')
    return container, str(node_name)


def _offered(request: web.Request) -> list[str]:
    return [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
            if p.strip()]


async def _relay_to_node(request: web.Request, ctx: ApiContext, node_name: str, path: str,
                         params: list[tuple[str, str]], protocols: tuple[str, ...],
                         verb: str) -> web.StreamResponse:
    """Open the kubelet's WebSocket first (so its refusal becomes a Status kubectl prints),
    then accept the client's and relay messages both ways."""
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise errors.bad_request(
            f"{verb} needs an upgrade: WebSocket ({protocols[0]}) or SPDY/3.1")
    host, port = node_endpoint(await rest.get(ctx, NODES, "", node_name))
    scheme = "wss" if ctx.settings.kubelet_scheme == "https" else "ws"
    session = kubelet_session(ctx)
    try:
        try:
            upstream = await session.ws_connect(f"{scheme}://{host}:{port}{path}", params=params,
                                                protocols=protocols, heartbeat=None,
                                                max_msg_size=0)
        except aiohttp.WSServerHandshakeError as exc:
            raise errors.bad_request(f"node {node_name} refused {verb}: {exc.message}") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise errors.ApiError(503, "ServiceUnavailable",
                                  f"unable to reach node {node_name} at {host}:{port}: "
                                  f"{type(exc).__name__}") from None
        client = web.WebSocketResponse(protocols=(upstream.protocol or protocols[0],),
                                       autoping=True, max_msg_size=0)
        await client.prepare(request)
        await _relay(client, upstream)
        return client
    finally:
        await session.close()


def _stream_flags(request: web.Request) -> list[tuple[str, str]]:
    flags = {"input": "stdin", "output": "stdout", "error": "stderr", "tty": "tty"}
    return [(ours, "1") for ours, theirs in flags.items()
            if request.query.get(theirs, "").lower() in ("1", "true")]


def _is_spdy(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "spdy/3.1"


async def pod_exec(request: web.Request, ctx: ApiContext, pods: Resource, namespace: str,
                   name: str) -> web.StreamResponse:
    pod = await rest.get(ctx, pods, namespace, name)
    container, node_name = _running_container(pod, request.query.get("container", ""), "exec")
    path, params = f"/exec/{namespace}/{name}/{container}", _exec_query(request, container)
    if _is_spdy(request):
        return await _upgrade_to_node(request, ctx, node_name, path, params)
    protocols = tuple(p for p in _offered(request) if p in EXEC_PROTOCOLS) or EXEC_PROTOCOLS[:1]
    return await _relay_to_node(request, ctx, node_name, path, params, protocols, "exec")


async def pod_attach(request: web.Request, ctx: ApiContext, pods: Resource, namespace: str,
                     name: str) -> web.StreamResponse:
    pod = await rest.get(ctx, pods, namespace, name)
    container, node_name = _running_container(pod, request.query.get("container", ""), "attach")
    path = f"/attach/{namespace}/{name}/{container}"
    params = [*_stream_flags(request), ("container", container)]
    if _is_spdy(request):
        return await _upgrade_to_node(request, ctx, node_name, path, params)
    protocols = tuple(p for p in _offered(request) if p in EXEC_PROTOCOLS) or EXEC_PROTOCOLS[:1]
    return await _relay_to_node(request, ctx, node_name, path, params, protocols, "attach")


async def _open_node(ctx: ApiContext, node_name: str
                     ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, str]:
    """A raw connection to the node server (TLS as :func:`kubelet_session`'s), and its
    ``host:port``."""
    host, port = node_endpoint(await rest.get(ctx, NODES, "", node_name))
    tls = kubelet_tls(ctx.settings) if ctx.settings.kubelet_scheme == "https" else None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=tls, server_hostname=host if tls else None,
                                    limit=1 << 20), 10)
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        raise errors.ApiError(503, "ServiceUnavailable",
                              f"error dialing backend: dial tcp {host}:{port}: "
                              f"{getattr(exc, 'strerror', None) or type(exc).__name__}") from None
    return reader, writer, f"{host}:{port}"


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, CIMultiDict[str]]:
    """The status and headers of an HTTP/1.1 response."""
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP response: {lines[0][:100]!r}")
    headers: CIMultiDict[str] = CIMultiDict()
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers.add(name.strip(), value.strip())
    return int(parts[1]), headers


async def _upgrade_to_node(request: web.Request, ctx: ApiContext, node_name: str, path: str,
                           params: list[tuple[str, str]]) -> web.StreamResponse:
    """SPDY/3.1 exec and attach (kubectl's fallback transport), proxied as upstream's API
    server proxies them: the upgrade request goes on to the node server, its answer comes
    back -- a refusal as it is, a 101 with the protocol it chose -- and then bytes are
    copied both ways unread (the kubelet speaks the SPDY)."""
    versions = [v.strip() for h in request.headers.getall("X-Stream-Protocol-Version", [])
                for v in h.split(",") if v.strip()]
    reader, writer, address = await _open_node(ctx, node_name)
    try:
        head = [f"POST {path}?{urlencode(params)} HTTP/1.1", f"Host: {address}",
                "Connection: Upgrade", "Upgrade: SPDY/3.1", "Content-Length: 0",
                *(f"X-Stream-Protocol-Version: {v}" for v in versions)]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        try:
            status, headers = await asyncio.wait_for(_read_head(reader), 30)
            if status != 101:
                length = min(int(headers.get("Content-Length") or 0), 64 * 1024)
                body = await asyncio.wait_for(reader.readexactly(length), 30)
        except (OSError, ValueError, TimeoutError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError) as exc:
            raise errors.ApiError(503, "ServiceUnavailable",
                                  f"error reading from node {node_name} at {address}: "
                                  f"{type(exc).__name__}") from None
        if status != 101:  # the kubelet's refusal, as it is (kubectl prints it)
            return web.Response(status=status, body=body, headers={
                "Content-Type": headers.get("Content-Type", "text/plain; charset=utf-8")})
        transport = request.transport
        if transport is None:
            return web.Response(status=499)
        raw = RawBytes()
        request.protocol.set_parser(raw)  # type: ignore[arg-type]
        response = web.StreamResponse(status=101, headers={
            "Connection": "Upgrade", "Upgrade": "SPDY/3.1",
            "X-Stream-Protocol-Version": headers.get("X-Stream-Protocol-Version", "")})
        await response.prepare(request)

        async def up() -> None:
            while (chunk := await raw.queue.get()) is not None:
                writer.write(chunk)
                await writer.drain()

        async def down() -> None:
            while chunk := await reader.read(1 << 16):
                transport.write(chunk)
                while transport.get_write_buffer_size() > 1 << 20 and not transport.is_closing():
                    await asyncio.sleep(0.005)  # a slow client: stop reading the kubelet

        await _until_either(up(), down())
        response.force_close()
        transport.close()
        return response
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 5)


async def _until_either(*work: Coroutine[Any, Any, None]) -> None:
    """Run both directions of a relay until one ends, then stop the other."""
    tasks = [asyncio.ensure_future(w) for w in work]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, OSError, ConnectionError,
                                     aiohttp.ClientError, ssl.SSLError):
                await task


PORT_FORWARD_PROTOCOL = "SPDY/3.1+portforward.k8s.io"


async def pod_portforward(request: web.Request, ctx: ApiContext, pods: Resource,
                          namespace: str, name: str) -> web.StreamResponse:
    """kubectl 1.32 tunnels SPDY/3.1 in a WebSocket; the messages are relayed to the
    kubelet's ``/portForward`` unchanged (the kubelet speaks the SPDY). Its fallback, SPDY over
    an HTTP upgrade, is refused with a Status it prints."""
    pod = await rest.get(ctx, pods, namespace, name)
    node_name = (pod.get("spec") or {}).get("nodeName")
    if not node_name:
        raise errors.bad_request(f"pod {name} does not have a host assigned")
    phase = (pod.get("status") or {}).get("phase")
    if phase != "Running":
        raise errors.bad_request(f"unable to forward port because pod is not running. "
                                 f"Current status={phase}")
    path = f"/portForward/{namespace}/{name}"
    if request.headers.get("Upgrade", "").lower() == "spdy/3.1":
        versions = [v.strip() for h in request.headers.getall("X-Stream-Protocol-Version", [])
                    for v in h.split(",")]
        if SPDY_PORT_FORWARD not in versions:
            raise errors.bad_request(f"port-forward needs X-Stream-Protocol-Version "
                                     f"{SPDY_PORT_FORWARD}")
        return await _spdy_to_node(request, ctx, node_name, path)
    if PORT_FORWARD_PROTOCOL not in _offered(request):
        raise errors.bad_request(
            f"port-forward needs a WebSocket upgrade with the {PORT_FORWARD_PROTOCOL} "
            "subprotocol, or SPDY/3.1")
    return await _relay_to_node(request, ctx, node_name, path, [], (PORT_FORWARD_PROTOCOL,),
                                "port-forward")


SPDY_PORT_FORWARD = "portforward.k8s.io"


async def _spdy_to_node(request: web.Request, ctx: ApiContext, node_name: str,
                        path: str) -> web.StreamResponse:
    """kubectl's fallback transport (SPDY/3.1 straight over the upgraded HTTP connection,
    or ``KUBECTL_PORT_FORWARD_WEBSOCKETS=false``): its bytes are carried to the kubelet in
    WebSocket messages, the same tunnel kubectl 1.32 uses by default, and back."""
    host, port = node_endpoint(await rest.get(ctx, NODES, "", node_name))
    scheme = "wss" if ctx.settings.kubelet_scheme == "https" else "ws"
    session = kubelet_session(ctx)
    try:
        try:
            upstream = await session.ws_connect(f"{scheme}://{host}:{port}{path}",
                                                protocols=(PORT_FORWARD_PROTOCOL,),
                                                heartbeat=None, max_msg_size=0)
        except aiohttp.WSServerHandshakeError as exc:
            raise errors.bad_request(f"node {node_name} refused port-forward: {exc.message}") \
                from None
        except (aiohttp.ClientError, OSError) as exc:
            raise errors.ApiError(503, "ServiceUnavailable",
                                  f"unable to reach node {node_name} at {host}:{port}: "
                                  f"{type(exc).__name__}") from None
        transport, protocol = request.transport, request.protocol
        if transport is None:
            return web.Response(status=499)
        raw = RawBytes()
        protocol.set_parser(raw)  # type: ignore[arg-type]
        response = web.StreamResponse(status=101, headers={
            "Connection": "Upgrade", "Upgrade": "SPDY/3.1",
            "X-Stream-Protocol-Version": SPDY_PORT_FORWARD})
        await response.prepare(request)

        async def up() -> None:
            while (chunk := await raw.queue.get()) is not None:
                await upstream.send_bytes(chunk)

        async def down() -> None:
            async for msg in upstream:
                if msg.type != aiohttp.WSMsgType.BINARY:
                    break
                transport.write(msg.data)
                while transport.get_write_buffer_size() > 1 << 20 and not transport.is_closing():
                    await asyncio.sleep(0.005)  # a slow client: stop reading the kubelet

        tasks = [asyncio.create_task(up()), asyncio.create_task(down())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, ConnectionResetError,
                                         aiohttp.ClientError):
                    await task
            with contextlib.suppress(ConnectionResetError, aiohttp.ClientError):
                await upstream.close()
            response.force_close()
            transport.close()
        return response
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


HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                        "te", "trailer", "transfer-encoding", "upgrade", "host",
                        "authorization", "content-length"})
PASSED_BACK = ("Content-Type", "Content-Encoding", "Cache-Control", "Content-Disposition",
               "Date", "ETag", "Last-Modified", "Location")


def split_scheme_name_port(ident: str) -> tuple[str, str, str]:
    """``[scheme:]name[:port]`` of a proxy subresource's name (upstream's
    ``SplitSchemeNamePort``), with upstream's refusal of anything else."""
    parts = ident.split(":")
    scheme, port = "", ""
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        name, port = parts
    elif len(parts) == 3:
        scheme, name, port = parts
    else:
        name = ""
    if not name or scheme not in ("", "http", "https") or (port and not port.isdigit()):
        raise errors.bad_request(f'invalid node request "{ident}"')
    return scheme, name, port


def _proxied_path(request: web.Request) -> tuple[str, str]:
    """What follows ``nodes/<name>/proxy`` in the request's path, and its query (both
    still encoded)."""
    path, _, query = request.raw_path.partition("?")
    segments = path.split("/")
    for i in range(len(segments) - 2):
        if segments[i] == "nodes" and segments[i + 2] == "proxy":
            return "/" + "/".join(segments[i + 3:]), query
    return "/", query


async def node_proxy(request: web.Request, ctx: ApiContext, nodes: Resource,
                     ident: str) -> web.StreamResponse:
    """``nodes/{name}/proxy/{path}``: the request, with its method, query and body, goes to
    the node's kubelet (``/healthz``, ``/pods``, ``/stats/summary``, ``/configz``,
    ``/containerLogs/...``), over HTTPS with the kubelet client certificate, and its answer
    comes back as it is, as upstream's node proxy does. ``name:port`` for another port of
    the node goes there over plain HTTP (or the scheme given, ``https:name:port``) without
    the kubelet's credentials. An unknown node is 404; a node that reports no address, or
    whose server cannot be reached, 503."""
    scheme, name, port_req = split_scheme_name_port(ident)
    node = await rest.get(ctx, nodes, "", name)
    host, port = node_endpoint(node)
    kubelet = not port_req or int(port_req) == port
    if kubelet:
        scheme = ctx.settings.kubelet_scheme
    else:
        scheme, port = scheme or "http", int(port_req)
    path, query = _proxied_path(request)
    target = yarl.URL.build(scheme=scheme, host=host, port=port, path=path, query_string=query,
                            encoded=True)
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
    body = await request.read() if request.can_read_body else None
    session = kubelet_session(ctx) if kubelet else aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=5))
    try:
        async with session, session.request(request.method, target, headers=headers,
                                            data=body, allow_redirects=False,
                                            auto_decompress=False) as upstream:
            response = web.StreamResponse(status=upstream.status, headers={
                k: upstream.headers[k] for k in PASSED_BACK if k in upstream.headers})
            await response.prepare(request)
            with contextlib.suppress(ConnectionResetError):
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            return response
    except (aiohttp.ClientError, OSError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise errors.ApiError(503, "ServiceUnavailable",
                              f"error trying to reach service: dial tcp {host}:{port}: "
                              f"{reason}") from None
