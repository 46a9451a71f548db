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
- **user**: the image's ``User`` (``uid[:gid]`` or names from the rootfs's passwd/group);
  ``runAsUser`` replaces it whole (the gid is then the image passwd's for that uid, else 0:
  containerd's ``WithUserID``), ``runAsGroup`` replaces the group. ``additionalGids``: the
  primary gid, the image's ``/etc/group`` memberships and ``supplementalGroups``
  (containerd after CVE-2023-25173). ``runAsNonRoot`` is checked as the kubelet checks it,
  refusing with ``CreateContainerConfigError`` and upstream's words.
- **securityContext** (containerd's rules): capabilities start from the default set;
  ``add: [ALL]`` gives every capability, ``drop: [ALL]`` none, then single adds, then single
  drops (names without ``CAP_``; a ``CAP_`` prefix is tolerated). ``privileged``: every
  capability of the host, no masked or read-only paths, ``/sys`` and the cgroup mount
  read-write, every device allowed, no seccomp -- but the host's ``/dev`` is *not* bound
  in (the container's ``/dev`` stays a tmpfs), so devices must be bind-mounted as volumes.
  ``readOnlyRootFilesystem`` → ``root.readonly``; ``allowPrivilegeEscalation: false`` →
  ``noNewPrivileges``; seccomp from :mod:`.seccomp`. No pids limit: the interface's
  ``Resources`` carries none (upstream's is the node-wide ``podPidsLimit``).
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
from pyk8s.runtime.interface import ContainerConfig, RuntimeOperationError, SecurityContext
from pyk8s.runtime.oci import seccomp

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


def _image_groups(rootfs: Path | None, name: str, uid: int) -> list[int]:
    """gids of the image's ``/etc/group`` entries listing the user as a member."""
    if rootfs is None:
        return []
    if name.isdigit() or not name:
        name = ""
        with contextlib.suppress(OSError):
            for line in (rootfs / "etc/passwd").read_text(errors="replace").splitlines():
                parts = line.split(":")
                if len(parts) > 2 and parts[2] == str(uid):
                    name = parts[0]
                    break
    if not name:
        return []
    out = []
    with contextlib.suppress(OSError):
        for line in (rootfs / "etc/group").read_text(errors="replace").splitlines():
            parts = line.split(":")
            if len(parts) > 3 and parts[0] != name and parts[2].isdigit() \
                    and name in parts[3].split(","):
                out.append(int(parts[2]))
    return out


def verify_run_as_non_root(sec: SecurityContext, image_user: str, pod: str,
                           container: str) -> None:
    """The kubelet's ``verifyRunAsNonRoot``, on the image's ``User`` as configured (a
    name is refused even if the image's passwd would map it to a non-zero uid)."""
    if not sec.run_as_non_root:
        return
    where = f'(pod: "{pod}", container: {container})'
    if sec.run_as_user is not None:
        if sec.run_as_user == 0:
            raise RuntimeOperationError("CreateContainerConfigError",
                                        f"container's runAsUser breaks non-root policy {where}")
        return
    name = image_user.partition(":")[0]
    if name and not name.isdigit():
        raise RuntimeOperationError(
            "CreateContainerConfigError", f"container has runAsNonRoot and image has "
            f"non-numeric user ({name}), cannot verify user is non-root {where}")
    if not name or int(name) == 0:
        raise RuntimeOperationError(
            "CreateContainerConfigError",
            f"container has runAsNonRoot and image will run as root {where}")


def process_user(sec: SecurityContext, image_user: str, rootfs: Path | None
                 ) -> dict[str, Any]:
    """``process.user``: the image's user with ``runAsUser``/``runAsGroup`` laid over it."""
    name, _, group = image_user.partition(":")
    if sec.run_as_user is not None:
        name, group = str(sec.run_as_user), ""
    if sec.run_as_group is not None:
        group = str(sec.run_as_group)
    out: dict[str, Any] = user(f"{name}:{group}" if group else name, rootfs)
    gids = {out["gid"], *_image_groups(rootfs, name, out["uid"]), *sec.supplemental_groups}
    out["additionalGids"] = sorted(gids)
    return out


def _cap_name(name: str) -> str:
    upper = name.upper()
    return upper if upper.startswith("CAP_") else "CAP_" + upper


def capabilities(sec: SecurityContext, host_caps: set[str]) -> list[str]:
    """containerd's order: add ALL, drop ALL, then single adds, then single drops; always
    within the host's bounding set (runc refuses a capability the host lacks)."""
    if sec.privileged:
        return [c for c in CAPABILITIES if c in host_caps]
    add = [_cap_name(c) for c in sec.capabilities_add]
    drop = [_cap_name(c) for c in sec.capabilities_drop]
    caps = list(DEFAULT_CAPABILITIES)
    if "CAP_ALL" in add:
        caps = list(CAPABILITIES)
    if "CAP_ALL" in drop:
        caps = []
    caps += [c for c in add if c != "CAP_ALL" and c not in caps]
    caps = [c for c in caps if c not in drop]
    return [c for c in caps if c in host_caps]


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
    pod: str = ""
    """``name_namespace(uid)``, as the kubelet names a pod in its messages."""


def build(config: ContainerConfig, image: ImageConfig, pod: PodContext, rootfs: Path,
          *, host_caps: set[str] | None = None, can_lower_oom: bool | None = None
          ) -> dict[str, Any]:
    """The whole ``config.json``."""
    caps_host = host_capabilities() if host_caps is None else host_caps
    sec = config.security
    verify_run_as_non_root(sec, image.user, pod.pod, config.name)
    caps = capabilities(sec, caps_host)
    sys_ro = [] if sec.privileged else ["ro"]
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
         "options": ["nosuid", "noexec", "nodev", *sys_ro]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", *sys_ro]},
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
    resources: dict[str, Any] = {"devices": [{"allow": sec.privileged, "access": "rwm"}]}
    if r.memory_limit_bytes:
        resources["memory"] = {"limit": r.memory_limit_bytes}
    cpu: dict[str, Any] = {}
    if r.cpu_shares:
        cpu["shares"] = max(r.cpu_shares, 2)
    if r.cpu_quota_us:
        cpu.update(quota=r.cpu_quota_us, period=r.cpu_period_us)
    if cpu:
        resources["cpu"] = cpu
    if r.pids_limit > 0:
        resources["pids"] = {"limit": r.pids_limit}
    linux: dict[str, Any] = {
        "cgroupsPath": pod.cgroups_path,
        "resources": resources,
        "namespaces": namespaces,
        "maskedPaths": [] if sec.privileged else list(MASKED_PATHS),
        "readonlyPaths": [] if sec.privileged else list(READONLY_PATHS),
    }
    profile = seccomp.profile(sec.seccomp, caps, privileged=sec.privileged)
    if profile is not None:
        linux["seccomp"] = profile
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": process_user(sec, image.user, rootfs),
            "args": argv(config, image),
            "env": environment(config, image, pod.hostname),
            "cwd": config.working_dir or image.working_dir or "/",
            "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
            "noNewPrivileges": sec.no_new_privileges,
            "oomScoreAdj": oom,
        },
        "root": {"path": str(rootfs), "readonly": sec.read_only_root_filesystem},
        "hostname": pod.hostname,
        "mounts": mounts,
        "linux": linux,
        "annotations": {k: v for k, v in config.annotations.items() if isinstance(v, str)},
    }

