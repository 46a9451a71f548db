"""Pod networking through CNI plugins (the reference ``bridge`` + ``host-local``), run as
the CNI spec says: the plugin binary, ``CNI_*`` variables, the network config on stdin,
a result (or an error) as JSON on stdout.

One network per node: a Linux bridge whose address is the pods' gateway, addresses from the
node's pod CIDR handed out by ``host-local`` (its reservations under ``data_dir``, freed
on DEL). Loopback is already up in every pod (:mod:`.sandbox`), so the ``loopback`` plugin
is not needed. Not here yet: ``portmap`` (hostPort), several networks, CNI conflist files
from ``/etc/cni/net.d`` (the configuration is built from :class:`CniConfig`).

Errors become :class:`RuntimeOperationError` with the plugin's own ``msg``, as the kubelet
words a failed sandbox (``CreatePodSandboxError``).
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyk8s.runtime.interface import RuntimeOperationError

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
    """SNAT traffic leaving the pod CIDR (pods reach beyond the node)."""
    mtu: int = 0


class Cni:
    def __init__(self, config: CniConfig, data_dir: Path) -> None:
        self.config = config
        self.data_dir = Path(config.data_dir) if config.data_dir else data_dir
        if not (Path(config.bin_dir) / "bridge").exists():
            raise RuntimeOperationError(
                "RuntimeUnavailable", f"CNI plugins not found in {config.bin_dir} (Debian: "
                "apt-get install containernetworking-plugins)")

    def network(self) -> dict[str, Any]:
        c = self.config
        net: dict[str, Any] = {
            "cniVersion": CNI_VERSION, "name": c.network_name, "type": "bridge",
            "bridge": c.bridge, "isGateway": True, "ipMasq": c.ip_masq, "hairpinMode": True,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": c.subnet}]],
                     "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(self.data_dir)}}
        if c.mtu:
            net["mtu"] = c.mtu
        return net

    def _exec(self, command: str, container_id: str, netns: str) -> dict[str, Any]:
        env = {"CNI_COMMAND": command, "CNI_CONTAINERID": container_id, "CNI_NETNS": netns,
               "CNI_IFNAME": "eth0", "CNI_PATH": self.config.bin_dir,
               "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
        try:
            proc = subprocess.run([str(Path(self.config.bin_dir) / "bridge")],
                                  input=json.dumps(self.network()).encode(), env=env,
                                  capture_output=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeOperationError("CreatePodSandboxError",
                                        f"CNI bridge {command}: {exc}") from None
        try:
            result = json.loads(proc.stdout) if proc.stdout.strip() else {}
        except ValueError:
            result = {"msg": proc.stdout.decode(errors="replace")[-500:]}
        if proc.returncode != 0:
            message = result.get("msg") or proc.stderr.decode(errors="replace")[-500:]
            details = result.get("details")
            raise RuntimeOperationError(
                "CreatePodSandboxError" if command == "ADD" else "StopPodSandboxError",
                f"plugin type=\"bridge\" name=\"{self.config.network_name}\" failed "
                f"({command.lower()}): {message}" + (f": {details}" if details else ""))
        return result  # type: ignore[no-any-return]

    def add(self, container_id: str, netns: str) -> str:
        """Attach the pod's network namespace; returns its IP."""
        result = self._exec("ADD", container_id, netns)
        for ip in result.get("ips") or ():
            address = str(ip.get("address", ""))
            if address:
                return address.split("/")[0]
        raise RuntimeOperationError("CreatePodSandboxError",
                                    "the CNI plugin returned no IP address")

    def delete(self, container_id: str, netns: str) -> None:
        """Detach and free the IP (safe to repeat, and after the namespace is gone)."""
        self._exec("DEL", container_id, netns)
