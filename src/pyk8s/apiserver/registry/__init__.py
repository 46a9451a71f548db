"""One strategy per resource that needs more than the generic rules."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyk8s.apiserver.registry.base import Strategy
from pyk8s.apiserver.registry.namespaces import NamespaceStrategy
from pyk8s.apiserver.registry.pods import PodStrategy
from pyk8s.apiserver.registry.services import ServiceStrategy
from pyk8s.apiserver.registry.simple import (
    ConfigMapStrategy,
    NodeStrategy,
    PlainStrategy,
    SecretStrategy,
    WorkloadStrategy,
)
from pyk8s.machinery.resources import Resource

if TYPE_CHECKING:
    from pyk8s.apiserver.context import ApiContext

_BY_KIND: dict[tuple[str, str], type[Strategy]] = {
    ("", "Pod"): PodStrategy,
    ("", "Namespace"): NamespaceStrategy,
    ("", "Service"): ServiceStrategy,
    ("", "Secret"): SecretStrategy,
    ("", "ConfigMap"): ConfigMapStrategy,
    ("", "Node"): NodeStrategy,
    ("", "Event"): PlainStrategy,
    ("", "Endpoints"): PlainStrategy,
    ("", "ServiceAccount"): PlainStrategy,
    ("", "LimitRange"): PlainStrategy,
    ("events.k8s.io", "Event"): PlainStrategy,
    ("coordination.k8s.io", "Lease"): PlainStrategy,
    ("discovery.k8s.io", "EndpointSlice"): PlainStrategy,
    ("apps", "ControllerRevision"): PlainStrategy,
    ("apps", "Deployment"): WorkloadStrategy,
    ("apps", "ReplicaSet"): WorkloadStrategy,
    ("apps", "DaemonSet"): WorkloadStrategy,
    ("apps", "StatefulSet"): WorkloadStrategy,
    ("batch", "Job"): WorkloadStrategy,
    ("batch", "CronJob"): WorkloadStrategy,
}


def strategy_for(resource: Resource, ctx: ApiContext) -> Strategy:
    return _BY_KIND.get((resource.group, resource.kind), Strategy)(resource, ctx)
