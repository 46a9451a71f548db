"""``import`` of image tarballs: docker-archive (``docker save``) and OCI image layout
(``oci-archive``, ``docker save`` since Docker 25, or an unpacked layout directory).

Every blob is copied into the content store through a hash and checked against the digest
its descriptor names. A docker-archive has no manifest of its own, so one is written (OCI,
with the archive's layers as they are: usually uncompressed), like containerd's importer.

Names: a docker-archive's ``RepoTags``; in an OCI layout ``io.containerd.image.name``, else
``org.opencontainers.image.ref.name`` when it is a full reference, else that tag under
``base_name``. An image with no usable name is stored under its ID.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from pyk8s.runtime.images import reference
from pyk8s.runtime.images.errors import ImageError
from pyk8s.runtime.images.manifest import (
    INDEXES,
    OCI_CONFIG,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    ImageConfig,
    Manifest,
    ManifestError,
    check_digest,
    digest_of,
    media_type_of,
    select_platform,
)
from pyk8s.runtime.images.store import Image, ImageStore, Pin

REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"


class _Source:
    """Files of a tarball or a directory, by relative name."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tar: tarfile.TarFile | None = None
        self.members: dict[str, tarfile.TarInfo] = {}
        if path.is_file():
            try:
                self.tar = tarfile.open(path, "r:*")  # noqa: SIM115 - closed by close()
                for m in self.tar.getmembers():
                    self.members[m.name.removeprefix("./")] = m
            except (tarfile.TarError, OSError, EOFError) as exc:
                raise ImageError(f"{path}: not a readable tarball: {exc}") from None
        elif not path.is_dir():
            raise ImageError(f"{path}: no such file or directory")

    def exists(self, name: str) -> bool:
        name = name.removeprefix("./")
        return name in self.members if self.tar else (self.path / name).is_file()

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        name = name.removeprefix("./")
        if self.tar is None:
            if ".." in Path(name).parts:
                raise ImageError(f"{name!r}: path leaves the layout")
            with open(self.path / name, "rb") as f:
                yield f
            return
        member = self.members.get(name)
        # A link member (blobs shared between images in docker-archives) is followed.
        while member is not None and (member.issym() or member.islnk()):
            target = member.linkname if member.islnk() else \
                str(Path(name).parent / member.linkname)
            member = self.members.get(target.removeprefix("./"))
        f = self.tar.extractfile(member) if member is not None else None
        if f is None:
            raise ImageError(f"{self.path}: {name!r} is missing")
        with f:
            yield f

    def read(self, name: str, limit: int = 16 << 20) -> bytes:
        with self.open(name) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise ImageError(f"{name!r} is too large for a JSON document")
        return data

    def close(self) -> None:
        if self.tar is not None:
            self.tar.close()


def _copy_blob(store: ImageStore, pin: Pin, src: _Source, name: str, digest: str | None
               ) -> tuple[str, int]:
    """Copy ``name`` into the store; returns (digest, size). ``digest``: what it must be."""
    algorithm = digest.split(":")[0] if digest else "sha256"
    if digest:
        pin.add([digest])
    if digest and store.has_blob(digest):
        return digest, store.blob_path(digest).stat().st_size
    hasher = hashlib.new(algorithm)
    tmp = store.tmp_path()
    size = 0
    try:
        with src.open(name) as f, open(tmp, "wb") as out:
            while chunk := f.read(1 << 20):
                hasher.update(chunk)
                out.write(chunk)
                size += len(chunk)
        actual = f"{algorithm}:{hasher.hexdigest()}"
        if digest and actual != digest:
            raise ImageError(f"{name}: digest mismatch: expected {digest}, got {actual}")
        pin.add([actual])
        store.commit_blob(tmp, actual)
        return actual, size
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _is_gzip(store: ImageStore, digest: str) -> bool:
    with open(store.blob_path(digest), "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _name(candidate: str) -> str | None:
    try:
        return reference.parse(candidate).string
    except reference.InvalidReference:
        return None


def _import_docker(store: ImageStore, pin: Pin, src: _Source) -> list[Image]:
    try:
        entries = json.loads(src.read("manifest.json"))
        assert isinstance(entries, list)
    except (ValueError, AssertionError):
        raise ImageError("manifest.json is not a docker-archive manifest") from None
    images = []
    for entry in entries:
        config_digest, config_size = _copy_blob(store, pin, src, entry["Config"], None)
        config = ImageConfig.parse(store.read_blob(config_digest))
        layers = []
        for i, layer in enumerate(entry.get("Layers") or ()):
            digest, size = _copy_blob(store, pin, src, layer, None)
            gz = _is_gzip(store, digest)
            if not gz and i < len(config.diff_ids) and digest != config.diff_ids[i]:
                raise ImageError(f"{layer}: content {digest} does not match the config's "
                                 f"diff_id {config.diff_ids[i]}")
            layers.append({"mediaType": OCI_LAYER_GZIP if gz else OCI_LAYER,
                           "digest": digest, "size": size})
        if len(layers) != len(config.diff_ids):
            raise ImageError(f"{entry['Config']}: {len(config.diff_ids)} diff_ids for "
                             f"{len(layers)} layers")
        manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                               "config": {"mediaType": OCI_CONFIG, "digest": config_digest,
                                          "size": config_size},
                               "layers": layers}, separators=(",", ":")).encode()
        manifest_digest = digest_of(manifest)
        pin.add([manifest_digest], config.diff_ids)
        store.put_blob(manifest)
        names = [n for n in (_name(t) for t in entry.get("RepoTags") or ()) if n]
        images += _add(store, names, manifest_digest, manifest_digest, config_digest,
                       [d["digest"] for d in layers], config.diff_ids,
                       config_size + len(manifest) + sum(d["size"] for d in layers),
                       OCI_MANIFEST)
    return images


