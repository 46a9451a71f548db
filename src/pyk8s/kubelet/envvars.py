"""A container's environment, as upstream's ``makeEnvironmentVariables`` builds it.

``envFrom`` first (ConfigMaps and Secrets, with ``prefix``; keys that are not valid variable
names are skipped), then ``env`` in order: ``value`` with ``$(VAR)`` expansion against what
was defined before (``$$`` escapes), ``fieldRef`` (metadata and status fields),
``resourceFieldRef`` (limits/requests with a divisor; no limit means the node's
allocatable), ``configMapKeyRef`` and ``secretKeyRef``. The same expansion applies to the
command and args.

A missing ConfigMap/Secret/key that is not ``optional`` is a :class:`ConfigError`, which the
pod worker reports as the container's waiting reason ``CreateContainerConfigError``.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pyk8s.machinery.errors import ApiError
from pyk8s.machinery.resources import CATALOGUE

Obj = dict[str, Any]
Getter = Callable[[Any, str, str], Awaitable[Obj]]
"""``await get(resource, namespace, name)`` (``ApiClient.get``)."""

CONFIGMAPS = CATALOGUE.resource("v1", "configmaps")
SERVICES = CATALOGUE.resource("v1", "services")
SECRETS = CATALOGUE.resource("v1", "secrets")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")

_SUFFIX = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
           "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


class ConfigError(Exception):
    """Worded as upstream's CreateContainerConfigError messages."""


def parse_quantity(text: str | int | float) -> float:
    """A resource.Quantity (``500m``, ``64Mi``, ``1.5``) as a number."""
    if isinstance(text, int | float):
        return float(text)
    m = _QUANTITY.match(text.strip())
    if not m:
        raise ValueError(f"invalid quantity {text!r}")
    if m.group(2) is None and ("e" in m.group(1) or "E" in m.group(1)):
        return float(m.group(1))
    return float(m.group(1)) * _SUFFIX[m.group(2) or ""]


def expand(text: str, env: Mapping[str, str]) -> str:
    """Upstream's ``expansion.Expand``: ``$(VAR)`` from env, ``$$`` -> ``$``, unknown kept."""
    out = []
    i = 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end >= 0:
                    name = text[i + 2:end]
                    out.append(env[name] if name in env else text[i:end + 1])
                    i = end + 1
                    continue
        out.append(text[i])
        i += 1
    return "".join(out)


def field_ref(pod: Obj, path: str) -> str:
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    spec = pod.get("spec") or {}
    m = re.match(r"^metadata\.(labels|annotations)\['(.+)'\]$", path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    simple = {
        "metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"), "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": status.get("hostIP"), "status.podIP": status.get("podIP"),
        "status.hostIPs": ",".join(i.get("ip", "") for i in status.get("hostIPs") or []),
        "status.podIPs": ",".join(i.get("ip", "") for i in status.get("podIPs") or []),
    }
    if path in ("metadata.labels", "metadata.annotations"):
        values = meta.get(path.split(".")[1]) or {}
        return "\n".join(f'{k}="{v}"' for k, v in sorted(values.items()))
    if path not in simple:
        raise ConfigError(f"unsupported fieldRef {path!r}")
    return str(simple[path] or "")


def resource_field_ref(container: Obj, ref: Obj, allocatable: Mapping[str, str]) -> str:
    """Upstream ``ExtractContainerResourceValue``: rounded up to the divisor."""
    resource = ref.get("resource", "")
    kind, _, name = resource.partition(".")
    values = ((container.get("resources") or {}).get(kind) or {})
    raw = values.get(name)
    if raw is None and kind == "requests":
        raw = ((container.get("resources") or {}).get("limits") or {}).get(name)
    if raw is None:
        raw = allocatable.get(name, "0") if kind == "limits" else "0"
    divisor = parse_quantity(ref.get("divisor") or "1")
    if divisor == 0:
        divisor = 1
    return str(math.ceil(parse_quantity(raw) / divisor))


async def _fetch(get: Getter, res: Any, namespace: str, name: str, kind: str,
                 optional: bool) -> Obj | None:
    try:
        return await get(res, namespace, name)
    except ApiError as exc:
        if exc.code == 404:
            if optional:
                return None
            raise ConfigError(f'{kind.lower()} "{name}" not found') from None
        raise


