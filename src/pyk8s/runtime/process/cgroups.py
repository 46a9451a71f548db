"""Just enough cgroup v1 for the process runtime: limits, accounting, kill, OOM detection.

Hierarchies are found from ``/proc/self/mountinfo`` (``cpu`` and ``cpuacct`` are separate
mounts on some hosts, co-mounted on others), never from hard-coded paths. A container's
cgroup is created *below the creating process's own cgroup* in each hierarchy
(``<own>/<parent>/<container-id>``), so a kubelet that itself runs in a limited cgroup keeps
its containers inside that limit instead of escaping it.

Everything here fails soft: without root or without v1 hierarchies, :func:`create` returns a
set with no paths and the runtime runs the container unlimited (and says so in its status).
cgroup v2 (unified) is not handled yet.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "freezer")


def v1_mounts(mountinfo: str | None = None) -> dict[str, Path]:
    """``{controller: mount point}`` for every cgroup v1 hierarchy we use."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return {}
    found: dict[str, Path] = {}
    for line in mountinfo.splitlines():
        pre, sep, post = line.partition(" - ")
        if not sep:
            continue
        post_fields = post.split()
        if len(post_fields) < 3 or post_fields[0] != "cgroup":
            continue
        options = set(post_fields[2].split(","))
        mount_point = Path(pre.split()[4])
        for controller in CONTROLLERS:
            if controller in options and controller not in found:
                found[controller] = mount_point
    return found


def own_paths(proc_cgroup: str | None = None) -> dict[str, str]:
    """The calling process's cgroup path in each v1 hierarchy (``/proc/self/cgroup``)."""
    if proc_cgroup is None:
        try:
            proc_cgroup = Path("/proc/self/cgroup").read_text()
        except OSError:
            return {}
    paths: dict[str, str] = {}
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3 or not parts[1]:
            continue
        for controller in parts[1].split(","):
            paths[controller] = parts[2]
    return paths


@dataclass
class CgroupSet:
    """One container's cgroup in each available hierarchy."""

    paths: dict[str, Path] = field(default_factory=dict)
    owned_levels: int = 1
    """How many levels of each path we created (container, pod, root): removed when empty."""

    def to_json(self) -> dict[str, object]:
        return {"paths": {k: str(v) for k, v in self.paths.items()},
                "owned_levels": self.owned_levels}

    @classmethod
    def from_json(cls, data: dict[str, object] | None) -> CgroupSet:
        data = data or {}
        paths = data.get("paths") or {}
        assert isinstance(paths, dict)
        levels = data.get("owned_levels", 1)
        return cls({k: Path(v) for k, v in paths.items()},
                   levels if isinstance(levels, int) else 1)

    def _write(self, controller: str, name: str, value: str) -> bool:
        path = self.paths.get(controller)
        if path is None:
            return False
        try:
            (path / name).write_text(value)
            return True
        except OSError:
            return False

    def _read(self, controller: str, name: str) -> str | None:
        path = self.paths.get(controller)
        if path is None:
            return None
        try:
            return (path / name).read_text()
        except OSError:
            return None

    def add(self, pid: int) -> None:
        for controller in self.paths:
            self._write(controller, "cgroup.procs", str(pid))

    def set_memory_limit(self, limit: int) -> bool:
        return self._write("memory", "memory.limit_in_bytes", str(limit))

    def set_pids_limit(self, limit: int) -> bool:
        return self._write("pids", "pids.max", str(limit))

    def set_cpu(self, quota_us: int, period_us: int, shares: int) -> bool:
        ok = True
        if quota_us > 0:
            ok = self._write("cpu", "cpu.cfs_period_us", str(period_us)) and ok
            ok = self._write("cpu", "cpu.cfs_quota_us", str(quota_us)) and ok
        if shares > 0:
            ok = self._write("cpu", "cpu.shares", str(max(shares, 2))) and ok
        return ok

    def pids(self) -> list[int]:
        for controller in ("pids", "freezer", "memory", "cpu"):
            text = self._read(controller, "cgroup.procs")
            if text is not None:
                return [int(p) for p in text.split()]
        return []

    def oom_kills(self) -> int:
        text = self._read("memory", "memory.oom_control") or ""
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def cpu_usage_ns(self) -> int | None:
        text = self._read("cpuacct", "cpuacct.usage")
        return int(text) if text and text.strip().isdigit() else None

    def memory(self) -> tuple[int, int] | None:
        """(usage, working set) bytes; working set = usage - inactive file cache."""
        usage = self._read("memory", "memory.usage_in_bytes")
        if usage is None:
            return None
        total = int(usage)
        inactive = 0
        for line in (self._read("memory", "memory.stat") or "").splitlines():
            key, _, value = line.partition(" ")
            if key == "total_inactive_file":
                inactive = int(value)
        return total, max(total - inactive, 0)

    def remove(self) -> None:
        for path in self.paths.values():
            # Parents (the pod's, the runtime's root) go when their last child does.
            for level in range(self.owned_levels):
                try:
                    (path.parents[level - 1] if level else path).rmdir()
                except OSError:
                    break


def create(parent: str, name: str) -> CgroupSet:
    """Create ``<own cgroup>/<parent>/<name>`` in every writable v1 hierarchy."""
    if os.geteuid() != 0:
        return CgroupSet()
    mounts = v1_mounts()
    own = own_paths()
    created: dict[str, Path] = {}
    for controller, mount in mounts.items():
        base = mount / own.get(controller, "/").lstrip("/")
        path = base / parent.strip("/") / name if parent.strip("/") else base / name
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        created[controller] = path
    return CgroupSet(created, len([p for p in parent.split("/") if p]) + 1)
