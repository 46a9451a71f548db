"""The kubelet's view of a container's security settings and of a pod's hostPorts, as
upstream's DetermineEffectiveSecurityContext and generatePodSandboxConfig compute them."""

from __future__ import annotations

from typing import Any

from pyk8s.kubelet.securitycontext import port_mappings_of, security_of
from pyk8s.runtime import PortMapping, SecurityContext


def pod(security: dict[str, Any] | None = None, *containers: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": list(containers) or [{"name": "c"}]}
    if security is not None:
        spec["securityContext"] = security
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u1"}, "spec": spec}


class TestSecurityOf:
    def test_nothing_set_is_the_runtimes_default(self) -> None:
        assert security_of(pod(), {"name": "c"}) == SecurityContext()
        assert security_of(pod({}), {"name": "c", "securityContext": None}) == SecurityContext()

    def test_pod_level_user_group_and_non_root_apply_to_every_container(self) -> None:
        sc = security_of(pod({"runAsUser": 1000, "runAsGroup": 2000, "runAsNonRoot": True}),
                         {"name": "c"})
        assert (sc.run_as_user, sc.run_as_group, sc.run_as_non_root) == (1000, 2000, True)

    def test_the_containers_own_settings_win(self) -> None:
        sc = security_of(pod({"runAsUser": 1000, "runAsGroup": 2000, "runAsNonRoot": True,
                              "seccompProfile": {"type": "RuntimeDefault"}}),
                         {"name": "c", "securityContext": {
                             "runAsUser": 0, "runAsNonRoot": False,
                             "seccompProfile": {"type": "Unconfined"}}})
        assert (sc.run_as_user, sc.run_as_group, sc.run_as_non_root) == (0, 2000, False)
        assert sc.seccomp == "Unconfined"

    def test_supplemental_groups_and_fs_group_come_from_the_pod(self) -> None:
        sc = security_of(pod({"supplementalGroups": [3000, 4000], "fsGroup": 3000}),
                         {"name": "c"})
        assert tuple(sc.supplemental_groups) == (3000, 4000)
        assert tuple(security_of(pod({"fsGroup": 5}), {"name": "c"}).supplemental_groups) \
            == (5,)

    def test_container_only_fields(self) -> None:
        sc = security_of(pod(), {"name": "c", "securityContext": {
            "privileged": True, "readOnlyRootFilesystem": True,
            "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}}})
        assert sc.privileged and sc.read_only_root_filesystem
        assert (tuple(sc.capabilities_add), tuple(sc.capabilities_drop)) == (("NET_ADMIN",),
                                                                             ("ALL",))

    def test_only_an_explicit_allow_privilege_escalation_false_sets_no_new_privileges(
            self) -> None:
        def nnp(value: Any) -> bool:
            return security_of(pod(), {"name": "c", "securityContext": {
                "allowPrivilegeEscalation": value}}).no_new_privileges
        assert (nnp(False), nnp(True), nnp(None)) == (True, False, False)

    def test_seccomp_profiles(self) -> None:
        def profile(value: dict[str, Any]) -> str:
            return security_of(pod({"seccompProfile": value}), {"name": "c"},
                               seccomp_root="/var/lib/k/seccomp").seccomp
        assert profile({"type": "RuntimeDefault"}) == "RuntimeDefault"
        assert profile({"type": "Unconfined"}) == "Unconfined"
        assert profile({"type": "Localhost", "localhostProfile": "profiles/audit.json"}) \
            == "Localhost//var/lib/k/seccomp/profiles/audit.json"
        assert security_of(pod(), {"name": "c"}).seccomp == ""


class TestPortMappingsOf:
    def test_host_ports_of_every_app_container(self) -> None:
        p = pod(None,
                {"name": "a", "ports": [{"containerPort": 80, "hostPort": 8080},
                                        {"containerPort": 9090}]},
                {"name": "b", "ports": [{"containerPort": 53, "hostPort": 5353,
                                         "protocol": "UDP", "hostIP": "127.0.0.1"}]})
        p["spec"]["initContainers"] = [{"name": "i", "ports": [{"containerPort": 1,
                                                                "hostPort": 1}]}]
        assert port_mappings_of(p) == [PortMapping(80, 8080, "TCP", ""),
                                       PortMapping(53, 5353, "UDP", "127.0.0.1")]

    def test_a_port_repeated_in_one_container_is_mapped_once(self) -> None:
        port = {"containerPort": 80, "hostPort": 8080}
        assert len(port_mappings_of(pod(None, {"name": "a", "ports": [port, dict(port)]}))) == 1
        named = [{"name": "web", **port}, {"name": "web", "containerPort": 81, "hostPort": 81}]
        assert port_mappings_of(pod(None, {"name": "a", "ports": named})) == [
            PortMapping(80, 8080)]

    def test_no_ports(self) -> None:
        assert port_mappings_of(pod()) == []
        assert port_mappings_of({"spec": {}}) == []
