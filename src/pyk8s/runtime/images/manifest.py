"""Manifests, indexes and image configs: the media types, their parsing, platform choice.

Both families are accepted, as every registry client must: Docker's schema 2 manifest and
manifest list, and OCI's image manifest and index (the same JSON shapes under other
names). Docker schema 1 is not: no registry serves it to a client that asks for the others.

Nothing here does I/O; digests are checked where bytes arrive (:mod:`.blobs`).
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
from dataclasses import dataclass, field
from typing import Any

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEXES = (OCI_INDEX, DOCKER_LIST)
ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))
"""All four, always: a registry given fewer may 404 an OCI manifest or down-convert a
Docker one to schema 1 (measured against distribution 2.8)."""

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
LAYER_TYPES = (OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD, DOCKER_LAYER_GZIP,
               DOCKER_FOREIGN_LAYER, "application/vnd.docker.image.rootfs.diff.tar",
               "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
               "application/vnd.oci.image.layer.nondistributable.v1.tar")

_DIGEST = re.compile(r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$")


class ManifestError(ValueError):
    """A manifest, index or config that is malformed or names something unusable."""


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def check_digest(digest: str) -> str:
    """``digest`` if it is one we can verify (sha256 or sha512, lowercase hex)."""
    if not _DIGEST.match(digest or ""):
        raise ManifestError(f"unsupported or malformed digest {digest!r}")
    return digest


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: dict[str, Any] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    urls: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: Any) -> Descriptor:
        if not isinstance(data, dict):
            raise ManifestError("descriptor is not an object")
        try:
            size = int(data.get("size", -1))
        except (TypeError, ValueError):
            raise ManifestError("descriptor size is not a number") from None
        return cls(str(data.get("mediaType", "")), check_digest(str(data.get("digest", ""))),
                   size, dict(data.get("platform") or {}), dict(data.get("annotations") or {}),
                   tuple(data.get("urls") or ()))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest,
                               "size": self.size}
        if self.platform:
            out["platform"] = self.platform
        if self.annotations:
            out["annotations"] = self.annotations
        return out


def _load(data: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise ManifestError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ManifestError("not a JSON object")
    return doc


def media_type_of(data: bytes, header: str = "") -> str:
    """The manifest's own ``mediaType``, else the Content-Type it came with, else a guess
    from its shape (OCI made ``mediaType`` optional)."""
    doc = _load(data)
    kind = str(doc.get("mediaType") or "")
    if kind:
        return kind
    header = header.split(";")[0].strip()
    if header in MANIFESTS + INDEXES:
        return header
    if "manifests" in doc:
        return OCI_INDEX
    if "layers" in doc and "config" in doc:
        return OCI_MANIFEST
    if doc.get("schemaVersion") == 1:
        return "application/vnd.docker.distribution.manifest.v1+json"
    raise ManifestError("neither a manifest nor an index")


@dataclass(frozen=True)
class Manifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]

    @classmethod
    def parse(cls, data: bytes, media_type: str) -> Manifest:
        doc = _load(data)
        if media_type not in MANIFESTS:
            raise ManifestError(f"unsupported manifest media type {media_type!r}")
        layers = tuple(Descriptor.from_json(d) for d in doc.get("layers") or ())
        for layer in layers:
            if layer.media_type not in LAYER_TYPES:
                raise ManifestError(f"unsupported layer media type {layer.media_type!r}")
        return cls(media_type, Descriptor.from_json(doc.get("config")), layers)


def host_platform() -> dict[str, str]:
    """The node's platform as OCI names it (``linux/amd64``; ``arm64`` with variant v8)."""
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
            "armv7l": "arm", "i686": "386", "i386": "386", "ppc64le": "ppc64le",
            "s390x": "s390x", "riscv64": "riscv64"}.get(machine, machine)
    out = {"os": "linux", "architecture": arch}
    if arch == "arm64":
        out["variant"] = "v8"
    elif arch == "arm":
        out["variant"] = "v7"
    return out


def select_platform(data: bytes, want: dict[str, str] | None = None) -> Descriptor:
    """The index entry for ``want`` (default: this host). A missing variant matches, as
    containerd's platform matcher allows (``arm64`` entries often carry none)."""
    want = want or host_platform()
    doc = _load(data)
    entries = [Descriptor.from_json(d) for d in doc.get("manifests") or ()]
    fallback = None
    for entry in entries:
        plat = entry.platform
        if entry.media_type not in MANIFESTS + INDEXES:
            continue
        if plat.get("os") != want["os"] or plat.get("architecture") != want["architecture"]:
            continue
        variant = plat.get("variant", "")
        if variant == want.get("variant", ""):
            return entry
        if not variant and fallback is None:
            fallback = entry
    if fallback is not None:
        return fallback
    available = sorted({"/".join(v for v in (e.platform.get("os"), e.platform.get("architecture"),
                                              e.platform.get("variant")) if v)
                        for e in entries if e.platform})
    want_text = "/".join(v for v in (want["os"], want["architecture"], want.get("variant")) if v)
    raise ManifestError(f"no match for platform {want_text} in manifest list "
                        f"(available: {', '.join(available) or 'none'})")


@dataclass(frozen=True)
class ImageConfig:
    """What a container needs from the image config (``config`` of the OCI image config)."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    working_dir: str = ""
    user: str = ""
    diff_ids: tuple[str, ...] = ()
    architecture: str = ""
    os: str = ""
    exposed_ports: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    created: str = ""

    @classmethod
    def parse(cls, data: bytes) -> ImageConfig:
        doc = _load(data)
        conf = doc.get("config") or {}
        rootfs = doc.get("rootfs") or {}
        if rootfs.get("type", "layers") != "layers":
            raise ManifestError(f"unsupported rootfs type {rootfs.get('type')!r}")
        return cls(
            entrypoint=tuple(conf.get("Entrypoint") or ()), cmd=tuple(conf.get("Cmd") or ()),
            env=tuple(conf.get("Env") or ()), working_dir=str(conf.get("WorkingDir") or ""),
            user=str(conf.get("User") or ""),
            diff_ids=tuple(check_digest(d) for d in rootfs.get("diff_ids") or ()),
            architecture=str(doc.get("architecture") or ""), os=str(doc.get("os") or ""),
            exposed_ports=tuple(sorted(conf.get("ExposedPorts") or {})),
            labels=dict(conf.get("Labels") or {}), created=str(doc.get("created") or ""))
