"""The OCI runtime spec (``config.json``) of one container: pod spec + image config + host.

Pure functions, no I/O beyond reading ``/proc/self/status`` (the host's capability bounding
set) and the rootfs's ``/etc/passwd`` for a named image user, so the rules are testable
without root:

- **argv** by upstream's rules (kubelet + containerd): ``command`` replaces the image's
  Entrypoint *and* Cmd; ``args`` alone replace Cmd and keep the Entrypoint; neither: the
  image's Entrypoint + Cmd.
- **env**: the image's, then the container's (same name: the container wins); a ``PATH``
  if neither sets one; ``HOSTNAME`` as the pod's hostname.
- **cwd**: the container's ``workingDir``, else the image's, else ``/``.
- **user**: the image's ``User`` (``uid[:gid]`` or names from the rootfs's passwd/group).
- Host quirks (``../shared/reference/linux-runtime-facts.md``): ``oomScoreAdj`` is clamped
  to ``>= 0`` when the host lacks CAP_SYS_RESOURCE (containerd's
  ``restrict_oom_score_adj``); capabilities are intersected with the host's bounding set;
  no AppArmor profile; an absolute ``cgroupsPath``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyk8s.runtime.images.manifest import ImageConfig
from pyk8s.runtime.interface import ContainerConfig, RuntimeOperationError

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

CAPABILITIES = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
                "CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
                "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
                "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
                "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
                "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
                "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
                "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
                "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
                "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
                "CAP_CHECKPOINT_RESTORE")
"""By bit number (``linux/capability.h``)."""

DEFAULT_CAPABILITIES = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER",
                        "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID",
                        "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                        "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE")
"""containerd's (and Docker's) default set for unprivileged containers."""

MASKED_PATHS = ("/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi")
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")


def host_capabilities(status: str | None = None) -> set[str]:
    """Names of the capabilities in this process's bounding set (``CapBnd``)."""
    if status is None:
        try:
            status = Path("/proc/self/status").read_text()
        except OSError:
            return set(CAPABILITIES)
    for line in status.splitlines():
        if line.startswith("CapBnd:"):
            mask = int(line.split()[1], 16)
            return {name for bit, name in enumerate(CAPABILITIES) if mask >> bit & 1}
    return set(CAPABILITIES)


def argv(config: ContainerConfig, image: ImageConfig) -> list[str]:
    if config.command:
        out = [*config.command, *config.args]
    elif config.args:
        out = [*image.entrypoint, *config.args]
    else:
        out = [*image.entrypoint, *image.cmd]
    if not out:
        raise RuntimeOperationError(
            "CreateContainerError", f"container {config.name!r}: no command specified "
            "(neither the pod nor the image gives one)")
    return out


def environment(config: ContainerConfig, image: ImageConfig, hostname: str) -> list[str]:
    env: dict[str, str] = {}
    for item in image.env:
        key, _, value = item.partition("=")
        env[key] = value
    env.setdefault("PATH", DEFAULT_PATH)
    if hostname:
        env["HOSTNAME"] = hostname
    env.update(config.env)
    return [f"{k}={v}" for k, v in env.items()]


def _lookup(path: Path, name: str, field: int = 2) -> int | None:
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split(":")
            if len(parts) > field and parts[0] == name and parts[field].isdigit():
                return int(parts[field])
    return None


def user(spec: str, rootfs: Path | None) -> dict[str, int]:
    """``uid[:gid]`` with names resolved in the image's own ``/etc/passwd`` and
    ``/etc/group`` (not the host's)."""
    if not spec:
        return {"uid": 0, "gid": 0}
    name, _, group = spec.partition(":")
    passwd = rootfs / "etc/passwd" if rootfs else None
    if name.isdigit():
        uid = int(name)
    else:
        found = _lookup(passwd, name) if passwd else None
        if found is None:
            raise RuntimeOperationError("CreateContainerError",
                                        f"unable to find user {name}: no matching entries "
                                        "in passwd file")
        uid = found
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            found = _lookup(rootfs / "etc/group", group) if rootfs else None
            if found is None:
                raise RuntimeOperationError("CreateContainerError",
                                            f"unable to find group {group}")
            gid = found
    else:
        gid = 0
        if passwd is not None:
            with contextlib.suppress(OSError):
                for line in passwd.read_text(errors="replace").splitlines():
                    parts = line.split(":")
                    if len(parts) > 3 and parts[2] == str(uid) and parts[3].isdigit():
                        gid = int(parts[3])
                        break
    return {"uid": uid, "gid": gid}


@dataclass(frozen=True)
class PodContext:
    """What the sandbox gives each of its containers."""

    hostname: str
    namespaces: Mapping[str, str]
    """``{"network": path, "ipc": path, "uts": path}``: joined; missing types are new."""
    etc_files: Mapping[str, str]
    """``/etc/hosts`` etc. → the pod's host file, bind-mounted read-only."""
    cgroups_path: str
    oom_score_adj: int = 0


def build(config: ContainerConfig, image: ImageConfig, pod: PodContext, rootfs: Path,
          *, host_caps: set[str] | None = None, can_lower_oom: bool | None = None
          ) -> dict[str, Any]:
    """The whole ``config.json``."""
    caps_host = host_capabilities() if host_caps is None else host_caps
    caps = [c for c in DEFAULT_CAPABILITIES if c in caps_host]
    if can_lower_oom is None:
        can_lower_oom = "CAP_SYS_RESOURCE" in caps_host
    oom = pod.oom_score_adj if can_lower_oom else max(pod.oom_score_adj, 0)
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                     "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ]
    taken = {m.container_path.rstrip("/") for m in config.mounts}
    for target, source in pod.etc_files.items():
        if target not in taken:
            mounts.append({"destination": target, "type": "bind", "source": source,
                           "options": ["rbind", "rprivate", "ro"]})
    for m in config.mounts:
        mounts.append({"destination": m.container_path, "type": "bind", "source": m.host_path,
                       "options": ["rbind", "rprivate", "ro" if m.read_only else "rw"]})
    namespaces: list[dict[str, str]] = [{"type": "pid"}, {"type": "mount"}]
    for kind in ("network", "ipc", "uts"):
        if kind in pod.namespaces:
            namespaces.append({"type": kind, "path": pod.namespaces[kind]})
        elif kind != "network":
            namespaces.append({"type": kind})
    r = config.resources
    resources: dict[str, Any] = {"devices": [{"allow": False, "access": "rwm"}]}
    if r.memory_limit_bytes:
        resources["memory"] = {"limit": r.memory_limit_bytes}
    cpu: dict[str, Any] = {}
    if r.cpu_shares:
        cpu["shares"] = max(r.cpu_shares, 2)
    if r.cpu_quota_us:
        cpu.update(quota=r.cpu_quota_us, period=r.cpu_period_us)
    if cpu:
        resources["cpu"] = cpu
    image_user = user(image.user, rootfs)
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": image_user,
            "args": argv(config, image),
            "env": environment(config, image, pod.hostname),
            "cwd": config.working_dir or image.working_dir or "/",
            "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
            "noNewPrivileges": False,
            "oomScoreAdj": oom,
        },
        "root": {"path": str(rootfs), "readonly": False},
        "hostname": pod.hostname,
        "mounts": mounts,
        "linux": {
            "cgroupsPath": pod.cgroups_path,
            "resources": resources,
            "namespaces": namespaces,
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
        },
        "annotations": {k: v for k, v in config.annotations.items() if isinstance(v, str)},
    }

