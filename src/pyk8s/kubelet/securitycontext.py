"""What the kubelet tells the runtime about a container's security and a pod's hostPorts.

Pure functions over the pod as the API returns it (plain dicts):

- :func:`security_of`: upstream's ``DetermineEffectiveSecurityContext`` plus the kubelet's
  conversion to CRI. The pod's ``securityContext`` gives ``runAsUser``, ``runAsGroup``,
  ``runAsNonRoot`` and ``seccompProfile``, each replaced by the container's own when set;
  ``supplementalGroups`` (and ``fsGroup``, which the kubelet adds to them) come from the pod
  only; ``capabilities``, ``privileged``, ``readOnlyRootFilesystem`` and
  ``allowPrivilegeEscalation`` from the container only. ``allowPrivilegeEscalation: false``
  (explicitly) is ``no_new_privileges``. A ``Localhost`` seccomp profile is a path under the
  kubelet's seccomp root (upstream: ``<root-dir>/seccomp``).
- :func:`port_mappings_of`: the sandbox's hostPorts, from the app containers' ``ports``
  (upstream's ``generatePodSandboxConfig``): those with a ``hostPort``, protocol ``TCP``
  by default, a port repeated within one container counted once.

Whether the image may run as root (``runAsNonRoot``) is checked by the runtime, which knows
the image's user; it answers ``CreateContainerConfigError`` with upstream's message. Not
here: SELinux, AppArmor, Windows options, ``procMount``, sysctls.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pyk8s.runtime import PortMapping, SecurityContext

DEFAULT_SECCOMP_ROOT = "/var/lib/pyk8s/kubelet/seccomp"


def _seccomp(profile: dict[str, Any] | None, root: str | Path) -> str:
    kind = (profile or {}).get("type") or ""
    if kind == "Localhost":
        relative = str(profile.get("localhostProfile") or "") if profile else ""
        return "Localhost/" + os.path.normpath(os.path.join(str(root), relative))
    if kind in ("RuntimeDefault", "Unconfined"):
        return str(kind)
    return ""


def security_of(pod: dict[str, Any], container: dict[str, Any], *,
                seccomp_root: str | Path = DEFAULT_SECCOMP_ROOT) -> SecurityContext:
    """The container's effective security settings (see the module docstring)."""
    pod_sc: dict[str, Any] = (pod.get("spec") or {}).get("securityContext") or {}
    sc: dict[str, Any] = container.get("securityContext") or {}

    def merged(name: str) -> Any:
        return sc[name] if sc.get(name) is not None else pod_sc.get(name)

    groups: list[int] = []
    for gid in [*(pod_sc.get("supplementalGroups") or ()), pod_sc.get("fsGroup")]:
        if gid is not None and int(gid) not in groups:
            groups.append(int(gid))
    caps = sc.get("capabilities") or {}
    user, group = merged("runAsUser"), merged("runAsGroup")
    return SecurityContext(
        run_as_user=None if user is None else int(user),
        run_as_group=None if group is None else int(group),
        run_as_non_root=bool(merged("runAsNonRoot")),
        supplemental_groups=tuple(groups),
        privileged=bool(sc.get("privileged")),
        read_only_root_filesystem=bool(sc.get("readOnlyRootFilesystem")),
        capabilities_add=tuple(str(c) for c in caps.get("add") or ()),
        capabilities_drop=tuple(str(c) for c in caps.get("drop") or ()),
        no_new_privileges=sc.get("allowPrivilegeEscalation") is False,
        seccomp=_seccomp(merged("seccompProfile"), seccomp_root),
    )


def port_mappings_of(pod: dict[str, Any]) -> list[PortMapping]:
    """The pod's hostPorts, in container and port order."""
    out: list[PortMapping] = []
    for container in (pod.get("spec") or {}).get("containers") or ():
        seen: set[tuple[Any, ...]] = set()
        for port in container.get("ports") or ():
            host_port = int(port.get("hostPort") or 0)
            if host_port <= 0:
                continue
            mapping = PortMapping(container_port=int(port.get("containerPort") or 0),
                                  host_port=host_port,
                                  protocol=str(port.get("protocol") or "TCP"),
                                  host_ip=str(port.get("hostIP") or ""))
            key = (port.get("name") or "",) if port.get("name") else \
                (mapping.protocol, mapping.host_ip, mapping.container_port, host_port)
            if key in seen:
                continue
            seen.add(key)
            out.append(mapping)
    return out
