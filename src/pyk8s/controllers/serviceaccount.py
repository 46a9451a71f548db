"""The service-account controller: every active namespace has a ``default`` ServiceAccount.

Watches namespaces and service accounts; a new namespace, or a deleted ``default`` account,
enqueues the namespace; the sync creates the account when the cache lacks it (an
AlreadyExists from a lagging cache is success). Terminating namespaces are left alone, as
upstream does. Token secrets are not created (upstream stopped doing so in 1.24).
"""

from __future__ import annotations

from pyk8s.client import ApiClient, InformerFactory
from pyk8s.controllers.base import Obj, QueueController, is_deleting, key_of, meta
from pyk8s.machinery.errors import ApiError
from pyk8s.machinery.resources import CATALOGUE

NAMESPACES = CATALOGUE.resource("v1", "namespaces")
SERVICE_ACCOUNTS = CATALOGUE.resource("v1", "serviceaccounts")
DEFAULT_NAMES = ("default",)


class ServiceAccountController(QueueController):
    name = "serviceaccount"

    def __init__(self, client: ApiClient, factory: InformerFactory,
                 names: tuple[str, ...] = DEFAULT_NAMES) -> None:
        super().__init__()
        self.client = client
        self.names = names
        self.ns_informer = factory.informer(NAMESPACES)
        self.sa_informer = factory.informer(SERVICE_ACCOUNTS)
        self.ns_informer.add_handlers(on_add=self._ns_changed,
                                      on_update=lambda old, new: self._ns_changed(new))
        self.sa_informer.add_handlers(on_delete=self._sa_deleted)

    def _ns_changed(self, ns: Obj) -> None:
        if not is_deleting(ns):
            self.queue.add(key_of(ns))

    def _sa_deleted(self, sa: Obj) -> None:
        if meta(sa).get("name") in self.names:
            self.queue.add(str(meta(sa).get("namespace", "")))

    async def sync(self, key: str) -> float | None:
        ns = self.ns_informer.get(key)
        if ns is None or is_deleting(ns) or (ns.get("status") or {}).get("phase") == "Terminating":
            return None
        for name in self.names:
            if self.sa_informer.get(f"{key}/{name}") is not None:
                continue
            body = {"apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": name, "namespace": key}}
            try:
                await self.client.create(SERVICE_ACCOUNTS, body, namespace=key)
            except ApiError as exc:
                if exc.code == 409 or exc.code == 403 or exc.code == 404:
                    continue  # exists already, or the namespace is going away
                raise
        return None