def blob(d: str) -> str:
    algorithm, _, hexpart = check_digest(d).partition(":")
    return f"blobs/{algorithm}/{hexpart}"


def _import_oci(store: ImageStore, pin: Pin, src: _Source, base_name: str) -> list[Image]:
    try:
        index = json.loads(src.read("index.json"))
        descriptors = index["manifests"]
    except (ValueError, KeyError, TypeError):
        raise ImageError("index.json is not an OCI image index") from None
    images = []
    for desc in descriptors:
        digest = check_digest(desc.get("digest", ""))
        annotations = desc.get("annotations") or {}
        _copy_blob(store, pin, src, blob(digest), digest)
        top = store.read_blob(digest)
        media_type = media_type_of(top, desc.get("mediaType", ""))
        manifest_digest, data = digest, top
        if media_type in INDEXES:
            entry = select_platform(top, store.platform)
            manifest_digest = entry.digest
            _copy_blob(store, pin, src, blob(entry.digest), entry.digest)
            data = store.read_blob(entry.digest)
            media_type_m = media_type_of(data, entry.media_type)
        else:
            media_type_m = media_type
        manifest = Manifest.parse(data, media_type_m)
        for d in (manifest.config, *manifest.layers):
            _copy_blob(store, pin, src, blob(d.digest), d.digest)
        config = ImageConfig.parse(store.read_blob(manifest.config.digest))
        if len(config.diff_ids) != len(manifest.layers):
            raise ImageError(f"image {digest}: {len(config.diff_ids)} diff_ids for "
                             f"{len(manifest.layers)} layers")
        pin.add(diff_ids=config.diff_ids)
        name = annotations.get(CONTAINERD_NAME) or ""
        ref_name = annotations.get(REF_NAME) or ""
        if not name and ref_name:
            if "/" in ref_name or ":" in ref_name:
                name = ref_name
            elif base_name:
                name = f"{base_name}:{ref_name}"
        names = [n for n in [_name(name)] if n] if name else []
        images += _add(store, names, digest, manifest_digest, manifest.config.digest,
                       [d.digest for d in manifest.layers], config.diff_ids,
                       sum(max(d.size, 0) for d in (manifest.config, *manifest.layers))
                       + len(data), media_type)
    return images


def _add(store: ImageStore, names: list[str], digest: str, manifest: str, config: str,
         layers: list[str], diff_ids: tuple[str, ...], size: int, media_type: str
         ) -> list[Image]:
    out = []
    for name in names or [config]:
        out.append(store.add(Image(name=name, digest=digest, manifest=manifest, config=config,
                                   layers=tuple(layers), diff_ids=diff_ids, size=size,
                                   created=time.time(), media_type=media_type)))
    return out


def import_archive(store: ImageStore, path: str | Path, *, base_name: str = "") -> list[Image]:
    """Import every image in the tarball (or layout directory) at ``path``."""
    src = _Source(Path(path))
    try:
        with store.pin() as pin:
            if src.exists("index.json"):
                return _import_oci(store, pin, src, base_name)
            if src.exists("manifest.json"):
                return _import_docker(store, pin, src)
        raise ImageError(f"{path}: neither a docker-archive (manifest.json) nor an OCI "
                         "image layout (index.json)")
    except (ManifestError, KeyError, TypeError) as exc:
        raise ImageError(f"{path}: {exc}") from None
    finally:
        src.close()
