"""Build container images locally, with no downloads: layers as tarballs written here,
packed as registry content (for ``tests/registry.py``), an OCI image layout (directory or
tarball) or a docker-archive.

The busybox image is made from Debian's ``busybox-static`` (``/bin/busybox``): one layer with
the binary, a symlink per applet, ``/etc/passwd`` and the usual empty directories; its config
sets ``PATH`` and ``Cmd ["sh"]``. Everything is deterministic (fixed mtimes and owners), so the
same inputs give the same digests.

As a script::

    python -m tests.make_test_image --format docker-archive -o busybox.tar --tag busybox:latest
    python -m tests.make_test_image --format oci-archive -o busybox-oci.tar
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Entry:
    """One tar member: ``kind`` is file, dir, symlink, hardlink, fifo or chr."""

    name: str
    kind: str = "file"
    data: bytes = b""
    target: str = ""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0


def file(name: str, data: bytes | str = b"", mode: int = 0o644) -> Entry:
    return Entry(name, "file", data.encode() if isinstance(data, str) else data, mode=mode)


def directory(name: str, mode: int = 0o755) -> Entry:
    return Entry(name, "dir", mode=mode)


def symlink(name: str, target: str) -> Entry:
    return Entry(name, "symlink", target=target, mode=0o777)


def hardlink(name: str, target: str) -> Entry:
    return Entry(name, "hardlink", target=target)


def whiteout(path: str) -> Entry:
    """Delete ``path`` of a lower layer (``dir/.wh.name``)."""
    head, _, base = path.rpartition("/")
    return file(f"{head}/.wh.{base}" if head else f".wh.{base}")


def opaque(directory_path: str) -> Entry:
    return file(f"{directory_path.rstrip('/')}/.wh..wh..opq")


def tar_bytes(entries: Iterable[Entry]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.mtime = 1_700_000_000
            info.mode = e.mode
            info.uid, info.gid = e.uid, e.gid
            if e.kind == "file":
                info.size = len(e.data)
                tar.addfile(info, io.BytesIO(e.data))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
                         "hardlink": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE,
                         "chr": tarfile.CHRTYPE}[e.kind]
            info.linkname = e.target
            tar.addfile(info)
    return buf.getvalue()


@dataclass
class Layer:
    blob: bytes
    diff_id: str
    media_type: str

    @property
    def digest(self) -> str:
        return sha256(self.blob)


def layer(entries: Iterable[Entry], *, compress: bool = True, docker: bool = False) -> Layer:
    raw = tar_bytes(entries)
    blob = gzip.compress(raw, mtime=0) if compress else raw
    media = (DOCKER_LAYER if docker else OCI_LAYER_GZIP) if compress else OCI_LAYER
    return Layer(blob, sha256(raw), media)


@dataclass
class Built:
    """An image (or an index of images) as registry content: every blob by digest."""

    top_digest: str
    top_media_type: str
    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    config_digest: str = ""
    layers: list[Layer] = field(default_factory=list)

    @property
    def manifest_bytes(self) -> bytes:
        return self.manifests[self.top_digest][1]


def image(layers: list[Layer], *, cmd: list[str] | None = None,
          entrypoint: list[str] | None = None, env: list[str] | None = None,
          working_dir: str = "", architecture: str = "amd64", docker: bool = False,
          extra_config: dict[str, Any] | None = None) -> Built:
    config: dict[str, Any] = {"Env": env if env is not None else [f"PATH={PATH}"]}
    if cmd is not None:
        config["Cmd"] = cmd
    if entrypoint is not None:
        config["Entrypoint"] = entrypoint
    if working_dir:
        config["WorkingDir"] = working_dir
    config.update(extra_config or {})
    config_bytes = json.dumps({
        "architecture": architecture, "os": "linux", "created": "2026-11-27T00:00:00Z",
        "config": config, "rootfs": {"type": "layers", "diff_ids": [x.diff_id for x in layers]},
    }, sort_keys=True).encode()
    config_digest = sha256(config_bytes)
    manifest_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": manifest_type,
        "config": {"mediaType": DOCKER_CONFIG if docker else OCI_CONFIG,
                   "digest": config_digest, "size": len(config_bytes)},
        "layers": [{"mediaType": x.media_type, "digest": x.digest, "size": len(x.blob)}
                   for x in layers],
    }, sort_keys=True).encode()
    digest = sha256(manifest)
    blobs = {config_digest: config_bytes, **{x.digest: x.blob for x in layers}}
    return Built(digest, manifest_type, blobs, {digest: (manifest_type, manifest)},
                 config_digest, list(layers))


def index(entries: list[tuple[Built, dict[str, str]]], *, docker: bool = False) -> Built:
    """A multi-platform index of single-platform images."""
    index_type = DOCKER_LIST if docker else OCI_INDEX
    doc = {"schemaVersion": 2, "mediaType": index_type, "manifests": [
        {"mediaType": b.top_media_type, "digest": b.top_digest, "size": len(b.manifest_bytes),
         "platform": plat} for b, plat in entries]}
    data = json.dumps(doc, sort_keys=True).encode()
    digest = sha256(data)
    out = Built(digest, index_type, {}, {digest: (index_type, data)})
    for b, _ in entries:
        out.blobs.update(b.blobs)
        out.manifests.update(b.manifests)
    return out


def find_busybox() -> str:
    for candidate in BUSYBOX_CANDIDATES:
        if os.path.isfile(candidate):
            return candidate
    raise FileNotFoundError("busybox not found: install Debian's busybox-static "
                            "(apt-get install -y busybox-static)")


def busybox_layer(busybox: str | None = None) -> Layer:
    path = busybox or find_busybox()
    data = Path(path).read_bytes()
    applets = subprocess.run([path, "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    entries = [directory(d) for d in ("bin", "dev", "etc", "proc", "root", "sys",
                                      "usr", "usr/bin", "var", "var/www")]
    entries.append(Entry("tmp", "dir", mode=0o1777))
    entries.append(file("bin/busybox", data, 0o755))
    entries += [symlink(f"bin/{a}", "busybox") for a in sorted(set(applets)) if a != "busybox"]
    entries.append(file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"
                                      "nobody:x:65534:65534:nobody:/:/bin/false\n"))
    entries.append(file("etc/group", "root:x:0:\nnogroup:x:65534:\n"))
    return layer(entries)


def busybox_image(busybox: str | None = None, **kw: Any) -> Built:
    kw.setdefault("cmd", ["sh"])
    return image([busybox_layer(busybox)], **kw)


# ---- on-disk formats ---------------------------------------------------------------------

def _blob_path(root: Path, digest: str) -> Path:
    algorithm, _, hexpart = digest.partition(":")
    return root / "blobs" / algorithm / hexpart


def write_oci_layout(built: Built, dest: Path, *, ref_name: str = "",
                     containerd_name: str = "") -> None:
    """An OCI image layout directory (``oci-layout``, ``index.json``, ``blobs/``)."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    for digest, data in [*built.blobs.items(),
                         *((d, m[1]) for d, m in built.manifests.items())]:
        path = _blob_path(dest, digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    annotations = {}
    if ref_name:
        annotations["org.opencontainers.image.ref.name"] = ref_name
    if containerd_name:
        annotations["io.containerd.image.name"] = containerd_name
    desc: dict[str, Any] = {"mediaType": built.top_media_type, "digest": built.top_digest,
                            "size": len(built.manifest_bytes)}
    if annotations:
        desc["annotations"] = annotations
    (dest / "index.json").write_text(json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [desc]}))


