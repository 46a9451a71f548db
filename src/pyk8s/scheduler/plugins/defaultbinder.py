"""DefaultBinder: bind by POSTing a ``Binding`` to the pod's ``binding`` subresource.

The API server sets ``spec.nodeName`` (and ``PodScheduled=True``) atomically and refuses a
pod that is already bound or being deleted (409). Any API failure is an ``Error`` status:
the scheduler forgets the assumed pod and retries it with backoff.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyk8s.machinery.errors import ApiError
from pyk8s.machinery.resources import CATALOGUE
from pyk8s.scheduler.framework import SUCCESS, CycleState, Handle, PodInfo, Status

NAME = "DefaultBinder"
PODS = CATALOGUE.resource("v1", "pods")


class DefaultBinder:
    name = NAME

    def __init__(self, handle: Handle) -> None:
        self.handle = handle

    async def bind(self, state: CycleState, pod: PodInfo, node_name: str) -> Status:
        client = self.handle.client
        if client is None:
            return Status.error("no API client to bind with")
        meta = pod.pod.get("metadata") or {}
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace"),
                         "uid": meta.get("uid")},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node_name},
        }
        try:
            await client.post_subresource(PODS, meta.get("namespace"), meta.get("name"),
                                          "binding", body)
        except ApiError as exc:
            return Status.error(f"binding rejected: {exc.message or exc}")
        return SUCCESS


def new(args: Mapping[str, Any], handle: Handle) -> DefaultBinder:
    return DefaultBinder(handle)
