"""Layer tarballs into directories, safely, with whiteouts.

Two ways to apply a layer (the OCI image spec's "changeset" rules either way):

- ``overlay``: each layer becomes its own directory, used later as one overlayfs lower dir.
  Whiteouts are written in overlayfs's own format: ``.wh.name`` becomes a character device
  0/0 named ``name``, ``.wh..wh..opq`` sets ``trusted.overlay.opaque=y`` on its directory.
  Needs root (mknod, trusted xattrs); layers are then shared by every image that has them.
- ``apply``: layers are applied in order onto one directory (a flat rootfs); ``.wh.name``
  deletes ``name`` from what the earlier layers put there, ``.wh..wh..opq`` empties the
  directory of earlier content. Works unprivileged (ownership is then the caller's).

Safety: member names are cleaned (a leading ``/`` or ``./`` dropped); ``..`` components, a
hard link leaving the layer, and writing *through* a symlink (a parent component that is a
symlink) are refused, so no layer can write outside its directory. Symlinks themselves may
point anywhere -- absolute targets are normal in a rootfs and only mean something inside
the container.

The uncompressed stream is hashed while it is read, and must equal the layer's ``diff_id``
from the image config. Gzip and plain tar are read; zstd is refused (no decoder in the
standard library).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import shutil
import stat
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from pyk8s.runtime.images.errors import ImageError

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
ROOT = os.geteuid() == 0


class _HashingReader:
    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.hasher = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.hasher.update(data)
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


def open_decompressed(path: Path) -> IO[bytes]:
    """The layer's tar stream, whatever its compression (sniffed from the magic bytes, so a
    mislabelled media type does not matter)."""
    f = open(path, "rb")  # noqa: SIM115 - returned to the caller
    magic = f.read(4)
    f.seek(0)
    if magic[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=f, mode="rb")  # type: ignore[return-value]
    if magic == b"\x28\xb5\x2f\xfd":
        f.close()
        raise ImageError(f"layer {path.name}: zstd-compressed layers are not supported")
    return f


def _clean(name: str) -> list[str]:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ImageError(f"layer member {name!r} escapes the root (..)")
    return parts


class _Applier:
    def __init__(self, root: Path, overlay: bool, lowers: Sequence[Path]) -> None:
        self.root = root
        self.overlay = overlay
        self.lowers = lowers
        self.seen: set[str] = set()
        self.dir_times: list[tuple[Path, float]] = []

    def _parent(self, parts: list[str]) -> Path:
        """The member's parent directory, created if missing; never through a symlink."""
        current = self.root
        for depth, part in enumerate(parts[:-1]):
            current = current / part
            try:
                st = os.lstat(current)
            except FileNotFoundError:
                os.mkdir(current, 0o755)
                continue
            if stat.S_ISLNK(st.st_mode):
                raise ImageError(f"layer member {'/'.join(parts)!r} would be written through "
                                 f"the symlink {'/'.join(parts[:depth + 1])!r}")
            if not stat.S_ISDIR(st.st_mode):
                raise ImageError(f"layer member {'/'.join(parts)!r}: {part!r} is not a "
                                 "directory")
        return current

    def member(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        parts = _clean(m.name)
        if not parts:
            return
        base = parts[-1]
        parent = self._parent(parts)
        if base.startswith(WHITEOUT):
            self._whiteout(parent, parts, base)
            return
        target = parent / base
        rel = "/".join(parts)
        self.seen.add(rel)
        existing = _lstat(target)
        if existing is not None and not (m.isdir() and stat.S_ISDIR(existing.st_mode)):
            _remove(target)
        if m.isdir():
            if existing is None or not stat.S_ISDIR(existing.st_mode):
                os.mkdir(target, 0o755)
        elif m.isreg():
            src = tar.extractfile(m)
            assert src is not None
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
        elif m.issym():
            os.symlink(m.linkname, target)
        elif m.islnk():
            self._hardlink(m, target)
            return  # a hard link shares its target's metadata
        elif m.ischr() or m.isblk() or m.isfifo():
            if not ROOT and not m.isfifo():
                return  # device nodes need root; the runtime provides /dev anyway
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK if m.isblk() else stat.S_IFIFO
            os.mknod(target, kind | 0o600, os.makedev(m.devmajor, m.devminor))
        else:
            return  # unknown types (GNU sparse etc.) are skipped, as containerd does
        self._metadata(target, m)

    def _hardlink(self, m: tarfile.TarInfo, target: Path) -> None:
        link_parts = _clean(m.linkname)
        source = self.root.joinpath(*link_parts)
        if _lstat(source) is None:
            # In overlay mode the target may live in a lower layer: copy it up first.
            for lower in reversed(self.lowers):
                candidate = lower.joinpath(*link_parts)
                if _lstat(candidate) is not None:
                    self._parent(link_parts)
                    shutil.copy2(candidate, source, follow_symlinks=False)
                    break
            else:
                raise ImageError(f"layer member {m.name!r}: hard link target "
                                 f"{m.linkname!r} not found")
        self._parent(link_parts)  # refuses a target reached through a symlink
        os.link(source, target, follow_symlinks=False)

    def _metadata(self, target: Path, m: tarfile.TarInfo) -> None:
        if ROOT:
            with contextlib.suppress(OSError):
                os.lchown(target, m.uid, m.gid)
            for key, value in (m.pax_headers or {}).items():
                if key.startswith("SCHILY.xattr."):
                    with contextlib.suppress(OSError):
                        os.setxattr(target, key[len("SCHILY.xattr."):],
                                    value.encode("utf-8", "surrogateescape"),
                                    follow_symlinks=False)
        if not m.issym():
            os.chmod(target, m.mode & 0o7777)
        if m.isdir():
            self.dir_times.append((target, m.mtime))
        else:
            with contextlib.suppress(OSError):
                os.utime(target, (m.mtime, m.mtime), follow_symlinks=False)

    def _whiteout(self, parent: Path, parts: list[str], base: str) -> None:
        dir_rel = "/".join(parts[:-1])
        if base == OPAQUE:
            if self.overlay:
                os.setxattr(parent, OPAQUE_XATTR, b"y")
                return
            for entry in os.listdir(parent):
                if f"{dir_rel}/{entry}".lstrip("/") not in self.seen:
                    _remove(parent / entry)
            return
        if base.startswith(WHITEOUT + WHITEOUT):
            return  # other AUFS metadata (.wh..wh.plnk, ...): meaningless here
        name = base[len(WHITEOUT):]
        victim = parent / name
        if self.overlay:
            if _lstat(victim) is not None:
                _remove(victim)
            os.mknod(victim, stat.S_IFCHR | 0o600, os.makedev(0, 0))
        elif _lstat(victim) is not None:
            _remove(victim)

    def finish(self) -> None:
        for path, mtime in reversed(self.dir_times):
            with contextlib.suppress(OSError):
                os.utime(path, (mtime, mtime))


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _remove(path: Path) -> None:
    st = _lstat(path)
    if st is None:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def apply_layer(blob: Path, root: Path, *, overlay: bool, lowers: Sequence[Path] = ()) -> str:
    """Apply the layer in ``blob`` onto ``root``; returns its diff_id (``sha256:`` of the
    uncompressed tar). ``lowers``: the layers below, bottom first (overlay mode only)."""
    if overlay and not ROOT:
        raise ImageError("unpacking layers for overlayfs needs root")
    root.mkdir(parents=True, exist_ok=True)
    applier = _Applier(root, overlay, lowers)
    try:
        with open_decompressed(blob) as raw:
            reader = _HashingReader(raw)
            tar: Any
            with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
                for member in tar:
                    applier.member(tar, member)
            reader.drain()
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, OSError) as exc:
        raise ImageError(f"layer {blob.name[:19]}: cannot unpack: {exc}") from None
    applier.finish()
    return f"sha256:{reader.hasher.hexdigest()}"
