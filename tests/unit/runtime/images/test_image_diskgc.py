"""Image collection by disk usage, with upstream's thresholds, on a fake disk and clock."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from pyk8s.runtime.images import (
    ImageError,
    ImageGcPolicy,
    ImageStore,
    free_space,
    import_archive,
)
from tests.make_test_image import file, image, layer, write_docker_archive

GB = 1_000_000_000


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    store = ImageStore(tmp_path / "images")
    for i, name in enumerate(("old", "mid", "new")):
        built = image([layer([file("f", name * 1000)])])
        write_docker_archive(built, tmp_path / f"{name}.tar", [f"{name}:1"])
        (img,) = import_archive(store, tmp_path / f"{name}.tar")
        # pretend the images were used 1, 2 and 3 hours ago, oldest first
        store.lease(f"c-{name}", img)
        store.release(f"c-{name}")
        used = store.root / "used" / img.id.replace(":", "-")
        os.utime(used, (time.time() - 3600 * (3 - i),) * 2)
    return store


def disk(used_percent: int) -> tuple[int, int]:
    return 100 * GB, (100 - used_percent) * GB


def test_below_the_high_threshold_nothing_happens(store: ImageStore) -> None:
    result = free_space(store, [], disk_usage=lambda _: disk(84))
    assert result.removed == [] and len(store.list()) == 3


def test_least_recently_used_unused_images_go_first(store: ImageStore) -> None:
    sizes = {i.name: i.size for i in store.list()}
    wanted = sizes["docker.io/library/old:1"] + sizes["docker.io/library/mid:1"]
    # 85% used; freeing to 80% wants 5 GB: fake it as exactly old + mid's sizes
    result = free_space(store, ["new:1"],
                        disk_usage=lambda _: (100 * (wanted // 5), 15 * (wanted // 5)))
    assert result.removed == ["docker.io/library/old:1", "docker.io/library/mid:1"]
    assert [i.name for i in store.list()] == ["docker.io/library/new:1"]


def test_not_enough_to_free_is_an_error_after_freeing_what_it_can(store: ImageStore) -> None:
    with pytest.raises(ImageError, match=r"Failed to garbage collect required amount of "
                                         r"images\. Attempted to free") as info:
        free_space(store, ["docker.io/library/new:1"], disk_usage=lambda _: disk(95))
    assert info.value.reason == "FreeDiskSpaceFailed"
    assert [i.name for i in store.list()] == ["docker.io/library/new:1"]


def test_images_younger_than_min_age_are_kept(store: ImageStore) -> None:
    with pytest.raises(ImageError):
        free_space(store, [], policy=ImageGcPolicy(min_age=4 * 3600),
                   disk_usage=lambda _: disk(90))
    assert len(store.list()) == 3
