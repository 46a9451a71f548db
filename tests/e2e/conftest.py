from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.cluster import Cluster


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One server for the whole e2e session; tests use their own namespaces."""
    server = Cluster(tmp_path_factory.mktemp("cluster"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    name = "t-" + uuid.uuid4().hex[:8]
    cluster.kubectl("create", "namespace", name)
    yield name


@pytest.fixture(scope="session")
def api(cluster: Cluster):  # type: ignore[no-untyped-def]
    client = cluster.api_client()
    yield client
    client.close()

