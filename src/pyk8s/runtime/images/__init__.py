"""Container images for the ``oci`` runtime: references, pulls from registries (with
mirrors and token auth), a content-addressed store, tarball import, unpacked layers.

The public surface is small; the modules behind it are private by convention:

- :class:`ImageStore` -- ``await store.pull("busybox")``, ``store.ensure(image, policy)``,
  ``store.get``, ``store.list``, ``store.remove``, ``store.gc``, ``store.layer_dirs``;
- :func:`import_archive` -- docker-archive and OCI-layout tarballs;
- :func:`free_space` -- the kubelet's disk-usage image collection (:class:`ImageGcPolicy`);
- :func:`parse_reference` / :class:`Reference` and :func:`default_pull_policy`;
- :class:`RegistryConfig` -- mirrors, insecure registries, credentials;
- errors: :class:`ImageError`, :class:`ImageNotFound`, :class:`PullError` (reason
  ``ErrImagePull``, message worded for the pod's Event).

``pyk8s image ...`` is :mod:`pyk8s.runtime.images.cli`.
"""

from pyk8s.runtime.images.archive import import_archive
from pyk8s.runtime.images.config import RegistryConfig
from pyk8s.runtime.images.diskgc import ImageGcPolicy, ImageGcResult, free_space
from pyk8s.runtime.images.errors import ImageError, ImageNotFound, PullError, RegistryError
from pyk8s.runtime.images.manifest import ImageConfig, host_platform
from pyk8s.runtime.images.reference import InvalidReference, Reference, default_pull_policy
from pyk8s.runtime.images.reference import parse as parse_reference
from pyk8s.runtime.images.store import DEFAULT_ROOT, GcResult, Image, ImageStore

__all__ = [
    "DEFAULT_ROOT",
    "GcResult",
    "Image",
    "ImageConfig",
    "ImageError",
    "ImageGcPolicy",
    "ImageGcResult",
    "ImageNotFound",
    "ImageStore",
    "InvalidReference",
    "PullError",
    "Reference",
    "RegistryConfig",
    "RegistryError",
    "default_pull_policy",
    "free_space",
    "host_platform",
    "import_archive",
    "parse_reference",
]
