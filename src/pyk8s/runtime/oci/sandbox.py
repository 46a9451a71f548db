"""A pod sandbox without a pause process: its network, IPC and UTS namespaces are *pinned*
by bind-mounting them onto files (as CRI-O's ``pinns`` and ``ip netns add`` do), and every
container of the pod joins them by path.

Why not a pause container: nothing to supervise, nothing to reap, nothing that dies with
a kubelet restart or an OOM; the namespaces live exactly as long as the mounts. They are
made by util-linux ``unshare --net=FILE --ipc=FILE --uts=FILE`` running a few lines of
Python inside them, which set the pod's hostname and bring ``lo`` up. With CNI
(:mod:`.cni`) the pod's ``eth0`` and hostPorts are added afterwards; without
(``network="isolated"``) loopback is the pod's only interface; ``network="host"`` leaves
the network namespace out (pods see the node's network).

Per pod, under its directory: ``ns/{net,ipc,uts}`` (the pins), ``etc/{hostname,hosts,
resolv.conf}`` (bind-mounted read-only into each container).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
import sys
from pathlib import Path

NAMESPACES = {"network": "net", "ipc": "ipc", "uts": "uts"}
MNT_DETACH = 2
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def _umount(path: Path) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.umount2(str(path).encode(), MNT_DETACH)


def create(pod_dir: Path, hostname: str, *, network: str = "isolated", python: str = "",
           host_resolv: str = "/etc/resolv.conf") -> dict[str, str]:
    """Pin the pod's namespaces; returns ``{kind: path}`` for the OCI spec."""
    ns_dir = pod_dir / "ns"
    ns_dir.mkdir(parents=True, exist_ok=True)
    kinds = {k: v for k, v in NAMESPACES.items() if network != "host" or k != "network"}
    for short in kinds.values():
        (ns_dir / short).touch()
    flags = [f"--{short}={ns_dir / short}" for short in kinds.values()]
    proc = subprocess.run(
        ["unshare", *flags, "--", python or sys.executable, "-S", "-c", _INSIDE, hostname],
        capture_output=True, text=True, timeout=30,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    if proc.returncode != 0:
        # Imported here: the helper runs this module in the new namespaces, as fast as it can.
        from pyk8s.runtime.interface import RuntimeOperationError

        remove(pod_dir)
        raise RuntimeOperationError("CreatePodSandboxError",
                                    f"cannot create the pod's namespaces: "
                                    f"{(proc.stderr or proc.stdout).strip()[-500:]}")
    etc = pod_dir / "etc"
    etc.mkdir(exist_ok=True)
    (etc / "hostname").write_text(hostname + "\n")
    write_hosts(pod_dir, hostname, "")
    try:
        resolv = Path(host_resolv).read_text()
    except OSError:
        resolv = ""
    (etc / "resolv.conf").write_text(resolv)
    return {kind: str(ns_dir / short) for kind, short in kinds.items()}


def write_hosts(pod_dir: Path, hostname: str, ip: str) -> None:
    """The pod's ``/etc/hosts``, as the kubelet writes it: localhost, then the pod's IP
    (once the network has given it one) with its hostname."""
    (pod_dir / "etc" / "hosts").write_text(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost "
        f"ip6-localhost ip6-loopback\n{ip or '127.0.1.1'}\t{hostname}\n")


def etc_files(pod_dir: Path) -> dict[str, str]:
    etc = pod_dir / "etc"
    return {f"/etc/{name}": str(etc / name) for name in ("hostname", "hosts", "resolv.conf")
            if (etc / name).exists()}


def remove(pod_dir: Path) -> None:
    """Unpin the namespaces (they vanish once no container uses them)."""
    ns_dir = pod_dir / "ns"
    for short in NAMESPACES.values():
        path = ns_dir / short
        if path.exists():
            _umount(path)
            with contextlib.suppress(OSError):
                path.unlink()


_INSIDE = f"""
import fcntl, socket, struct, sys
if sys.argv[1]:
    socket.sethostname(sys.argv[1])
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    ifreq = struct.pack("16sH14s", b"lo", 0, b"")
    flags = struct.unpack("16sH14s", fcntl.ioctl(s, {SIOCGIFFLAGS}, ifreq))[1]
    fcntl.ioctl(s, {SIOCSIFFLAGS}, struct.pack("16sH14s", b"lo", flags | {IFF_UP}, b""))
"""
"""Runs in the new namespaces (``python -S``: no site, no packages, ~15 ms): the pod's
hostname, loopback up."""
