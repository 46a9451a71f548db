"""Image garbage collection by disk usage, as upstream's kubelet does it
(``ImageGCManager``): when the image filesystem is at least ``high_threshold_percent``
full, remove images no container uses -- least recently used first, none younger than
``min_age`` -- until usage would be below ``low_threshold_percent``; then collect their
blobs and layers.

"Used" is recorded by the store when a container takes a lease on an image
(:meth:`ImageStore.lease`); an image never used counts from when it was stored. The disk
is measured with ``statvfs`` on the store's root; the measurement and the clock are
parameters so the policy is tested without filling a disk.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from pyk8s.runtime.images.errors import ImageError
from pyk8s.runtime.images.store import Image, ImageStore

DiskUsage = Callable[[str], tuple[int, int]]
"""``(capacity, available)`` bytes of the filesystem holding a path."""


def statvfs_usage(path: str) -> tuple[int, int]:
    st = os.statvfs(path)
    return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize


@dataclass(frozen=True)
class ImageGcPolicy:
    """Upstream's defaults (``imageGCHighThresholdPercent`` 85, ``imageGCLowThresholdPercent``
    80, ``imageMinimumGCAge`` 2m)."""

    high_threshold_percent: int = 85
    low_threshold_percent: int = 80
    min_age: float = 120.0


@dataclass
class ImageGcResult:
    removed: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    bytes_wanted: int = 0


def free_space(store: ImageStore, in_use: Collection[str], *,
               policy: ImageGcPolicy = ImageGcPolicy(),
               disk_usage: DiskUsage = statvfs_usage,
               now: Callable[[], float] = time.time) -> ImageGcResult:
    """One pass; ``in_use``: IDs or names of images that containers (running or not) use.
    Raises :class:`ImageError` when not enough could be freed (the kubelet's
    ``FreeDiskSpaceFailed`` event), after freeing what it could."""
    capacity, available = disk_usage(str(store.root))
    result = ImageGcResult()
    if capacity <= 0:
        return result
    usage_percent = 100 - available * 100 // capacity
    if usage_percent < policy.high_threshold_percent:
        return result
    result.bytes_wanted = capacity * (100 - policy.low_threshold_percent) // 100 - available
    candidates = _candidates(store, in_use, now() - policy.min_age)
    for image in candidates:
        if result.bytes_freed >= result.bytes_wanted:
            break
        store.remove(image.id)
        result.removed.append(image.name)
        result.bytes_freed += image.size
    store.gc()
    if result.bytes_freed < result.bytes_wanted:
        raise ImageError(f"Failed to garbage collect required amount of images. Attempted to "
                         f"free {result.bytes_wanted} bytes, but only found "
                         f"{result.bytes_freed} bytes eligible to free.", "FreeDiskSpaceFailed")
    return result


def _candidates(store: ImageStore, in_use: Collection[str], older_than: float) -> list[Image]:
    used = set(in_use)
    by_id: dict[str, Image] = {}
    for image in store.list():
        if image.id in used or image.name in used:
            used.add(image.id)  # every name of an image in use is in use
    for image in store.list():
        if image.id not in used:
            by_id.setdefault(image.id, image)
    eligible = [i for i in by_id.values() if store.last_used(i) <= older_than]
    return sorted(eligible, key=store.last_used)
