"""Which container runtime a kubelet gets (``pyk8s server`` and ``pyk8s agent``).

``--runtime auto`` (the default) takes ``oci`` where it can really work -- root, ``runc`` on
the PATH, the CNI reference plugins and overlayfs -- and otherwise the ``process`` runtime,
saying why, so nobody mistakes host processes for isolated containers.
"""

from __future__ import annotations

import argparse
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from pyk8s.runtime import Runtime, open_runtime

CNI_BIN_DIR = "/usr/lib/cni"
DEFAULT_IMAGE_ROOT = "/var/lib/pyk8s/images"
RUNTIME_CHOICES = ("auto", "oci", "process")


@dataclass(frozen=True)
class RuntimeOptions:
    name: str = "auto"
    image_root: str = DEFAULT_IMAGE_ROOT
    registry_config: str = ""
    """YAML/JSON with mirrors, insecure registries, credentials (``pyk8s image --help``)."""


def oci_missing() -> list[str]:
    """What this machine lacks for the ``oci`` runtime (empty: nothing)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root")
    if shutil.which("runc") is None:
        missing.append("runc")
    if not (Path(CNI_BIN_DIR) / "bridge").exists():
        missing.append(f"the CNI plugins in {CNI_BIN_DIR}")
    try:
        if "overlay" not in Path("/proc/filesystems").read_text():
            missing.append("overlayfs")
    except OSError:
        missing.append("overlayfs")
    return missing


def choose(requested: str) -> tuple[str, str]:
    """(runtime name, a sentence for the start-up banner)."""
    if requested == "process":
        return "process", "process: host processes, no isolation (--runtime process)"
    missing = oci_missing()
    if requested == "oci" or not missing:
        return "oci", "oci: runc containers from images, CNI pod networking"
    return "process", ("process: host processes, NO isolation (the oci runtime needs "
                       f"{', '.join(missing)}; as root, ./dev up installs the packages)")


def build(options: RuntimeOptions, *, state_dir: Path, host_ip: str) -> Runtime:
    name, _ = choose(options.name)
    if name == "process":
        return open_runtime("process", state_dir=state_dir, host_ip=host_ip)
    from pyk8s.runtime.images import ImageStore, RegistryConfig

    registry = RegistryConfig.from_file(options.registry_config) \
        if options.registry_config else None
    images = ImageStore(options.image_root, registry=registry)
    return open_runtime(name, state_dir=state_dir, host_ip=host_ip, images=images,
                        network="cni")


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    """The kubelet's runtime flags, the same for ``pyk8s server`` and ``pyk8s agent``."""
    parser.add_argument("--runtime", default="auto", choices=RUNTIME_CHOICES,
                        help="container runtime of the kubelet: oci (runc containers from "
                             "images; root, runc, CNI plugins), process (host processes, no "
                             "isolation), auto (oci where possible; the default)")
    parser.add_argument("--image-root", default=DEFAULT_IMAGE_ROOT,
                        help="the oci runtime's image store (shared with `pyk8s image`)")
    parser.add_argument("--registry-config", default="",
                        help="YAML file with registry mirrors, insecure registries and "
                             "credentials for image pulls")


def options_from(args: argparse.Namespace) -> RuntimeOptions:
    return RuntimeOptions(name=args.runtime, image_root=args.image_root,
                          registry_config=args.registry_config)
