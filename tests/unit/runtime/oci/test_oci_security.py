"""securityContext in the OCI spec (containerd's rules, the kubelet's runAsNonRoot check),
the seccomp profiles, and the CNI plugin chain that carries hostPorts. Pure: no root; the
CNI chain runs fake plugins that record what they were given."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from pyk8s.runtime.images import ImageConfig
from pyk8s.runtime.interface import (
    ContainerConfig,
    PortMapping,
    RuntimeOperationError,
    SecurityContext,
)
from pyk8s.runtime.oci import seccomp, spec
from pyk8s.runtime.oci.cni import Cni, CniConfig, pod_ip, runtime_port_mappings

HOST_CAPS = spec.host_capabilities("CapBnd:\t000001fffeffffff\n")  # this machine: no SYS_RESOURCE
POD = spec.PodContext(hostname="web-0", namespaces={}, etc_files={},
                      cgroups_path="/kubepods/podabc/c1", pod="web-0_default(abc)")


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n"
                                         "app:x:1000:1001::/:/bin/sh\n")
    (tmp_path / "etc/group").write_text("root:x:0:\napp:x:1001:\nstaff:x:50:app,other\n"
                                        "audio:x:29:other\n")
    return tmp_path


def build(security: SecurityContext = SecurityContext(), *, user: str = "",
          rootfs: Path = Path("/nonexistent"), name: str = "c") -> dict[str, Any]:
    return spec.build(ContainerConfig(name, "i", command=("sh",), security=security),
                      ImageConfig(user=user), POD, rootfs, host_caps=HOST_CAPS)


class TestUser:
    def test_the_images_user_without_a_security_context(self, rootfs: Path) -> None:
        assert build(user="app", rootfs=rootfs)["process"]["user"] == {
            "uid": 1000, "gid": 1001, "additionalGids": [50, 1001]}
        assert build(rootfs=rootfs)["process"]["user"] == {
            "uid": 0, "gid": 0, "additionalGids": [0]}

    def test_run_as_user_replaces_the_image_user_and_takes_the_gid_from_its_passwd(
            self, rootfs: Path) -> None:
        user = build(SecurityContext(run_as_user=1000), user="nobody:staff",
                     rootfs=rootfs)["process"]["user"]
        assert (user["uid"], user["gid"]) == (1000, 1001)

    def test_an_unknown_uid_gets_gid_0(self, rootfs: Path) -> None:
        user = build(SecurityContext(run_as_user=4242), rootfs=rootfs)["process"]["user"]
        assert (user["uid"], user["gid"], user["additionalGids"]) == (4242, 0, [0])

    def test_run_as_group_replaces_only_the_group(self, rootfs: Path) -> None:
        user = build(SecurityContext(run_as_group=7), user="app", rootfs=rootfs)
        assert (user["process"]["user"]["uid"], user["process"]["user"]["gid"]) == (1000, 7)
        both = build(SecurityContext(run_as_user=5, run_as_group=6), user="app:staff",
                     rootfs=rootfs)["process"]["user"]
        assert (both["uid"], both["gid"]) == (5, 6)

    def test_additional_gids_are_primary_image_memberships_and_supplemental_groups(
            self, rootfs: Path) -> None:
        user = build(SecurityContext(run_as_user=1000, supplemental_groups=(3000, 50)),
                     rootfs=rootfs)["process"]["user"]
        assert user["additionalGids"] == [50, 1001, 3000]


class TestRunAsNonRoot:
    def refused(self, security: SecurityContext, user: str = "") -> RuntimeOperationError:
        with pytest.raises(RuntimeOperationError) as info:
            build(security, user=user)
        assert info.value.reason == "CreateContainerConfigError"
        return info.value

    def test_an_image_running_as_root_is_refused_in_upstreams_words(self) -> None:
        for user in ("", "0", "0:0"):
            assert self.refused(SecurityContext(run_as_non_root=True), user).message == (
                'container has runAsNonRoot and image will run as root (pod: '
                '"web-0_default(abc)", container: c)')

    def test_a_named_image_user_cannot_be_verified(self) -> None:
        assert self.refused(SecurityContext(run_as_non_root=True), "app:staff").message == (
            "container has runAsNonRoot and image has non-numeric user (app), cannot verify "
            'user is non-root (pod: "web-0_default(abc)", container: c)')

    def test_run_as_user_0_breaks_the_policy(self) -> None:
        assert self.refused(SecurityContext(run_as_non_root=True, run_as_user=0),
                            "1000").message == (
            'container\'s runAsUser breaks non-root policy (pod: "web-0_default(abc)", '
            "container: c)")

    def test_a_non_root_uid_passes(self) -> None:
        assert build(SecurityContext(run_as_non_root=True), user="1000")
        assert build(SecurityContext(run_as_non_root=True, run_as_user=1000), user="app")
        assert build(SecurityContext(run_as_user=0), user="")  # not asked: no check


def caps_of(doc: dict[str, Any]) -> list[str]:
    caps = doc["process"]["capabilities"]
    assert caps["bounding"] == caps["effective"] == caps["permitted"]
    return caps["bounding"]  # type: ignore[no-any-return]


class TestCapabilities:
    def test_the_default_set(self) -> None:
        assert caps_of(build()) == [c for c in spec.DEFAULT_CAPABILITIES]

    def test_add_and_drop_by_upstream_name(self) -> None:
        caps = caps_of(build(SecurityContext(capabilities_add=("NET_ADMIN", "sys_time"),
                                             capabilities_drop=("KILL",))))
        assert "CAP_NET_ADMIN" in caps and "CAP_SYS_TIME" in caps and "CAP_KILL" not in caps

    def test_drop_all(self) -> None:
        assert caps_of(build(SecurityContext(capabilities_drop=("ALL",)))) == []

    def test_drop_all_then_add_one(self) -> None:
        assert caps_of(build(SecurityContext(capabilities_add=("NET_BIND_SERVICE",),
                                             capabilities_drop=("ALL",)))) == [
            "CAP_NET_BIND_SERVICE"]

    def test_add_all_is_bounded_by_the_host_and_single_drops_still_apply(self) -> None:
        caps = caps_of(build(SecurityContext(capabilities_add=("ALL",),
                                             capabilities_drop=("CHOWN",))))
        assert "CAP_SYS_RESOURCE" not in caps and "CAP_CHOWN" not in caps
        assert set(caps) == HOST_CAPS - {"CAP_CHOWN"}

    def test_a_capability_the_host_lacks_or_an_unknown_name_is_left_out(self) -> None:
        caps = caps_of(build(SecurityContext(capabilities_add=("SYS_RESOURCE", "BOGUS",
                                                               "CAP_NET_RAW"))))
        assert "CAP_SYS_RESOURCE" not in caps and "CAP_BOGUS" not in caps
        assert caps.count("CAP_NET_RAW") == 1


class TestPrivilegedAndOthers:
    def test_privileged(self) -> None:
        doc = build(SecurityContext(privileged=True, seccomp="RuntimeDefault",
                                    capabilities_drop=("ALL",)))
        assert set(caps_of(doc)) == HOST_CAPS
        assert doc["linux"]["maskedPaths"] == doc["linux"]["readonlyPaths"] == []
        mounts = {m["destination"]: m for m in doc["mounts"]}
        assert "ro" not in mounts["/sys"]["options"]
        assert "ro" not in mounts["/sys/fs/cgroup"]["options"]
        assert doc["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
        assert "seccomp" not in doc["linux"]

    def test_unprivileged_defaults(self) -> None:
        doc = build()
        mounts = {m["destination"]: m for m in doc["mounts"]}
        assert "ro" in mounts["/sys"]["options"]
        assert doc["linux"]["resources"]["devices"] == [{"allow": False, "access": "rwm"}]
        assert "/proc/kcore" in doc["linux"]["maskedPaths"]
        assert doc["root"]["readonly"] is False and doc["process"]["noNewPrivileges"] is False
        assert "seccomp" not in doc["linux"]

    def test_read_only_root_and_no_new_privileges(self) -> None:
        doc = build(SecurityContext(read_only_root_filesystem=True, no_new_privileges=True))
        assert doc["root"]["readonly"] is True
        assert doc["process"]["noNewPrivileges"] is True


class TestSeccomp:
    def denied(self, profile: dict[str, Any], errno: int = seccomp.EPERM) -> set[str]:
        return {name for rule in profile["syscalls"] if not rule.get("args")
                and rule["errnoRet"] == errno for name in rule["names"]}

    def test_runtime_default_allows_by_default_and_denies_the_dangerous_calls(self) -> None:
        profile = build(SecurityContext(seccomp="RuntimeDefault"))["linux"]["seccomp"]
        assert profile["defaultAction"] == "SCMP_ACT_ALLOW"
        denied = self.denied(profile)
        for call in ("kexec_load", "init_module", "finit_module", "delete_module", "bpf",
                     "open_by_handle_at", "perf_event_open", "keyctl", "add_key",
                     "request_key", "mount", "umount2", "pivot_root", "unshare", "setns",
                     "reboot", "swapon", "swapoff", "acct", "settimeofday", "clock_settime",
                     "userfaultfd", "io_uring_setup"):
            assert call in denied, call
        assert "ptrace" not in denied and "read" not in denied and "clone" not in denied
        assert self.denied(profile, seccomp.ENOSYS) == {"clone3"}

    def test_clone_is_refused_with_any_namespace_flag(self) -> None:
        profile = seccomp.default_profile(set(spec.DEFAULT_CAPABILITIES))
        flags = {rule["args"][0]["value"] for rule in profile["syscalls"]
                 if rule["names"] == ["clone"]}
        assert flags == set(seccomp.CLONE_NAMESPACE_FLAGS)
        assert all(rule["args"][0]["op"] == "SCMP_CMP_MASKED_EQ"
                   for rule in profile["syscalls"] if rule.get("args"))

    def test_calls_a_held_capability_allows_are_not_denied(self) -> None:
        profile = build(SecurityContext(seccomp="RuntimeDefault",
                                        capabilities_add=("SYS_ADMIN", "BPF")))["linux"][
            "seccomp"]
        denied = self.denied(profile)
        assert not {"mount", "unshare", "setns", "bpf"} & denied
        assert "perf_event_open" not in denied  # SYS_ADMIN is enough
        assert "kexec_load" in denied and "keyctl" in denied
        assert not any(rule["names"] in (["clone"], ["clone3"]) for rule in profile["syscalls"])

    def test_the_compat_architectures_are_covered(self) -> None:
        assert seccomp.default_profile(set(), "x86_64")["architectures"] == [
            "SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]

    def test_unconfined_or_unset_means_no_profile(self) -> None:
        assert "seccomp" not in build(SecurityContext(seccomp="Unconfined"))["linux"]
        assert "seccomp" not in build(SecurityContext(seccomp=""))["linux"]

    def test_a_localhost_profile_is_loaded_from_the_node(self, tmp_path: Path) -> None:
        path = tmp_path / "profile.json"
        path.write_text(json.dumps({"defaultAction": "SCMP_ACT_ERRNO",
                                    "syscalls": [{"names": ["read"],
                                                  "action": "SCMP_ACT_ALLOW"}],
                                    "archMap": [], "comment": "docker-format extras"}))
        profile = build(SecurityContext(seccomp=f"Localhost/{path}"))["linux"]["seccomp"]
        assert profile == {"defaultAction": "SCMP_ACT_ERRNO",
                           "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}

    def test_a_missing_or_broken_localhost_profile_is_a_create_container_error(
            self, tmp_path: Path) -> None:
        with pytest.raises(RuntimeOperationError, match="cannot load seccomp profile") as info:
            build(SecurityContext(seccomp=f"Localhost/{tmp_path}/missing.json"))
        assert info.value.reason == "CreateContainerError"
        assert f"{tmp_path}/missing.json" in info.value.message
        (tmp_path / "bad.json").write_text("{not json")
        with pytest.raises(RuntimeOperationError) as info:
            build(SecurityContext(seccomp=f"Localhost/{tmp_path}/bad.json"))
        assert info.value.reason == "CreateContainerError"

    def test_an_unknown_setting_is_refused(self) -> None:
        with pytest.raises(RuntimeOperationError, match="unknown seccomp profile"):
            build(SecurityContext(seccomp="Bogus"))


FAKE_PLUGIN = """#!/bin/sh
cat > "{log}/$CNI_COMMAND-{kind}-$(date +%s%N).json"
{body}
"""


class TestCniChain:
    @pytest.fixture
    def cni(self, tmp_path: Path) -> Cni:
        bin_dir, log = tmp_path / "bin", tmp_path / "log"
        bin_dir.mkdir()
        log.mkdir()
        result = json.dumps({"cniVersion": "1.0.0", "interfaces": [{"name": "eth0",
                                                                    "sandbox": "/ns"}],
                             "ips": [{"address": "10.9.0.5/24", "interface": 0}]})
        for kind in ("bridge", "portmap"):  # portmap passes its prevResult on: the same
            script = bin_dir / kind
            script.write_text(FAKE_PLUGIN.format(log=log, kind=kind, body=f"echo '{result}'"))
            script.chmod(script.stat().st_mode | stat.S_IXUSR)
        return Cni(CniConfig(bin_dir=str(bin_dir), subnet="10.9.0.0/24"), tmp_path / "data")

    def calls(self, cni: Cni) -> list[tuple[str, str, dict[str, Any]]]:
        log = Path(cni.config.bin_dir).parent / "log"
        out = []
        for path in sorted(log.iterdir(), key=lambda p: int(p.stem.rsplit("-", 1)[1])):
            command, kind, _ = path.stem.split("-")
            out.append((command, kind, json.loads(path.read_text())))
        return out

    def test_the_conflist_is_bridge_then_portmap_with_the_port_mappings_capability(
            self, cni: Cni) -> None:
        assert [p["type"] for p in cni.plugins()] == ["bridge", "portmap"]
        assert cni.plugins()[1]["capabilities"] == {"portMappings": True}
        no_portmap = Cni(CniConfig(bin_dir=cni.config.bin_dir, portmap=False), Path("/x"))
        assert [p["type"] for p in no_portmap.plugins()] == ["bridge"]

    def test_add_chains_prev_result_and_gives_runtime_config_only_to_portmap(
            self, cni: Cni) -> None:
        mappings = [PortMapping(8080, 18080), PortMapping(53, 5353, "UDP", "127.0.0.1"),
                    PortMapping(9000, 0)]
        result = cni.add("sb1", "/ns", mappings)
        assert pod_ip(result) == "10.9.0.5"
        (c1, k1, bridge), (c2, k2, portmap) = self.calls(cni)
        assert (c1, k1, c2, k2) == ("ADD", "bridge", "ADD", "portmap")
        assert "runtimeConfig" not in bridge and "prevResult" not in bridge
        assert (bridge["cniVersion"], bridge["name"]) == ("1.0.0", "pyk8s")
        assert portmap["prevResult"]["ips"] == [{"address": "10.9.0.5/24", "interface": 0}]
        assert portmap["runtimeConfig"] == {"portMappings": [
            {"hostPort": 18080, "containerPort": 8080, "protocol": "tcp"},
            {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"}]}

    def test_del_runs_in_reverse_with_the_same_runtime_config_and_the_add_result(
            self, cni: Cni) -> None:
        result = {"cniVersion": "1.0.0", "ips": [{"address": "10.9.0.5/24"}]}
        cni.delete("sb1", "/ns", [PortMapping(8080, 18080)], result)
        (c1, k1, portmap), (c2, k2, bridge) = self.calls(cni)
        assert (c1, k1, c2, k2) == ("DEL", "portmap", "DEL", "bridge")
        assert portmap["runtimeConfig"]["portMappings"][0]["hostPort"] == 18080
        assert portmap["prevResult"] == bridge["prevResult"] == result

    def test_a_failing_plugin_is_reported_with_its_message_and_del_still_runs_the_rest(
            self, cni: Cni) -> None:
        portmap = Path(cni.config.bin_dir) / "portmap"
        portmap.write_text("#!/bin/sh\ncat >/dev/null\n"
                           "echo '{\"code\": 999, \"msg\": \"iptables said no\"}'\nexit 1\n")
        with pytest.raises(RuntimeOperationError, match=r'type="portmap".*failed \(del\): '
                           r"iptables said no") as info:
            cni.delete("sb1", "/ns", [PortMapping(80, 8080)])
        assert info.value.reason == "StopPodSandboxError"
        assert [(c, k) for c, k, _ in self.calls(cni)] == [("DEL", "bridge")]

    def test_runtime_port_mappings(self) -> None:
        assert runtime_port_mappings([PortMapping(80, 8080, "SCTP"), PortMapping(80, -1)]) == [
            {"hostPort": 8080, "containerPort": 80, "protocol": "sctp"}]
