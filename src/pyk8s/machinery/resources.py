"""The catalogue of built-in resources: what the API serves, as data.

One :class:`Resource` per group/version/plural says everything routing, discovery, OpenAPI,
field selectors and storage need to know about a kind. Behaviour that differs per kind
lives in the API server's registry strategies; this module is only the catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
READ_WRITE = ALL_VERBS
CREATE_ONLY = ("create",)


@dataclass(frozen=True, slots=True)
class Subresource:
    name: str
    kind: str
    verbs: tuple[str, ...]
    group: str = ""
    version: str = ""


@dataclass(frozen=True, slots=True)
class Resource:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    verbs: tuple[str, ...] = READ_WRITE
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[Subresource, ...] = ()
    # Field selectors beyond metadata.name / metadata.namespace, as upstream's
    # GetAttrs / field label conversion functions allow them.
    field_selectors: tuple[str, ...] = ()
    # Objects that exist only as a request/response (reviews) are never stored.
    stored: bool = True
    singular: str = field(default="")
    # Derived once: every request reads them, and a frozen dataclass's generated hash
    # would hash every field (the subresources too) on each dict lookup.
    _api_version: str = field(init=False, repr=False, compare=False, default="")
    _storage_prefix: str = field(init=False, repr=False, compare=False, default="")
    _hash: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_api_version",
                           f"{self.group}/{self.version}" if self.group else self.version)
        object.__setattr__(self, "_storage_prefix",
                           f"/registry/{self.group or 'core'}/{self.plural}/")
        object.__setattr__(self, "_hash", hash((self.group, self.version, self.plural)))

    def __hash__(self) -> int:
        return self._hash

    @property
    def api_version(self) -> str:
        return self._api_version

    @property
    def group_version(self) -> str:
        return self.api_version

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def singular_name(self) -> str:
        return self.singular or self.kind.lower()

    @property
    def storage_prefix(self) -> str:
        """Key prefix of this resource's objects (namespace/name or name follows)."""
        return self._storage_prefix

    def key(self, namespace: str, name: str) -> str:
        if self.namespaced:
            return f"{self.storage_prefix}{namespace}/{name}"
        return self.storage_prefix + name

    def subresource(self, name: str) -> Subresource | None:
        for sub in self.subresources:
            if sub.name == name:
                return sub
        return None

    @property
    def has_status(self) -> bool:
        return self.subresource("status") is not None


def _status(kind: str) -> Subresource:
    return Subresource("status", kind, ("get", "patch", "update"))


_SCALE = Subresource("scale", "Scale", ("get", "patch", "update"), "autoscaling", "v1")

_POD_FIELDS = (
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
)
_EVENT_FIELDS = (
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
)

