"""Environment resolution and volume materialisation, against a fake API getter."""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path
from typing import Any

import pytest

from pyk8s.kubelet.envvars import ConfigError, container_env, expand, parse_quantity
from pyk8s.kubelet.volumes import VolumeError, VolumeManager, write_atomic
from pyk8s.machinery.errors import ApiError

OBJECTS = {
    ("configmaps", "cfg"): {"data": {"A": "1", "B": "two", "bad-key!": "x"}},
    ("secrets", "sec"): {"data": {"pw": base64.b64encode(b"hunter2").decode()}},
}


async def fake_get(res: Any, namespace: str, name: str) -> dict[str, Any]:
    try:
        return OBJECTS[(res.plural, name)]
    except KeyError:
        raise ApiError(404, "NotFound", f'{res.plural} "{name}" not found') from None


POD = {"metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "x"}},
       "spec": {"nodeName": "n1", "serviceAccountName": "default"},
       "status": {"podIP": "10.0.0.5", "hostIP": "10.0.0.1"}}


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return asyncio.run(container_env(POD, container, fake_get, {"cpu": "2", "memory": "1Gi"}))


class TestEnv:
    def test_expansion_as_upstream(self) -> None:
        env = {"A": "1"}
        assert expand("$(A)-$(B)-$$(A)-$", env) == "1-$(B)-$(A)-$"

    def test_values_refs_and_order(self) -> None:
        env = env_of({"name": "c", "resources": {"limits": {"memory": "64Mi"}}, "env": [
            {"name": "X", "value": "x"},
            {"name": "Y", "value": "$(X)y"},
            {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory",
                                                               "divisor": "1Mi"}}},
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "B"}}},
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "pw"}}},
        ]})
        assert env == {"X": "x", "Y": "xy", "NAME": "p", "APP": "x", "IP": "10.0.0.5",
                       "MEM": "64", "CPU": "2", "B": "two", "PW": "hunter2"}

    def test_env_from_with_prefix_skips_invalid_names(self) -> None:
        env = env_of({"name": "c", "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "P_"},
                                               {"secretRef": {"name": "sec"}}]})
        assert env == {"P_A": "1", "P_B": "two", "pw": "hunter2"}

    def test_missing_config_map_is_a_config_error_unless_optional(self) -> None:
        with pytest.raises(ConfigError, match='configmap "nope" not found'):
            env_of({"name": "c", "env": [{"name": "X", "valueFrom": {
                "configMapKeyRef": {"name": "nope", "key": "k"}}}]})
        assert env_of({"name": "c", "env": [{"name": "X", "valueFrom": {
            "configMapKeyRef": {"name": "nope", "key": "k", "optional": True}}}]}) == {}
        with pytest.raises(ConfigError, match="couldn't find key zz in ConfigMap ns/cfg"):
            env_of({"name": "c", "env": [{"name": "X", "valueFrom": {
                "configMapKeyRef": {"name": "cfg", "key": "zz"}}}]})

    def test_quantities(self) -> None:
        assert parse_quantity("500m") == 0.5
        assert parse_quantity("64Mi") == 64 * 2**20
        assert parse_quantity("1e3") == 1000


class TestVolumes:
    def test_atomic_writer_swaps_data_and_drops_removed_files(self, tmp_path: Path) -> None:
        write_atomic(tmp_path, {"a": (b"1", 0o644), "b": (b"2", 0o600)})
        assert (tmp_path / "a").read_text() == "1" and os.readlink(tmp_path / "a") == "..data/a"
        write_atomic(tmp_path, {"a": (b"3", 0o644)})
        assert (tmp_path / "a").read_text() == "3"
        assert not (tmp_path / "b").exists()
        assert len([p for p in tmp_path.iterdir() if p.name.startswith("..2")]) == 1
        before = os.readlink(tmp_path / "..data")
        write_atomic(tmp_path, {"a": (b"3", 0o644)})  # same content: nothing rewritten
        assert os.readlink(tmp_path / "..data") == before

    def test_pod_volumes_materialise(self, tmp_path: Path) -> None:
        manager = VolumeManager(tmp_path, fake_get)
        pod = {**POD, "spec": {**POD["spec"], "volumes": [  # type: ignore[dict-item]
            {"name": "e", "emptyDir": {}},
            {"name": "c", "configMap": {"name": "cfg", "items": [{"key": "A", "path": "sub/a"}]}},
            {"name": "s", "secret": {"secretName": "sec", "defaultMode": 0o400}},
            {"name": "d", "downwardAPI": {"items": [
                {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
            {"name": "h", "hostPath": {"path": str(tmp_path / "host"),
                                       "type": "DirectoryOrCreate"}},
        ]}}
        paths = asyncio.run(manager.setup(pod))
        assert Path(paths["e"]).is_dir()
        assert (Path(paths["c"]) / "sub" / "a").read_text() == "1"
        secret = Path(paths["s"]) / "pw"
        assert secret.read_text() == "hunter2" and secret.stat().st_mode & 0o777 == 0o400
        assert (Path(paths["d"]) / "name").read_text() == "p"
        assert paths["h"] == str(tmp_path / "host") and Path(paths["h"]).is_dir()
        mounts = manager.mounts({"volumeMounts": [
            {"name": "c", "mountPath": "/etc/c", "readOnly": True},
            {"name": "e", "mountPath": "/data", "subPath": "x"}]}, paths)
        assert [(m.container_path, m.read_only) for m in mounts] == [("/etc/c", True),
                                                                     ("/data", False)]
        assert mounts[1].host_path == str(Path(paths["e"]) / "x")
        manager.cleanup("u1")
        assert not manager.pod_dir("u1").exists()

    def test_unsupported_or_missing_sources_fail_the_pod(self, tmp_path: Path) -> None:
        manager = VolumeManager(tmp_path, fake_get)
        for vol, match in (({"name": "v", "persistentVolumeClaim": {"claimName": "x"}},
                            "persistentVolumeClaim volumes are not supported"),
                           ({"name": "v", "configMap": {"name": "nope"}},
                            'configmap "nope" not found')):
            pod = {**POD, "spec": {"volumes": [vol]}}
            with pytest.raises(VolumeError, match=match):
                asyncio.run(manager.setup(pod))
        with pytest.raises(VolumeError, match="invalid subPath"):
            manager.mounts({"volumeMounts": [{"name": "v", "mountPath": "/x",
                                              "subPath": "../etc"}]}, {"v": str(tmp_path)})