def _tar_dir(src: Path, dest: Path) -> None:
    with tarfile.open(dest, "w") as tar:
        for path in sorted(src.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(src)), recursive=False)


def write_oci_archive(built: Built, dest: Path, **kw: str) -> None:
    work = dest.with_name(dest.name + ".d")
    write_oci_layout(built, work, **kw)
    try:
        _tar_dir(work, dest)
    finally:
        shutil.rmtree(work)


def write_docker_archive(built: Built, dest: Path, repo_tags: list[str]) -> None:
    """``docker save`` format: ``manifest.json``, ``<id>.json``, ``<n>/layer.tar``
    (uncompressed, as Docker before 25 writes them)."""
    buf = io.BytesIO()
    config_name = built.config_digest.split(":")[1] + ".json"
    layer_names = []
    with tarfile.open(fileobj=buf, mode="w") as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(data))

        add(config_name, built.blobs[built.config_digest])
        for i, x in enumerate(built.layers):
            raw = gzip.decompress(x.blob) if x.blob[:2] == b"\x1f\x8b" else x.blob
            name = f"{i:02d}{x.diff_id.split(':')[1][:20]}/layer.tar"
            add(name, raw)
            layer_names.append(name)
        add("manifest.json", json.dumps([{"Config": config_name, "RepoTags": repo_tags,
                                          "Layers": layer_names}]).encode())
    dest.write_bytes(buf.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--format", choices=("docker-archive", "oci-archive", "oci-layout"),
                        default="docker-archive")
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--tag", default="docker.io/library/busybox:latest",
                        help="image name recorded in the archive")
    parser.add_argument("--busybox", default=None, help="the static busybox binary")
    args = parser.parse_args(argv)
    built = busybox_image(args.busybox)
    out = Path(args.output)
    if args.format == "docker-archive":
        write_docker_archive(built, out, [args.tag])
    elif args.format == "oci-archive":
        write_oci_archive(built, out, ref_name=args.tag)
    else:
        write_oci_layout(built, out, ref_name=args.tag)
    print(f"{out}: {args.tag} {built.top_digest}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
