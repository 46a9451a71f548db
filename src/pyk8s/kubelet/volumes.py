"""Volumes materialised on disk for the runtime to mount (upstream: the volume manager and
the emptyDir/configMap/secret/downwardAPI/projected/hostPath plugins).

Each pod volume becomes a directory ``<root>/pods/<uid>/volumes/kubernetes.io~<plugin>/<name>``
(hostPath: the host path itself). ConfigMap, Secret, downwardAPI and projected volumes are
written like upstream's ``AtomicWriter``: the payload goes into a fresh timestamped
directory, ``..data`` is swapped to it with one rename, and each visible file is a symlink
through ``..data`` -- so a reader never sees half an update, and re-materialising with new
content is safe while containers run.

Volume kinds that need a cluster-side driver (PVCs, CSI, NFS, ...) raise
:class:`VolumeError`; the pod worker reports it (event ``FailedMount``) and does not start
the pod without its volume.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pyk8s.kubelet.envvars import (
    CONFIGMAPS,
    SECRETS,
    ConfigError,
    Getter,
    field_ref,
    parse_quantity,
    resource_field_ref,
)
from pyk8s.machinery.errors import ApiError
from pyk8s.runtime import Mount

Obj = dict[str, Any]


class VolumeError(Exception):
    pass


def _unchanged(target: Path, files: Mapping[str, tuple[bytes, int]]) -> bool:
    data = target / "..data"
    if not data.is_dir():
        return False
    present = {str(p.relative_to(data)) for p in data.rglob("*") if p.is_file()}
    if present != set(files):
        return False
    for rel, (content, mode) in files.items():
        path = data / rel
        if path.read_bytes() != content or path.stat().st_mode & 0o7777 != mode:
            return False
    return True


def write_atomic(target: Path, files: Mapping[str, tuple[bytes, int]]) -> None:
    """Publish ``{relative path: (content, mode)}`` under ``target`` atomically (nothing is
    written when the published content is already that)."""
    target.mkdir(parents=True, exist_ok=True)
    if _unchanged(target, files):
        return
    stamp = target / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.monotonic_ns()}"
    stamp.mkdir()
    for rel, (content, mode) in files.items():
        path = stamp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(mode)
    tmp = target / "..data_tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(stamp.name)
    old = os.readlink(target / "..data") if (target / "..data").is_symlink() else None
    os.replace(tmp, target / "..data")
    for rel in {r.split("/", 1)[0] for r in files}:
        link = target / rel
        if not link.is_symlink():
            if link.exists():
                shutil.rmtree(link) if link.is_dir() else link.unlink()
            link.symlink_to(f"..data/{rel}")
    for entry in target.iterdir():  # files that left the payload
        if entry.is_symlink() and not entry.name.startswith("..") \
                and entry.name not in {r.split("/", 1)[0] for r in files}:
            entry.unlink()
    if old and old != stamp.name:
        shutil.rmtree(target / old, ignore_errors=True)


def _mode(item: Obj, default: int) -> int:
    mode = item.get("mode")
    return mode if isinstance(mode, int) else default


async def _keyed(get: Getter, res: Any, kind: str, source: Obj, namespace: str,
                 default_mode: int, secret: bool) -> dict[str, tuple[bytes, int]]:
    name = source.get("name") or source.get("secretName") or ""
    try:
        obj = await get(res, namespace, name)
    except ApiError as exc:
        if exc.code == 404 and source.get("optional"):
            return {}
        if exc.code == 404:
            raise VolumeError(f'{kind.lower()} "{name}" not found') from None
        raise
    if secret:
        data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    else:
        data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
        data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    items = source.get("items")
    if not items:
        return {k: (v, default_mode) for k, v in data.items()}
    out = {}
    for item in items:
        key = item.get("key")
        if key not in data:
            if source.get("optional"):
                continue
            raise VolumeError(f"configmap references non-existent config key: {key}"
                              if not secret else
                              f"references non-existent secret key: {key}")
        out[item.get("path") or key] = (data[key], _mode(item, default_mode))
    return out


def _downward(source: Obj, pod: Obj, default_mode: int,
              allocatable: Mapping[str, str]) -> dict[str, tuple[bytes, int]]:
    out = {}
    containers = {c["name"]: c for c in (pod.get("spec") or {}).get("containers") or []}
    for item in source.get("items") or []:
        try:
            if "fieldRef" in item:
                value = field_ref(pod, item["fieldRef"].get("fieldPath", ""))
            elif "resourceFieldRef" in item:
                ref = item["resourceFieldRef"]
                container = containers.get(ref.get("containerName", ""), {})
                value = resource_field_ref(container, ref, allocatable)
            else:
                continue
        except ConfigError as exc:
            raise VolumeError(str(exc)) from None
        out[item["path"]] = (value.encode(), _mode(item, default_mode))
    return out


class VolumeManager:
    """Materialises and removes a pod's volumes under ``root``."""

    def __init__(self, root: str | Path, get: Getter,
                 allocatable: Mapping[str, str] | None = None) -> None:
        self.root = Path(root)
        self.get = get
        self.allocatable = allocatable or {}

    def pod_dir(self, uid: str) -> Path:
        return self.root / "pods" / uid

    async def setup(self, pod: Obj) -> dict[str, str]:
        """Every volume of the pod on disk; returns ``{volume name: host path}``."""
        uid = pod["metadata"]["uid"]
        namespace = pod["metadata"].get("namespace", "default")
        base = self.pod_dir(uid) / "volumes"
        paths: dict[str, str] = {}
        for vol in (pod.get("spec") or {}).get("volumes") or []:
            name = vol.get("name", "")
            if "emptyDir" in vol:
                path = base / "kubernetes.io~empty-dir" / name
                path.mkdir(parents=True, exist_ok=True)
                if (vol["emptyDir"] or {}).get("medium") == "Memory":
                    self._tmpfs(path, (vol["emptyDir"] or {}).get("sizeLimit"))
                path.chmod(0o777)
            elif "hostPath" in vol:
                path = Path(vol["hostPath"].get("path", ""))
                self._host_path(path, vol["hostPath"].get("type") or "")
            elif "configMap" in vol or "secret" in vol or "downwardAPI" in vol \
                    or "projected" in vol:
                plugin = next(k for k in ("configMap", "secret", "downwardAPI", "projected")
                              if k in vol)
                path = base / f"kubernetes.io~{plugin.lower()}" / name
                write_atomic(path, await self._payload(vol[plugin], plugin, pod, namespace))
            else:
                kind = next((k for k in vol if k != "name"), "unknown")
                raise VolumeError(f"volume {name!r}: {kind} volumes are not supported by "
                                  "this kubelet")
            paths[name] = str(path)
        return paths

    async def _payload(self, source: Obj, plugin: str, pod: Obj,
                       namespace: str) -> dict[str, tuple[bytes, int]]:
        mode = source.get("defaultMode")
        default_mode = mode if isinstance(mode, int) else 0o644
        if plugin == "configMap":
            return await _keyed(self.get, CONFIGMAPS, "ConfigMap", source, namespace,
                                default_mode, False)
        if plugin == "secret":
            return await _keyed(self.get, SECRETS, "Secret", source, namespace,
                                default_mode, True)
        if plugin == "downwardAPI":
            return _downward(source, pod, default_mode, self.allocatable)
        files: dict[str, tuple[bytes, int]] = {}
        for src in source.get("sources") or []:
            if "configMap" in src:
                files.update(await _keyed(self.get, CONFIGMAPS, "ConfigMap", src["configMap"],
                                          namespace, default_mode, False))
            elif "secret" in src:
                files.update(await _keyed(self.get, SECRETS, "Secret", src["secret"],
                                          namespace, default_mode, True))
            elif "downwardAPI" in src:
                files.update(_downward(src["downwardAPI"], pod, default_mode, self.allocatable))
            # serviceAccountToken / clusterTrustBundle: not issued yet (no token controller)
        return files

    @staticmethod
    def _host_path(path: Path, kind: str) -> None:
        if kind == "DirectoryOrCreate":
            path.mkdir(parents=True, exist_ok=True)
        elif kind == "FileOrCreate":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(exist_ok=True)
        elif kind == "Directory" and not path.is_dir():
            raise VolumeError(f"hostPath type check failed: {path} is not a directory")
        elif kind == "File" and not path.is_file():
            raise VolumeError(f"hostPath type check failed: {path} is not a file")
        elif kind == "Socket" and not path.is_socket():
            raise VolumeError(f"hostPath type check failed: {path} is not a socket file")

    def mounts(self, container: Obj, paths: Mapping[str, str]) -> list[Mount]:
        out = []
        for vm in container.get("volumeMounts") or []:
            host = paths.get(vm.get("name", ""))
            if host is None:
                raise VolumeError(f"volume {vm.get('name')!r} is not defined by the pod")
            sub = vm.get("subPath") or ""
            if sub:
                if sub.startswith("/") or ".." in Path(sub).parts:
                    raise VolumeError(f"invalid subPath {sub!r}")
                full = Path(host) / sub
                if not full.exists():
                    full.mkdir(parents=True, exist_ok=True)
                host = str(full)
            out.append(Mount(vm["mountPath"], host, bool(vm.get("readOnly"))))
        return out

    def _tmpfs(self, path: Path, size_limit: str | None) -> None:
        """``medium: Memory``: a tmpfs, sized by ``sizeLimit`` or else the node's allocatable
        memory (upstream), mounted once."""
        if _mounted(path):
            return
        if os.geteuid() != 0:
            raise VolumeError("emptyDir with medium Memory needs a tmpfs mount, which needs "
                              "root")
        size = size_limit or self.allocatable.get("memory")
        options = "mode=0777" + (f",size={int(parse_quantity(size))}" if size else "")
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise VolumeError(f"mount tmpfs at {path}: {proc.stderr.strip()}")

    def cleanup(self, uid: str) -> None:
        pod_dir = self.pod_dir(uid)
        for mount in sorted(_mounts_under(pod_dir), reverse=True):
            subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
        shutil.rmtree(pod_dir, ignore_errors=True)


def _mounts_under(directory: Path) -> list[str]:
    prefix = str(directory.resolve()) + "/"
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    return [point for line in lines
            if (point := line.split()[4].replace("\\040", " ")).startswith(prefix)]


def _mounted(path: Path) -> bool:
    return str(path.resolve()) in _mounts_under(path.parent)
