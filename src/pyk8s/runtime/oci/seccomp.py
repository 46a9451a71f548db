"""Seccomp profiles for the OCI spec: ``RuntimeDefault``, ``Localhost/<path>``, none.

**The default profile is a denylist**, not upstream's shape. containerd and Docker ship a
default-deny profile with an allowlist of ~350 syscalls; writing such a list by hand for
this kernel (6.x) and every architecture is easy to get subtly wrong, and a wrong
allowlist breaks ordinary programs in confusing ways (glibc's ``clone3`` fallback, new
``*time64`` calls, ``rseq``, ...). So this profile allows by default and refuses, with
``EPERM``, the calls Docker's profile keeps from unprivileged containers:

- always (whatever the capabilities): the kernel keyring (``add_key``, ``keyctl``,
  ``request_key``: keys are not namespaced), ``userfaultfd``, ``io_uring_*`` (blocked by
  Docker and containerd since 2023), obsolete calls (``uselib``, ``ustat``, ``sysfs``,
  ``_sysctl``, ``create_module``, ``get_kernel_syms``, ``query_module``, ``nfsservctl``,
  ``vm86``, ``vm86old``);
- unless the container holds the capability that the kernel would check anyway
  (:data:`GATED`): module loading, kexec and reboot, ``acct``, clock setting, swap,
  mounts and the new mount API, ``pivot_root``, ``unshare``/``setns``, ``clone`` with a
  namespace flag and ``clone3`` (which cannot be filtered by flags, so it answers
  ``ENOSYS`` and libc falls back to ``clone``), ``bpf``, ``perf_event_open``,
  ``open_by_handle_at``, ``quotactl``, ``fanotify_init``, ``lookup_dcookie``, ``iopl``/
  ``ioperm``, ``syslog``, ``vhangup``, ``kcmp``/``pidfd_getfd``.

Allowed as Docker does on kernels >= 4.8: ``ptrace`` and ``process_vm_readv/writev`` (the
kernel's ptrace access checks apply). Not filtered: ``personality`` (Docker allows a few
personas only; seccomp cannot express "not one of these" in a single rule).

The profile names the native architecture and its compat ones (x86_64 + x86 + x32), so
32-bit entry points meet the same rules. runc skips syscall names its libseccomp does not
know, so the list may name calls newer than the library.

``Localhost/<path>``: the file is an OCI ``LinuxSeccomp`` document (the format containerd
loads; Docker-format extras are dropped, as Go's decoder drops them). A privileged
container gets no profile at all (containerd's rule).
"""

from __future__ import annotations

import json
import platform
from collections.abc import Collection
from typing import Any

from pyk8s.runtime.interface import RuntimeOperationError

EPERM = 1
ENOSYS = 38

ALWAYS_DENIED = (
    "add_key", "keyctl", "request_key", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "uselib", "ustat", "sysfs", "_sysctl", "create_module", "get_kernel_syms",
    "query_module", "nfsservctl", "vm86", "vm86old",
)

GATED: dict[str, tuple[str, ...]] = {
    "CAP_SYS_MODULE": ("init_module", "finit_module", "delete_module"),
    "CAP_SYS_BOOT": ("kexec_load", "kexec_file_load", "reboot"),
    "CAP_SYS_PACCT": ("acct",),
    "CAP_SYS_TIME": ("settimeofday", "stime", "clock_settime", "clock_settime64"),
    "CAP_SYS_ADMIN": ("mount", "umount", "umount2", "pivot_root", "unshare", "setns",
                      "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree",
                      "mount_setattr", "swapon", "swapoff", "quotactl", "quotactl_fd",
                      "fanotify_init", "lookup_dcookie", "sethostname", "setdomainname"),
    "CAP_DAC_READ_SEARCH": ("open_by_handle_at",),
    "CAP_SYS_RAWIO": ("iopl", "ioperm"),
    "CAP_SYSLOG": ("syslog",),
    "CAP_SYS_TTY_CONFIG": ("vhangup",),
    "CAP_SYS_PTRACE": ("kcmp", "pidfd_getfd", "process_madvise"),
}
"""Capability → the calls refused without it."""

EITHER: dict[str, tuple[str, ...]] = {
    "bpf": ("CAP_SYS_ADMIN", "CAP_BPF"),
    "perf_event_open": ("CAP_SYS_ADMIN", "CAP_PERFMON"),
}
"""Calls allowed with any one of several capabilities."""

CLONE_NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000,
                         0x20000000, 0x40000000, 0x00000080)
"""CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME."""

ARCHITECTURES = {
    "x86_64": ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"),
    "aarch64": ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"),
    "ppc64le": ("SCMP_ARCH_PPC64LE",),
    "s390x": ("SCMP_ARCH_S390X", "SCMP_ARCH_S390"),
    "riscv64": ("SCMP_ARCH_RISCV64",),
}

OCI_FIELDS = ("defaultAction", "defaultErrnoRet", "architectures", "flags", "listenerPath",
              "listenerMetadata", "syscalls")


def default_profile(capabilities: Collection[str], machine: str | None = None
                    ) -> dict[str, Any]:
    """``RuntimeDefault`` for a container holding ``capabilities`` (``CAP_`` names)."""
    held = set(capabilities)
    denied = list(ALWAYS_DENIED)
    for cap, calls in GATED.items():
        if cap not in held:
            denied += calls
    denied += [call for call, caps in EITHER.items() if not held.intersection(caps)]
    rules: list[dict[str, Any]] = [
        {"names": denied, "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM}]
    if "CAP_SYS_ADMIN" not in held:
        rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS})
        # One rule per flag: the rules of one call are alternatives, its args a conjunction.
        rules += [{"names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM,
                   "args": [{"index": 0, "value": flag, "valueTwo": flag,
                             "op": "SCMP_CMP_MASKED_EQ"}]}
                  for flag in CLONE_NAMESPACE_FLAGS]
    arch = machine or platform.machine()
    return {"defaultAction": "SCMP_ACT_ALLOW",
            "architectures": list(ARCHITECTURES.get(arch, ())),
            "syscalls": rules}


def load_localhost(path: str) -> dict[str, Any]:
    """A ``Localhost`` profile from the node's disk; a missing or unreadable file is the
    container's ``CreateContainerError``, as with containerd."""
    try:
        with open(path, encoding="utf-8") as f:
            document = json.load(f)
    except OSError as exc:
        raise RuntimeOperationError(
            "CreateContainerError", f"failed to generate seccomp spec opts: cannot load "
            f"seccomp profile {path!r}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise RuntimeOperationError(
            "CreateContainerError", f"failed to generate seccomp spec opts: decoding "
            f"seccomp profile {path!r} failed: {exc}") from None
    if not isinstance(document, dict) or "defaultAction" not in document:
        raise RuntimeOperationError(
            "CreateContainerError", f"failed to generate seccomp spec opts: seccomp "
            f"profile {path!r} has no defaultAction")
    return {k: document[k] for k in OCI_FIELDS if k in document}


def profile(setting: str, capabilities: Collection[str], *, privileged: bool = False
            ) -> dict[str, Any] | None:
    """The spec's ``linux.seccomp`` for a ``SecurityContext.seccomp`` value, or ``None``."""
    if privileged or setting in ("", "Unconfined"):
        return None
    if setting == "RuntimeDefault":
        return default_profile(capabilities)
    kind, _, path = setting.partition("/")
    if kind == "Localhost" and path:
        return load_localhost("/" + path.lstrip("/"))
    raise RuntimeOperationError("CreateContainerError",
                                f"failed to generate seccomp spec opts: unknown seccomp "
                                f"profile {setting!r}")