def _data(obj: Obj, secret: bool) -> dict[str, str]:
    if not secret:
        return {**(obj.get("binaryData") or {}), **(obj.get("data") or {})}
    return {k: base64.b64decode(v).decode(errors="replace")
            for k, v in (obj.get("data") or {}).items()}


async def container_env(pod: Obj, container: Obj, get: Getter,
                        allocatable: Mapping[str, str],
                        base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (the Service variables) comes first; envFrom and env override it."""
    namespace = pod["metadata"]["namespace"]
    env: dict[str, str] = dict(base or {})
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for key, res, kind, secret in (("configMapRef", CONFIGMAPS, "ConfigMap", False),
                                       ("secretRef", SECRETS, "Secret", True)):
            ref = source.get(key)
            if not ref:
                continue
            obj = await _fetch(get, res, namespace, ref.get("name", ""), kind,
                               bool(ref.get("optional")))
            if obj is None:
                continue
            for k, v in _data(obj, secret).items():
                if _ENV_NAME.match(prefix + k):
                    env[prefix + k] = v
    for var in container.get("env") or []:
        name = var.get("name", "")
        if "value" in var or not var.get("valueFrom"):
            env[name] = expand(str(var.get("value", "")), env)
            continue
        vf = var["valueFrom"]
        if "fieldRef" in vf:
            env[name] = field_ref(pod, vf["fieldRef"].get("fieldPath", ""))
        elif "resourceFieldRef" in vf:
            env[name] = resource_field_ref(container, vf["resourceFieldRef"], allocatable)
        else:
            for key, res, kind, secret in (("configMapKeyRef", CONFIGMAPS, "ConfigMap", False),
                                           ("secretKeyRef", SECRETS, "Secret", True)):
                ref = vf.get(key)
                if not ref:
                    continue
                optional = bool(ref.get("optional"))
                obj = await _fetch(get, res, namespace, ref.get("name", ""), kind, optional)
                if obj is None:
                    break
                data = _data(obj, secret)
                if ref.get("key") not in data:
                    if optional:
                        break
                    raise ConfigError(f"couldn't find key {ref.get('key')} in {kind} "
                                      f"{namespace}/{ref.get('name')}")
                env[name] = data[ref["key"]]
                break
    return env


def expand_command(items: list[str], env: Mapping[str, str]) -> list[str]:
    return [expand(str(x), env) for x in items]


def _service_vars(service: Obj) -> dict[str, str]:
    """Docker-links-style variables for one Service (upstream ``envvars.FromServices``)."""
    spec = service.get("spec") or {}
    ip = spec.get("clusterIP") or ""
    if ip in ("", "None"):
        return {}
    name = service["metadata"]["name"].upper().replace("-", "_")
    ports = spec.get("ports") or []
    out = {f"{name}_SERVICE_HOST": ip}
    if not ports:
        return out
    out[f"{name}_SERVICE_PORT"] = str(ports[0].get("port"))
    for p in ports:
        if p.get("name"):
            out[f"{name}_SERVICE_PORT_{p['name'].upper().replace('-', '_')}"] = str(p.get("port"))
    first = ports[0]
    proto0 = str(first.get("protocol") or "TCP").lower()
    out[f"{name}_PORT"] = f"{proto0}://{ip}:{first.get('port')}"
    for p in ports:
        proto = str(p.get("protocol") or "TCP")
        prefix = f"{name}_PORT_{p.get('port')}_{proto.upper()}"
        out[prefix] = f"{proto.lower()}://{ip}:{p.get('port')}"
        out[f"{prefix}_PROTO"] = proto.lower()
        out[f"{prefix}_PORT"] = str(p.get("port"))
        out[f"{prefix}_ADDR"] = ip
    return out


def service_env(services: list[Obj], master: Obj | None, enable_service_links: bool) -> dict[str, str]:
    """The Service variables a container starts with: the ``kubernetes`` Service's always,
    the pod namespace's Services when ``enableServiceLinks`` (the default)."""
    out: dict[str, str] = {}
    if enable_service_links:
        for svc in sorted(services, key=lambda s: s["metadata"]["name"]):
            out.update(_service_vars(svc))
    if master is not None:
        out.update(_service_vars(master))
    return out