RESOURCES: tuple[Resource, ...] = (
    # core/v1
    Resource("", "v1", "Namespace", "namespaces", False, short_names=("ns",),
             subresources=(_status("Namespace"),
                           Subresource("finalize", "Namespace", ("update",))),
             field_selectors=("status.phase",)),
    Resource("", "v1", "Pod", "pods", True, short_names=("po",), categories=("all",),
             subresources=(_status("Pod"),
                           Subresource("binding", "Binding", CREATE_ONLY),
                           Subresource("eviction", "Eviction", CREATE_ONLY, "policy", "v1"),
                           Subresource("log", "Pod", ("get",)),
                           Subresource("exec", "PodExecOptions", ("create", "get")),
                           Subresource("attach", "PodAttachOptions", ("create", "get")),
                           Subresource("portforward", "PodPortForwardOptions", ("create", "get"))),
             field_selectors=_POD_FIELDS),
    Resource("", "v1", "Binding", "bindings", True, verbs=CREATE_ONLY, stored=False),
    Resource("", "v1", "Node", "nodes", False, short_names=("no",),
             subresources=(_status("Node"), Subresource("proxy", "NodeProxyOptions",
                                                        ("create", "delete", "get", "patch", "update"))),
             field_selectors=("spec.unschedulable",)),
    Resource("", "v1", "Service", "services", True, short_names=("svc",), categories=("all",),
             verbs=("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"),
             subresources=(_status("Service"),),
             field_selectors=("spec.clusterIP", "spec.type")),
    Resource("", "v1", "Endpoints", "endpoints", True, short_names=("ep",), singular="endpoints"),
    Resource("", "v1", "ConfigMap", "configmaps", True, short_names=("cm",)),
    Resource("", "v1", "Secret", "secrets", True, field_selectors=("type",)),
    Resource("", "v1", "ServiceAccount", "serviceaccounts", True, short_names=("sa",)),
    Resource("", "v1", "Event", "events", True, short_names=("ev",), field_selectors=_EVENT_FIELDS),
    Resource("", "v1", "LimitRange", "limitranges", True, short_names=("limits",)),
    Resource("", "v1", "ResourceQuota", "resourcequotas", True, short_names=("quota",),
             subresources=(_status("ResourceQuota"),)),
    # apps/v1
    Resource("apps", "v1", "Deployment", "deployments", True, short_names=("deploy",),
             categories=("all",), subresources=(_status("Deployment"), _SCALE)),
    Resource("apps", "v1", "ReplicaSet", "replicasets", True, short_names=("rs",),
             categories=("all",), subresources=(_status("ReplicaSet"), _SCALE),
             field_selectors=("status.replicas",)),
    Resource("apps", "v1", "DaemonSet", "daemonsets", True, short_names=("ds",),
             categories=("all",), subresources=(_status("DaemonSet"),)),
    Resource("apps", "v1", "StatefulSet", "statefulsets", True, short_names=("sts",),
             categories=("all",), subresources=(_status("StatefulSet"), _SCALE)),
    Resource("apps", "v1", "ControllerRevision", "controllerrevisions", True),
    # batch/v1
    Resource("batch", "v1", "Job", "jobs", True, categories=("all",),
             subresources=(_status("Job"),), field_selectors=("status.successful",)),
    Resource("batch", "v1", "CronJob", "cronjobs", True, short_names=("cj",),
             categories=("all",), subresources=(_status("CronJob"),)),
    # coordination.k8s.io/v1
    Resource("coordination.k8s.io", "v1", "Lease", "leases", True),
    # discovery.k8s.io/v1
    Resource("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", True,
             field_selectors=("addressType",)),
    # events.k8s.io/v1
    Resource("events.k8s.io", "v1", "Event", "events", True, short_names=("ev",),
             field_selectors=("reason", "type", "regarding.kind", "regarding.namespace",
                              "regarding.name", "regarding.uid", "reportingController")),
    # authorization.k8s.io/v1
    Resource("authorization.k8s.io", "v1", "SelfSubjectAccessReview",
             "selfsubjectaccessreviews", False, verbs=CREATE_ONLY, stored=False),
)


class Catalogue:
    """Lookups over :data:`RESOURCES` by the ways requests name a resource."""

    def __init__(self, resources: tuple[Resource, ...] = RESOURCES) -> None:
        self.resources = resources
        self._by_gvr = {(r.group, r.version, r.plural): r for r in resources}
        self._by_gvk = {(r.group, r.version, r.kind): r for r in resources}
        self.group_versions: dict[str, list[str]] = {}
        for r in resources:
            versions = self.group_versions.setdefault(r.group, [])
            if r.version not in versions:
                versions.append(r.version)

    def by_plural(self, group: str, version: str, plural: str) -> Resource | None:
        return self._by_gvr.get((group, version, plural))

    def by_kind(self, group: str, version: str, kind: str) -> Resource | None:
        return self._by_gvk.get((group, version, kind))

    def resource(self, api_version: str, plural: str) -> Resource:
        """``resource("apps/v1", "deployments")``; KeyError when it is not served."""
        group, _, version = api_version.rpartition("/")
        found = self._by_gvr.get((group, version, plural))
        if found is None:
            raise KeyError(f"{api_version} {plural}")
        return found

    def in_group_version(self, group: str, version: str) -> list[Resource]:
        return [r for r in self.resources if r.group == group and r.version == version]

    def stored(self) -> list[Resource]:
        return [r for r in self.resources if r.stored]


CATALOGUE = Catalogue()
