"""Core-group printers other than pods, services and events: nodes, namespaces, config
objects and quotas.

Sparse secrets read as the v1 decoder defaults them (``type: Opaque``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ._common import (
    AGE_COLUMN,
    NAME_COLUMN,
    NONE,
    UNKNOWN,
    Obj,
    age,
    as_list,
    as_map,
    as_str,
    column,
    get,
    maps,
    name_of,
)

# --- nodes -------------------------------------------------------------------------------

_ADDRESSES_DESCRIPTION = (
    "List of addresses reachable to the node. Queried from cloud provider, if available. More"
    " info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field"
    " is declared as mergeable, but the merge key is not sufficiently unique, which can cause"
    " data corruption when it is merged. Callers should instead use a full-replacement patch."
    " See https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can"
    " change during the lifetime of a Node. However, there are some exceptions where this may"
    " not be possible, such as Pods that inherit a Node's address in its own status or"
    " consumers of the downward API (status.hostIP)."
)

NODE_COLUMNS = (
    NAME_COLUMN,
    column("Status", "string", "The status of the node"),
    column("Roles", "string", "The roles of the node"),
    AGE_COLUMN,
    column("Version", "string", "Kubelet Version reported by the node."),
    column("Internal-IP", "string", _ADDRESSES_DESCRIPTION, priority=1),
    column("External-IP", "string", _ADDRESSES_DESCRIPTION, priority=1),
    column(
        "OS-Image",
        "string",
        "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
        priority=1,
    ),
    column(
        "Kernel-Version",
        "string",
        "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
        priority=1,
    ),
    column(
        "Container-Runtime",
        "string",
        "ContainerRuntime Version reported by the node through runtime remote API (e.g."
        " containerd://1.4.2).",
        priority=1,
    ),
)

_ROLE_PREFIX = "node-role.kubernetes.io/"
_LEGACY_ROLE_LABEL = "kubernetes.io/role"


def _node_status(node: Obj) -> str:
    ready = None
    for cond in maps(get(node, "status", "conditions")):
        if cond.get("type") == "Ready":
            ready = cond  # the last one wins, as in upstream's condition map
    status = (
        ["Unknown"] if ready is None else ["Ready" if ready.get("status") == "True" else "NotReady"]
    )
    if get(node, "spec", "unschedulable") is True:
        status.append("SchedulingDisabled")
    return ",".join(status)


def _node_roles(node: Obj) -> str:
    roles: set[str] = set()
    for key, value in as_map(get(node, "metadata", "labels")).items():
        if key.startswith(_ROLE_PREFIX) and key[len(_ROLE_PREFIX) :]:
            roles.add(key[len(_ROLE_PREFIX) :])
        elif key == _LEGACY_ROLE_LABEL and as_str(value):
            roles.add(as_str(value))
    return ",".join(sorted(roles)) or NONE


def _node_address(node: Obj, kind: str) -> str:
    for address in maps(get(node, "status", "addresses")):
        if address.get("type") == kind:
            return as_str(address.get("address"))
    return NONE


def node_cells(node: Obj, now: datetime) -> list[Any]:
    info = as_map(get(node, "status", "nodeInfo"))
    return [
        name_of(node),
        _node_status(node),
        _node_roles(node),
        age(node, now),
        as_str(info.get("kubeletVersion")),
        _node_address(node, "InternalIP"),
        _node_address(node, "ExternalIP"),
        as_str(info.get("osImage")) or UNKNOWN,
        as_str(info.get("kernelVersion")) or UNKNOWN,
        as_str(info.get("containerRuntimeVersion")) or UNKNOWN,
    ]


# --- namespaces --------------------------------------------------------------------------

NAMESPACE_COLUMNS = (
    NAME_COLUMN,
    column("Status", "string", "The status of the namespace"),
    AGE_COLUMN,
)


def namespace_cells(ns: Obj, now: datetime) -> list[Any]:
    return [name_of(ns), as_str(get(ns, "status", "phase")), age(ns, now)]


# --- config objects ----------------------------------------------------------------------

CONFIG_MAP_COLUMNS = (
    NAME_COLUMN,
    column(
        "Data",
        "string",
        "Data contains the configuration data. Each key must consist of alphanumeric characters,"
        " '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field."
        " The keys stored in Data must not overlap with the keys in the BinaryData field, this"
        " is enforced during validation process.",
    ),
    AGE_COLUMN,
)


def config_map_cells(cm: Obj, now: datetime) -> list[Any]:
    count = len(as_map(cm.get("data"))) + len(as_map(cm.get("binaryData")))
    return [name_of(cm), count, age(cm, now)]


SECRET_COLUMNS = (
    NAME_COLUMN,
    column(
        "Type",
        "string",
        "Used to facilitate programmatic handling of secret data. More info:"
        " https://kubernetes.io/docs/concepts/configuration/secret/#secret-types",
    ),
    column(
        "Data",
        "string",
        "Data contains the secret data. Each key must consist of alphanumeric characters, '-',"
        " '_' or '.'. The serialized form of the secret data is a base64 encoded string,"
        " representing the arbitrary (possibly non-string) data value here. Described in"
        " https://tools.ietf.org/html/rfc4648#section-4",
    ),
    AGE_COLUMN,
)


def secret_cells(secret: Obj, now: datetime) -> list[Any]:
    secret_type = as_str(secret.get("type")) or "Opaque"
    return [name_of(secret), secret_type, len(as_map(secret.get("data"))), age(secret, now)]


SERVICE_ACCOUNT_COLUMNS = (
    NAME_COLUMN,
    column(
        "Secrets",
        "string",
        "Secrets is a list of the secrets in the same namespace that pods running using this"
        " ServiceAccount are allowed to use. Pods are only limited to this list if this service"
        ' account has a "kubernetes.io/enforce-mountable-secrets" annotation set to "true". The'
        ' "kubernetes.io/enforce-mountable-secrets" annotation is deprecated since v1.32. Prefer'
        " separate namespaces to isolate access to mounted secrets. This field should not be"
        " used to find auto-generated service account token secrets for use outside of pods."
        " Instead, tokens can be requested directly using the TokenRequest API, or service"
        " account token secrets can be manually created. More info:"
        " https://kubernetes.io/docs/concepts/configuration/secret",
    ),
    AGE_COLUMN,
)


def service_account_cells(sa: Obj, now: datetime) -> list[Any]:
    return [name_of(sa), len(as_list(sa.get("secrets"))), age(sa, now)]


# --- quotas ------------------------------------------------------------------------------

RESOURCE_QUOTA_COLUMNS = (
    NAME_COLUMN,
    column(
        "Request",
        "string",
        "Request represents a minimum amount of cpu/memory that a container may consume.",
    ),
    column(
        "Limit",
        "string",
        "Limits control the maximum amount of cpu/memory that a container may use independent"
        " of contention on the node.",
    ),
    AGE_COLUMN,
)


def _quantity(value: Any) -> str:
    # Quantities are printed as stored; the API server canonicalises them on write.
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return "0"


def resource_quota_cells(quota: Obj, now: datetime) -> list[Any]:
    hard = as_map(get(quota, "status", "hard"))
    used = as_map(get(quota, "status", "used"))
    requests: list[str] = []
    limits: list[str] = []
    for resource in sorted(hard):
        target = limits if resource.split(".")[0] == "limits" and "." in resource else requests
        target.append(f"{resource}: {_quantity(used.get(resource))}/{_quantity(hard[resource])}")
    return [name_of(quota), ", ".join(requests), ", ".join(limits), age(quota, now)]
