"""Fixtures for the image store: a test registry on loopback and locally built images."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pyk8s.runtime.images import ImageStore, RegistryConfig
from tests.make_test_image import Built, busybox_image, directory, file, image, layer
from tests.registry import TestRegistry


@pytest.fixture(scope="session")
def busybox() -> Built:
    return busybox_image()


@pytest.fixture(scope="session")
def small() -> Built:
    """Two tiny layers: enough to test pulls without the 2 MB busybox binary."""
    return image([layer([directory("etc"), file("etc/hello", "hello\n")]),
                  layer([file("etc/world", "world\n")])], cmd=["cat", "/etc/hello"])


@pytest.fixture
def registry() -> Iterator[TestRegistry]:
    with TestRegistry() as reg:
        yield reg


@pytest.fixture
def store(tmp_path: Path, registry: TestRegistry) -> ImageStore:
    """A store whose docker.io is the test registry (nothing leaves the host)."""
    return ImageStore(tmp_path / "images",
                      registry=RegistryConfig(servers={"docker.io": registry.url}))
