"""The project's own client machinery against a real server: informers and leader election."""

from __future__ import annotations

import asyncio

from pyk8s.client import ApiClient, ApiError, Informer, LeaderElector
from pyk8s.machinery.resources import CATALOGUE
from tests.cluster import Cluster

CONFIGMAPS = CATALOGUE.resource("v1", "configmaps")


def test_informer_lists_watches_and_indexes(cluster: Cluster, namespace: str) -> None:
    async def scenario() -> None:
        client = ApiClient.from_kubeconfig(cluster.kubeconfig)
        try:
            await client.create(CONFIGMAPS, {"metadata": {"name": "before", "namespace": namespace,
                                                          "labels": {"team": "a"}}})
            seen: list[tuple[str, str]] = []
            informer = Informer(client, CONFIGMAPS, namespace=namespace)
            informer.add_index("team", lambda o: [o["metadata"].get("labels", {}).get("team", "")])
            informer.add_handlers(
                on_add=lambda o: seen.append(("add", o["metadata"]["name"])),
                on_update=lambda old, new: seen.append(("update", new["metadata"]["name"])),
                on_delete=lambda o: seen.append(("delete", o["metadata"]["name"])))
            task = asyncio.create_task(informer.run())
            await asyncio.wait_for(informer.wait_synced(), 5)
            assert informer.get(f"{namespace}/before") is not None
            await client.create(CONFIGMAPS, {"metadata": {"name": "after", "namespace": namespace,
                                                          "labels": {"team": "b"}}})
            await client.patch(CONFIGMAPS, namespace, "before", {"data": {"x": "1"}})
            await client.delete(CONFIGMAPS, namespace, "after")
            for _ in range(100):
                if ("delete", "after") in seen:
                    break
                await asyncio.sleep(0.05)
            assert seen == [("add", "before"), ("add", "after"), ("update", "before"),
                            ("delete", "after")]
            assert [o["metadata"]["name"] for o in informer.by_index("team", "a")] == ["before"]
            assert informer.by_index("team", "b") == []
            task.cancel()
        finally:
            await client.close()

    asyncio.run(scenario())


def test_client_errors_are_status_errors(cluster: Cluster) -> None:
    async def scenario() -> None:
        client = ApiClient.from_kubeconfig(cluster.kubeconfig)
        try:
            try:
                await client.get(CONFIGMAPS, "default", "missing")
            except ApiError as err:
                assert err.code == 404 and err.reason == "NotFound"
            else:
                raise AssertionError("expected 404")
            dead = ApiClient("https://127.0.0.1:1", None)
            try:
                await dead.get(CONFIGMAPS, "default", "x")
            except ApiError as err:
                assert err.code == 503
            finally:
                await dead.close()
        finally:
            await client.close()

    asyncio.run(scenario())


def test_only_one_leader_at_a_time(cluster: Cluster, namespace: str) -> None:
    async def scenario() -> None:
        client = ApiClient.from_kubeconfig(cluster.kubeconfig)
        leaders: list[str] = []
        try:
            electors = [LeaderElector(client, name="demo", namespace=namespace, identity=f"c{i}",
                                      lease_duration=2.0, renew_deadline=1.5, retry_period=0.2)
                        for i in range(2)]

            def work(identity: str):  # type: ignore[no-untyped-def]
                async def lead() -> None:
                    leaders.append(identity)
                    await asyncio.sleep(3600)
                return lead

            tasks = [asyncio.create_task(e.run(work(e.identity))) for e in electors]
            await asyncio.sleep(1.0)
            assert len(leaders) == 1
            assert sum(e.is_leader for e in electors) == 1
            winner = next(t for t, e in zip(tasks, electors, strict=True) if e.is_leader)
            winner.cancel()  # the leader dies without releasing: the other takes over after expiry
            await asyncio.sleep(3.0)
            assert len(leaders) == 2 and leaders[0] != leaders[1]
            for t in tasks:
                t.cancel()
        finally:
            await client.close()

    asyncio.run(scenario())
