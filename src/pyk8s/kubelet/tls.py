"""TLS for the node server (upstream: the kubelet's ``--tls-cert-file``,
``--tls-private-key-file``, ``--client-ca-file`` and ``--cert-dir``).

The server certificate is the one configured or, failing that, a self-signed one made once in
``<root>/pki`` for the node's name and address, as upstream's kubelet does (the API server
does not verify kubelets' serving certificates unless told to, upstream's default too). With
a client CA, every client must present a certificate it signed, and only ``system:masters``
(the API server's kubelet client certificate is one) may use the server: that stands in for
upstream's webhook authorization of ``nodes/proxy`` and friends. Without one, the server
accepts anyone, and says so in the log. ``/healthz`` is always open, as upstream's is on its
own port.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from pyk8s.kubelet.settings import KubeletSettings

log = logging.getLogger("pyk8s.kubelet.tls")

MASTERS = "system:masters"
OPEN_PATHS = frozenset({"/healthz"})


def _self_signed(settings: KubeletSettings, node_ip: str) -> tuple[Path, Path]:
    directory = settings.root_dir / "pki"
    cert, key = directory / "kubelet.crt", directory / "kubelet.key"
    hosts = [settings.node_name, socket.gethostname(), node_ip, settings.server_address,
             "127.0.0.1", "localhost"]
    hosts = [h for h in dict.fromkeys(hosts) if h and h not in ("0.0.0.0", "::")]
    sans = directory / "kubelet.sans"
    if cert.exists() and key.exists() and sans.exists() and sans.read_text() == "\n".join(hosts):
        return cert, key
    from pyk8s.pki import certs  # costs ~100 ms; only when a certificate must be made

    ca = certs.create_ca(f"{settings.node_name}-ca@kubelet")
    pair = certs.issue_serving(ca, settings.node_name, hosts)
    pair.write(cert, key)
    (directory / "kubelet-ca.crt").write_bytes(ca.cert_pem)
    sans.write_text("\n".join(hosts))
    return cert, key


def serving_context(settings: KubeletSettings, node_ip: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    if settings.tls_cert_file:
        context.load_cert_chain(settings.tls_cert_file, settings.tls_private_key_file or None)
    else:
        cert, key = _self_signed(settings, node_ip)
        context.load_cert_chain(cert, key)
    if settings.client_ca_file:
        context.load_verify_locations(cafile=settings.client_ca_file)
        context.verify_mode = ssl.CERT_OPTIONAL  # /healthz stays open; the rest checks below
    else:
        log.warning("node server accepts unauthenticated clients: no client CA configured")
    return context


def _groups(peercert: dict[str, object] | None) -> list[str]:
    groups: list[str] = []
    for rdn in (peercert or {}).get("subject", ()):  # type: ignore[attr-defined]
        for key, value in rdn:
            if key == "organizationName":
                groups.append(value)
    return groups


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def authorizer(required: bool) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Middleware: with client authentication on, a verified certificate in system:masters."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if required and request.path not in OPEN_PATHS:
            transport = request.transport
            peercert = transport.get_extra_info("peercert") if transport is not None else None
            if not peercert:
                raise web.HTTPUnauthorized(text="Unauthorized: a client certificate is required")
            if MASTERS not in _groups(peercert):
                raise web.HTTPForbidden(text="Forbidden: only system:masters may use the node "
                                             "server")
        return await handler(request)

    return check
