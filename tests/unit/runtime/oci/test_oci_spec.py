"""The OCI spec of a container: upstream's command/args rules, env, cwd, user, and the
host's limits (capabilities, oom_score_adj). Pure: no root needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyk8s.runtime.images import ImageConfig
from pyk8s.runtime.interface import ContainerConfig, Mount, Resources, RuntimeOperationError
from pyk8s.runtime.oci import spec

IMAGE = ImageConfig(entrypoint=("/entry",), cmd=("default-arg",), env=("PATH=/img/bin",
                                                                       "FOO=image", "X=1"),
                    working_dir="/app")
POD = spec.PodContext(hostname="web-0", namespaces={"network": "/ns/net", "ipc": "/ns/ipc",
                                                    "uts": "/ns/uts"},
                      etc_files={"/etc/hosts": "/pod/etc/hosts"},
                      cgroups_path="/kubepods/podabc/c1", oom_score_adj=-997)


def build(config: ContainerConfig, image: ImageConfig = IMAGE, **kw: object) -> dict:  # type: ignore[type-arg]
    return spec.build(config, image, POD, Path("/rootfs"), **kw)  # type: ignore[arg-type]


class TestCommandAndArgs:
    @pytest.mark.parametrize(("command", "args", "expected"), [
        ((), (), ["/entry", "default-arg"]),
        (("/bin/sh", "-c"), (), ["/bin/sh", "-c"]),
        ((), ("x", "y"), ["/entry", "x", "y"]),
        (("/bin/echo",), ("hi",), ["/bin/echo", "hi"]),
    ])
    def test_upstream_rules(self, command: tuple[str, ...], args: tuple[str, ...],
                            expected: list[str]) -> None:
        assert spec.argv(ContainerConfig("c", "i", command=command, args=args),
                         IMAGE) == expected

    def test_nothing_to_run(self) -> None:
        with pytest.raises(RuntimeOperationError, match="no command specified") as info:
            spec.argv(ContainerConfig("c", "i"), ImageConfig())
        assert info.value.reason == "CreateContainerError"


class TestProcess:
    def test_env_merges_image_then_container(self) -> None:
        env = build(ContainerConfig("c", "i", env={"FOO": "pod", "NEW": "2"}))["process"]["env"]
        assert env == ["PATH=/img/bin", "FOO=pod", "X=1", "HOSTNAME=web-0", "NEW=2"]

    def test_a_default_path(self) -> None:
        env = spec.environment(ContainerConfig("c", "i"), ImageConfig(), "")
        assert env == [f"PATH={spec.DEFAULT_PATH}"]

    def test_working_dir(self) -> None:
        assert build(ContainerConfig("c", "i"))["process"]["cwd"] == "/app"
        assert build(ContainerConfig("c", "i", working_dir="/w"))["process"]["cwd"] == "/w"
        assert build(ContainerConfig("c", "i"), ImageConfig(cmd=("x",)))["process"]["cwd"] == "/"

    def test_image_user_by_number_or_from_the_images_passwd(self, tmp_path: Path) -> None:
        (tmp_path / "etc").mkdir()
        (tmp_path / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/:/x\n")
        (tmp_path / "etc/group").write_text("root:x:0:\nstaff:x:50:\n")
        assert spec.user("", tmp_path) == {"uid": 0, "gid": 0}
        assert spec.user("1000", tmp_path) == {"uid": 1000, "gid": 1001}
        assert spec.user("app:staff", tmp_path) == {"uid": 1000, "gid": 50}
        assert spec.user("5:6", tmp_path) == {"uid": 5, "gid": 6}
        with pytest.raises(RuntimeOperationError, match="unable to find user nobody"):
            spec.user("nobody", tmp_path)


class TestHostLimits:
    def test_negative_oom_score_adj_is_clamped_without_cap_sys_resource(self) -> None:
        c = ContainerConfig("c", "i")
        assert build(c, can_lower_oom=False)["process"]["oomScoreAdj"] == 0
        assert build(c, can_lower_oom=True)["process"]["oomScoreAdj"] == -997

    def test_capabilities_are_bounded_by_the_hosts(self) -> None:
        caps = build(ContainerConfig("c", "i"),
                     host_caps={"CAP_KILL", "CAP_CHOWN"})["process"]["capabilities"]
        assert caps["bounding"] == ["CAP_CHOWN", "CAP_KILL"]

    def test_the_bounding_set_is_read_from_proc_status(self) -> None:
        caps = spec.host_capabilities("CapBnd:\t000001fffeffffff\n")
        assert "CAP_SYS_RESOURCE" not in caps and "CAP_SYS_ADMIN" in caps
        assert len(caps) == 40

    def test_no_apparmor_and_an_absolute_cgroups_path(self) -> None:
        doc = build(ContainerConfig("c", "i"))
        assert "apparmorProfile" not in doc["process"]
        assert doc["linux"]["cgroupsPath"] == "/kubepods/podabc/c1"


class TestNamespacesMountsResources:
    def test_pod_namespaces_are_joined_pid_and_mount_are_own(self) -> None:
        ns = build(ContainerConfig("c", "i"))["linux"]["namespaces"]
        assert {"type": "pid"} in ns and {"type": "mount"} in ns
        assert {"type": "network", "path": "/ns/net"} in ns
        assert {"type": "uts", "path": "/ns/uts"} in ns

    def test_volumes_and_pod_files_are_bind_mounts(self) -> None:
        c = ContainerConfig("c", "i", mounts=[Mount("/data", "/host/data", read_only=True)])
        mounts = {m["destination"]: m for m in build(c)["mounts"]}
        assert mounts["/data"]["source"] == "/host/data" and "ro" in mounts["/data"]["options"]
        assert mounts["/etc/hosts"]["source"] == "/pod/etc/hosts"

    def test_a_volume_at_an_etc_file_wins_over_the_pods(self) -> None:
        c = ContainerConfig("c", "i", mounts=[Mount("/etc/hosts", "/mine")])
        hosts = [m for m in build(c)["mounts"] if m["destination"] == "/etc/hosts"]
        assert [m["source"] for m in hosts] == ["/mine"]

    def test_resources(self) -> None:
        c = ContainerConfig("c", "i", resources=Resources(memory_limit_bytes=64 << 20,
                                                          cpu_quota_us=50_000, cpu_shares=512))
        res = build(c)["linux"]["resources"]
        assert res["memory"] == {"limit": 64 << 20}
        assert res["cpu"] == {"shares": 512, "quota": 50_000, "period": 100_000}
        assert "pids" not in res

    def test_a_pids_limit(self) -> None:
        c = ContainerConfig("c", "i", resources=Resources(pids_limit=64))
        assert build(c)["linux"]["resources"]["pids"] == {"limit": 64}
