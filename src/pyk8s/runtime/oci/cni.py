"""Pod networking through CNI plugins (the reference ``bridge`` + ``host-local``, then
``portmap``), run as the CNI spec says: the plugin binary, ``CNI_*`` variables, the network
config on stdin, a result (or an error) as JSON on stdout.

One network per node, a *conflist* of two plugins run as libcni runs a list: a Linux bridge
whose address is the pods' gateway, addresses from the node's pod CIDR handed out by
``host-local`` (its reservations under ``data_dir``, freed on DEL); then ``portmap`` with
``capabilities: {portMappings: true}``, so it alone receives
``runtimeConfig.portMappings`` (the pod's hostPorts). ADD runs the plugins in order, each
given the previous one's result as ``prevResult``; DEL runs them in reverse, each given
the same runtimeConfig and the list's final ADD result (which the caller keeps: the
runtime stores it in ``sandbox.json``, so a restarted kubelet can still DEL). portmap
DNATs ``hostIP:hostPort`` (any local address when no hostIP) to the pod and, with its
default ``snat``, also serves ``127.0.0.1:hostPort`` (it sets ``route_localnet`` on the
bridge). On this machine it writes iptables-nft rules (``table ip nat``, chains
``CNI-HOSTPORT-*`` shared by all pods and ``CNI-DN-*`` per pod); DEL removes the pod's,
the shared ones stay, as upstream.

Loopback is already up in every pod (:mod:`.sandbox`), so the ``loopback`` plugin is not
needed. Not here yet: several networks, CNI conflist files from ``/etc/cni/net.d`` (the
configuration is built from :class:`CniConfig`), CHECK and GC.

Errors become :class:`RuntimeOperationError` with the plugin's own ``msg``, as the kubelet
words a failed sandbox (``CreatePodSandboxError``).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyk8s.runtime.interface import PortMapping, RuntimeOperationError

CNI_VERSION = "1.0.0"


@dataclass(frozen=True)
class CniConfig:
    subnet: str = "10.88.0.0/16"
    """The node's pod CIDR (``node.spec.podCIDR``)."""
    bridge: str = "pyk8s0"
    network_name: str = "pyk8s"
    bin_dir: str = "/usr/lib/cni"
    data_dir: str = ""
    """host-local's reservations; default ``<state_dir>/cni``."""
    ip_masq: bool = True
    """SNAT traffic leaving the pod CIDR (pods reach beyond the node): one node-level rule
    (:func:`ensure_masquerade`), not the bridge plugin's chain per pod, which cost four
    iptables runs under the xtables lock on every ADD and DEL."""
    mtu: int = 0
    portmap: bool = True
    """hostPorts through the ``portmap`` plugin (iptables rules on the node)."""


