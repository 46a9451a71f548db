"""Assembling and running the API server: PKI, store, watch cache, routes, TLS.

Start-up order matters for "ready": certificates first (generated on the first start only),
then the store and the watch cache, then the built-in objects every cluster has (namespaces,
the ``kubernetes`` Service), and only then the listening socket.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import orjson
from aiohttp import web

from pyk8s.apiserver import codec, eventttl, fastpath, handlers, metrics, rest
from pyk8s.apiserver.context import ApiContext, ServerSettings
from pyk8s.apiserver.discovery import Discovery
from pyk8s.apiserver.http import boundary, raw_response
from pyk8s.apiserver.openapi import OpenAPI
from pyk8s.apiserver.watchcache import WatchCache
from pyk8s.machinery.resources import CATALOGUE
from pyk8s.machinery.schema import definitions as schema_definitions
from pyk8s.pki import kubeconfig
from pyk8s.pki.keypair import KeyPair
from pyk8s.storage import Store, open_store

log = logging.getLogger("pyk8s.apiserver")

VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.4-pyk8s",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-11-27T00:00:00Z",
    "goVersion": "python3.11",
    "compiler": "cpython",
    "platform": "linux/amd64",
}

BOOT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


@dataclass(frozen=True)
class Pki:
    ca: KeyPair
    serving: KeyPair
    admin: KeyPair
    directory: Path
    kubelet_client: KeyPair | None = None


def _server_host(settings: ServerSettings) -> str:
    host = settings.advertise_address or settings.bind_address
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def ensure_pki(settings: ServerSettings) -> Pki:
    """Create the CA, serving and admin certificates on first start; reuse them after. The
    serving certificate is re-issued when the names it must cover change."""
    directory = settings.data_dir / "pki"
    directory.mkdir(parents=True, exist_ok=True)

    def issuer():  # type: ignore[no-untyped-def]
        # Imported only when something must be generated: it costs ~100 ms of start-up.
        from pyk8s.pki import certs

        return certs

    ca_crt, ca_key = directory / "ca.crt", directory / "ca.key"
    if ca_crt.exists() and ca_key.exists():
        ca = KeyPair.read(ca_crt, ca_key)
    else:
        ca = issuer().create_ca("pyk8s-ca")
        ca.write(ca_crt, ca_key)
    hosts = ["127.0.0.1", "localhost", socket.gethostname(), settings.bind_address,
             _server_host(settings), settings.kubernetes_service_ip, "kubernetes",
             "kubernetes.default", "kubernetes.default.svc",
             "kubernetes.default.svc.cluster.local", *settings.extra_sans]
    hosts = [h for h in dict.fromkeys(hosts) if h and h not in ("0.0.0.0", "::")]
    sans_file = directory / "apiserver.sans"
    srv_crt, srv_key = directory / "apiserver.crt", directory / "apiserver.key"
    if srv_crt.exists() and sans_file.exists() and sans_file.read_text() == "\n".join(hosts):
        serving = KeyPair.read(srv_crt, srv_key)
    else:
        serving = issuer().issue_serving(ca, "kube-apiserver", hosts)
        serving.write(srv_crt, srv_key)
        sans_file.write_text("\n".join(hosts))
    adm_crt, adm_key = directory / "admin.crt", directory / "admin.key"
    if adm_crt.exists() and adm_key.exists():
        admin = KeyPair.read(adm_crt, adm_key)
    else:
        admin = issuer().issue_client(ca, "kubernetes-admin", ["system:masters"])
        admin.write(adm_crt, adm_key)
    # What the API server shows kubelets (logs, exec, port-forward, stats), as upstream's
    # --kubelet-client-certificate.
    kc_crt, kc_key = directory / "apiserver-kubelet-client.crt", directory / "apiserver-kubelet-client.key"
    if kc_crt.exists() and kc_key.exists():
        kubelet_client = KeyPair.read(kc_crt, kc_key)
    else:
        kubelet_client = issuer().issue_client(ca, "kube-apiserver-kubelet-client",
                                               ["system:masters"])
        kubelet_client.write(kc_crt, kc_key)
    return Pki(ca, serving, admin, directory, kubelet_client)


def ssl_context(pki: Pki) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.directory / "apiserver.crt", pki.directory / "apiserver.key")
    context.load_verify_locations(cadata=pki.ca.cert_pem.decode())
    context.verify_mode = ssl.CERT_OPTIONAL
    return context


async def bootstrap_objects(ctx: ApiContext) -> None:
    """The objects every cluster has: system namespaces and the ``kubernetes`` Service."""
    namespaces = CATALOGUE.by_plural("", "v1", "namespaces")
    services = CATALOGUE.by_plural("", "v1", "services")
    endpoints = CATALOGUE.by_plural("", "v1", "endpoints")
    assert namespaces and services and endpoints
    for name in BOOT_NAMESPACES:
        if await ctx.store.get(namespaces.key("", name)) is None:
            await rest.create(ctx, namespaces, "", {"metadata": {"name": name}})
    if await ctx.store.get(services.key("default", "kubernetes")) is None:
        await rest.create(ctx, services, "default", {
            "metadata": {"name": "kubernetes",
                         "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "clusterIP": ctx.settings.kubernetes_service_ip,
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                                "targetPort": ctx.settings.port}]},
        })
    host = _server_host(ctx.settings)
    subset = {"addresses": [{"ip": host}],
              "ports": [{"name": "https", "port": ctx.settings.port, "protocol": "TCP"}]}
    key = endpoints.key("default", "kubernetes")
    if await ctx.store.get(key) is None:
        await rest.create(ctx, endpoints, "default", {
            "metadata": {"name": "kubernetes",
                         "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": [subset]})
    else:
        def point_here(obj: dict, _current: dict) -> dict:  # type: ignore[type-arg]
            obj["subsets"] = [subset]
            return obj
        await rest.guaranteed_update(ctx, endpoints, "default", "kubernetes", point_here)


async def _plain(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _version(request: web.Request) -> web.Response:
    return raw_response(orjson.dumps(VERSION))


def build_app(ctx: ApiContext) -> web.Application:
    app = web.Application(middlewares=[boundary], client_max_size=codec.MAX_BODY + 1)
    app[handlers.CTX] = ctx
    discovery = Discovery(metrics.with_metrics(ctx.catalogue),
                          f"{_server_host(ctx.settings)}:{ctx.settings.port}")
    openapi = OpenAPI(ctx.catalogue)
    schema_definitions.warm_up()  # ~50 ms of parsing, kept off the start path
    r = app.router
    for path in ("/healthz", "/livez", "/readyz"):
        r.add_get(path, _plain)
    r.add_get("/version", _version)
    r.add_get("/version/", _version)
    r.add_get("/api", discovery.api)
    r.add_get("/api/", discovery.api)
    r.add_get("/api/{version}", discovery.group_version)
    r.add_get("/api/{version}/", discovery.group_version)
    r.add_route("*", "/api/{version}/{rest:.+}", handlers.handle_core)
    r.add_get("/apis", discovery.apis)
    r.add_get("/apis/", discovery.apis)
    r.add_get("/apis/{group}", discovery.group)
    r.add_get("/apis/{group}/", discovery.group)
    r.add_get("/apis/{group}/{version}", discovery.group_version)
    r.add_get("/apis/{group}/{version}/", discovery.group_version)
    metrics.add_routes(r)
    r.add_route("*", "/apis/{group}/{version}/{rest:.+}", handlers.handle_group)
    r.add_get("/openapi/v3", openapi.index)
    r.add_get("/openapi/v3/{path:.+}", openapi.document)
    r.add_get("/openapi/v2", openapi.v2)
    return app


class ApiServer:
    """One running API server: ``await start()``, then ``await stop()``."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.pki: Pki | None = None
        self.store: Store | None = None
        self.ctx: ApiContext | None = None
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.AbstractServer | None = None
        self._fast_connections: set[fastpath.FastProtocol] = set()
        self._background: list[asyncio.Task[None]] = []
        self.kubeconfig_path = settings.data_dir / "kubeconfig"

    @property
    def url(self) -> str:
        return f"https://{_server_host(self.settings)}:{self.settings.port}"

    async def start(self) -> None:
        settings = self.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.pki = await asyncio.to_thread(ensure_pki, settings)
        kubeconfig.write(self.kubeconfig_path,
                         kubeconfig.render(self.url, self.pki.ca.cert_pem, self.pki.admin))
        url = settings.storage_url or f"sqlite:///{settings.data_dir / 'state.db'}"
        self.store = await open_store(url, compact_interval=settings.compaction_interval)
        cache = WatchCache(self.store, CATALOGUE.stored())
        await cache.start()
        self.ctx = ApiContext(settings, self.store, cache)
        await bootstrap_objects(self.ctx)
        self._background.append(asyncio.create_task(
            eventttl.run(self.ctx, timedelta(seconds=settings.event_ttl)), name="event-ttl"))
        app = build_app(self.ctx)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                     shutdown_timeout=1.0)
        await self._runner.setup()
        server = self._runner.server
        assert server is not None
        bypass = frozenset({metrics.GROUP})
        server.request_handler = handlers.direct_dispatch(self.ctx, server.request_handler,
                                                          bypass)
        # Connections start on the lean front, which hands them to aiohttp's handler
        # (``server``) at their first request it does not serve itself.
        self._listener = await asyncio.get_running_loop().create_server(
            fastpath.protocol_factory(self.ctx, server, bypass, self._fast_connections),
            settings.bind_address, settings.port, ssl=ssl_context(self.pki), backlog=2048,
            reuse_address=True)

    async def stop(self) -> None:
        for task in self._background:
            task.cancel()
        if self._listener is not None:
            self._listener.close()
        for connection in tuple(self._fast_connections):
            connection.close()
        if self.ctx is not None:
            await self.ctx.cache.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        if self.store is not None:
            await self.store.close()