class Cni:
    def __init__(self, config: CniConfig, data_dir: Path) -> None:
        self.config = config
        self.data_dir = Path(config.data_dir) if config.data_dir else data_dir
        for plugin in self.plugins():
            if not (Path(config.bin_dir) / plugin["type"]).exists():
                raise RuntimeOperationError(
                    "RuntimeUnavailable", f"CNI plugin {plugin['type']!r} not found in "
                    f"{config.bin_dir} (Debian: apt-get install containernetworking-plugins)")

    def network(self) -> dict[str, Any]:
        """The first plugin's configuration, as run (``cniVersion`` and ``name`` in)."""
        return {"cniVersion": CNI_VERSION, "name": self.config.network_name,
                **self.plugins()[0]}

    def plugins(self, port_mappings: Sequence[PortMapping] | None = None
                ) -> list[dict[str, Any]]:
        """The conflist's ``plugins``; for a given sandbox, ``portmap`` only when it maps
        hostPorts (it has nothing to do otherwise, and each run is an exec)."""
        c = self.config
        bridge: dict[str, Any] = {
            "type": "bridge", "bridge": c.bridge, "isGateway": True, "ipMasq": False,
            "hairpinMode": True,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": c.subnet}]],
                     "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(self.data_dir)}}
        if c.mtu:
            bridge["mtu"] = c.mtu
        out = [bridge]
        if c.portmap and (port_mappings is None or runtime_port_mappings(port_mappings)):
            out.append({"type": "portmap", "capabilities": {"portMappings": True}})
        return out

    def _stdin(self, plugin: dict[str, Any], port_mappings: Sequence[PortMapping],
               prev: dict[str, Any] | None) -> dict[str, Any]:
        conf = {"cniVersion": CNI_VERSION, "name": self.config.network_name, **plugin}
        if plugin.get("capabilities", {}).get("portMappings"):
            conf["runtimeConfig"] = {"portMappings": runtime_port_mappings(port_mappings)}
        if prev is not None:
            conf["prevResult"] = prev
        return conf

    def _exec(self, command: str, container_id: str, netns: str,
              conf: dict[str, Any]) -> dict[str, Any]:
        kind = str(conf["type"])
        env = {"CNI_COMMAND": command, "CNI_CONTAINERID": container_id, "CNI_NETNS": netns,
               "CNI_IFNAME": "eth0", "CNI_PATH": self.config.bin_dir,
               "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
        reason = "CreatePodSandboxError" if command == "ADD" else "StopPodSandboxError"
        try:
            proc = subprocess.run([str(Path(self.config.bin_dir) / kind)],
                                  input=json.dumps(conf).encode(), env=env,
                                  capture_output=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeOperationError(reason, f"CNI {kind} {command}: {exc}") from None
        try:
            result = json.loads(proc.stdout) if proc.stdout.strip() else {}
        except ValueError:
            result = {"msg": proc.stdout.decode(errors="replace")[-500:]}
        if proc.returncode != 0:
            message = result.get("msg") or proc.stderr.decode(errors="replace")[-500:]
            details = result.get("details")
            raise RuntimeOperationError(
                reason, f"plugin type=\"{kind}\" name=\"{self.config.network_name}\" "
                f"failed ({command.lower()}): {message}" + (f": {details}" if details else ""))
        return result  # type: ignore[no-any-return]

    def add(self, container_id: str, netns: str,
            port_mappings: Sequence[PortMapping] = ()) -> dict[str, Any]:
        """Attach the pod's network namespace and map its hostPorts; returns the list's
        result (keep it for :meth:`delete`; :func:`pod_ip` reads the address)."""
        result: dict[str, Any] | None = None
        for plugin in self.plugins(port_mappings):
            result = self._exec("ADD", container_id, netns,
                                self._stdin(plugin, port_mappings, result))
        return result or {}

    def delete(self, container_id: str, netns: str,
               port_mappings: Sequence[PortMapping] = (),
               result: dict[str, Any] | None = None) -> None:
        """Unmap the hostPorts, detach and free the IP (safe to repeat, and after the
        namespace is gone). Every plugin is asked even if one fails; the first failure
        is raised."""
        failure: RuntimeOperationError | None = None
        for plugin in reversed(self.plugins(port_mappings)):
            try:
                self._exec("DEL", container_id, netns,
                           self._stdin(plugin, port_mappings, result or None))
            except RuntimeOperationError as exc:
                failure = failure or exc
        if failure is not None:
            raise failure


MASQUERADE_COMMENT = "pyk8s: pods reach beyond the node"


def masquerade_rule(subnet: str) -> list[str]:
    return ["POSTROUTING", "-s", subnet, "!", "-d", subnet, "-m", "comment", "--comment",
            MASQUERADE_COMMENT, "-j", "MASQUERADE"]


def ensure_masquerade(subnet: str) -> bool:
    """The node's one SNAT rule for traffic from its pods to anywhere else (kept across
    restarts, as the node's network set-up; ``remove_masquerade`` undoes it)."""
    rule = masquerade_rule(subnet)
    try:
        if subprocess.run(["iptables", "-w", "-t", "nat", "-C", *rule], capture_output=True,
                          check=False, timeout=30).returncode == 0:
            return True
        return subprocess.run(["iptables", "-w", "-t", "nat", "-A", *rule],
                              capture_output=True, check=False, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def remove_masquerade(subnet: str) -> None:
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        subprocess.run(["iptables", "-w", "-t", "nat", "-D", *masquerade_rule(subnet)],
                       capture_output=True, check=False, timeout=30)


def runtime_port_mappings(port_mappings: Sequence[PortMapping]) -> list[dict[str, Any]]:
    """The ``portMappings`` capability argument (CNI CONVENTIONS.md): lowercase protocol,
    ``hostIP`` only when set; mappings without a hostPort are not forwarded."""
    out = []
    for p in port_mappings:
        if p.host_port <= 0:
            continue
        entry: dict[str, Any] = {"hostPort": p.host_port, "containerPort": p.container_port,
                                 "protocol": (p.protocol or "TCP").lower()}
        if p.host_ip:
            entry["hostIP"] = p.host_ip
        out.append(entry)
    return out


def pod_ip(result: dict[str, Any]) -> str:
    """The pod's first address in a CNI result."""
    for ip in result.get("ips") or ():
        address = str(ip.get("address", ""))
        if address:
            return address.split("/")[0]
    raise RuntimeOperationError("CreatePodSandboxError",
                                "the CNI plugin returned no IP address")
