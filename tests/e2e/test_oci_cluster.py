"""``pyk8s server --runtime oci`` through the real kubectl: pods pull from a registry on
loopback, run isolated in runc containers with their own IPs from the node's pod CIDR, and
leave nothing behind on the host when deleted. Root only (CI runs as root)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import Cluster
from tests.hostnet import HostNetworkGuard
from tests.make_test_image import busybox_image
from tests.registry import TestRegistry

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="runc containers need root")

BRIDGE = "pyk8s0"


def _missing() -> list[str]:
    from pyk8s.cli.runtimes import oci_missing

    return oci_missing()


class OciCluster:
    def __init__(self, cluster: Cluster, registry: TestRegistry, image_root: Path) -> None:
        self.cluster = cluster
        self.registry = registry
        self.image_root = image_root

    def kubectl(self, *args: str, check: bool = True, input: str | None = None
                ) -> subprocess.CompletedProcess[str]:
        return self.cluster.kubectl(*args, check=check, input=input)

    def image(self, name: str = "busybox", tag: str = "1.36") -> str:
        return f"{self.registry.host}/library/{name}:{tag}"

    def run_pod(self, name: str, command: str, *, image: str = "", extra: str = "",
                wait: bool = True) -> None:
        manifest = f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: {name}}}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {image or self.image()}
    command: ["sh", "-c", {json.dumps(command)}]
{extra}"""
        self.kubectl("apply", "-f", "-", input=manifest)
        if wait:
            self.kubectl("wait", "--for=condition=Ready", f"pod/{name}", "--timeout=60s")

    def jsonpath(self, what: str, path: str) -> str:
        return self.kubectl("get", what, "-o", f"jsonpath={path}").stdout

    def events(self, pod: str) -> str:
        return self.kubectl("get", "events", "--field-selector",
                            f"involvedObject.name={pod}", "-o",
                            "custom-columns=REASON:.reason,MESSAGE:.message").stdout

    def wait_for(self, predicate, timeout: float = 60.0, what: str = "") -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.3)


@pytest.fixture(scope="module")
def oci(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OciCluster]:
    missing = _missing()
    if missing:
        pytest.skip(f"the oci runtime needs {', '.join(missing)}")
    root = tmp_path_factory.mktemp("oci-cluster")
    with HostNetworkGuard([BRIDGE]), TestRegistry() as registry:
        built = busybox_image()
        registry.push("library/busybox", "1.36", built)
        registry.push("library/busybox", "latest", built)
        config = root / "registries.yaml"
        # docker.io is mirrored by the loopback registry: nothing leaves the machine.
        config.write_text(json.dumps({"mirrors": {"docker.io": [registry.url]}}))
        image_root = root / "images"
        cluster = Cluster(root / "data", command="server", extra_args=(
            "--runtime", "oci", "--image-root", str(image_root),
            "--registry-config", str(config)))
        cluster.start()
        try:
            cluster.kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=60s")
            yield OciCluster(cluster, registry, image_root)
        finally:
            cluster.kubectl("delete", "pods", "--all", "--wait=false", check=False)
            cluster.stop()
            cluster.kill_workloads()
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(root) not in mounts, "a mount was left behind"


def test_a_pod_pulls_and_runs_isolated_with_its_own_ip(oci: OciCluster) -> None:
    oci.run_pod("iso", "echo started; sleep 3600")
    pod_ip = oci.jsonpath("pod/iso", "{.status.podIP}")
    cidr = oci.jsonpath("node", "{.items[0].spec.podCIDR}")
    assert cidr.startswith("10.244.") and pod_ip.startswith(cidr.rsplit(".", 1)[0] + "."), \
        (pod_ip, cidr)
    assert oci.jsonpath("pod/iso", "{.status.hostIP}") != pod_ip
    # Its own PID namespace: the shell is PID 1 and no host process is visible.
    pids = oci.kubectl("exec", "iso", "--", "sh", "-c", "ls /proc | grep -c '^[0-9]'").stdout
    assert int(pids) < 10, pids
    assert oci.kubectl("exec", "iso", "--", "cat", "/proc/1/comm").stdout.strip() in ("sh",
                                                                                     "sleep")
    # Its own root filesystem: the image's, not the host's.
    assert oci.kubectl("exec", "iso", "--", "test", "-e", str(oci.image_root),
                       check=False).returncode == 1
    assert oci.kubectl("exec", "iso", "--", "hostname").stdout.strip() == "iso"
    assert "eth0" in oci.kubectl("exec", "iso", "--", "ip", "addr").stdout
    assert "started" in oci.kubectl("logs", "iso").stdout
    events = oci.events("iso")
    assert re.search(r"Pulling\s+Pulling image", events), events
    assert re.search(r"Pulled\s+Successfully pulled image", events), events
    image_id = oci.jsonpath("pod/iso", "{.status.containerStatuses[0].imageID}")
    assert "@sha256:" in image_id, image_id


def test_top_reports_a_busy_pods_cpu(oci: OciCluster) -> None:
    oci.run_pod("spinner", "while true; do :; done")
    deadline = time.monotonic() + 30
    while True:
        top = oci.kubectl("top", "pod", "spinner", "--no-headers", check=False)
        if top.returncode == 0:
            break
        assert time.monotonic() < deadline, top.stderr
        time.sleep(1)
    cpu = top.stdout.split()[1]
    assert cpu.endswith("m") and int(cpu[:-1]) > 100, top.stdout  # a busy loop, from cgroups
    oci.kubectl("delete", "pod", "spinner", "--wait=false")


def test_two_pods_reach_each_other_by_pod_ip(oci: OciCluster) -> None:
    oci.run_pod("web", "mkdir -p /www && echo hello-from-web > /www/index.html && "
                       "exec httpd -f -p 8080 -h /www")
    oci.run_pod("client", "sleep 3600")
    web_ip = oci.jsonpath("pod/web", "{.status.podIP}")
    # (busybox-static's wget crashes on this host; nc speaks the HTTP by hand.)
    got = oci.kubectl("exec", "client", "--", "sh", "-c",
                      f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc {web_ip} 8080").stdout
    assert got.startswith("HTTP/1.1 200 OK") and got.endswith("hello-from-web\n"), got
    # port-forward reaches the server inside the pod's network namespace.
    port = _free_port()
    forward = subprocess.Popen(
        ["kubectl", f"--cache-dir={oci.cluster.cache_dir}", "port-forward", "pod/web",
         f"{port}:8080"], env={**os.environ, "KUBECONFIG": str(oci.cluster.kubeconfig)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert forward.stdout is not None
        assert "Forwarding from" in forward.stdout.readline()
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:
            assert resp.read().decode().strip() == "hello-from-web"
    finally:
        forward.terminate()
        forward.wait(10)


def test_a_host_port_answers_on_the_host(oci: OciCluster) -> None:
    port = _free_port()
    oci.run_pod("hostport", "mkdir -p /www && echo via-host-port > /www/index.html && "
                            "exec httpd -f -p 80 -h /www", extra=f"""\
    ports:
    - {{containerPort: 80, hostPort: {port}}}
""")
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:
        assert resp.read().decode().strip() == "via-host-port"
    oci.kubectl("delete", "pod", "hostport", "--timeout=60s")

    def rules() -> str:
        return subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True,
                              check=False).stdout

    oci.wait_for(lambda: f"--dport {port}" not in rules(), what="the hostPort's DNAT rule "
                 "to go with its pod")


def test_security_context_runs_as_the_given_user_on_a_read_only_root(oci: OciCluster
                                                                    ) -> None:
    oci.run_pod("secure", "sleep 3600", extra="""\
    securityContext:
      runAsUser: 1000
      runAsGroup: 3000
      readOnlyRootFilesystem: true
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL]}
      seccompProfile: {type: RuntimeDefault}
""")
    assert oci.kubectl("exec", "secure", "--", "id", "-u").stdout.strip() == "1000"
    assert oci.kubectl("exec", "secure", "--", "id", "-g").stdout.strip() == "3000"
    touched = oci.kubectl("exec", "secure", "--", "touch", "/x", check=False)
    assert touched.returncode != 0 and "Read-only file system" in touched.stderr
    status = oci.kubectl("exec", "secure", "--", "cat", "/proc/self/status").stdout
    assert re.search(r"CapEff:\s+0+\n", status) and re.search(r"Seccomp:\s+2\n", status)
    oci.run_pod("rootless", "true", wait=False, extra="""\
    securityContext: {runAsNonRoot: true}
""")
    oci.wait_for(lambda: oci.jsonpath(
        "pod/rootless", "{.status.containerStatuses[0].state.waiting.reason}")
        == "CreateContainerConfigError", what="CreateContainerConfigError")
    message = oci.jsonpath("pod/rootless",
                           "{.status.containerStatuses[0].state.waiting.message}")
    assert message.startswith("container has runAsNonRoot and image will run as root"), message
    oci.kubectl("delete", "pod", "secure", "rootless", "--wait=false")


def test_termination_message_and_a_memory_backed_empty_dir(oci: OciCluster) -> None:
    oci.run_pod("last-words", "df -t tmpfs /scratch | grep -q /scratch && "
                "echo tmpfs-ok > /dev/termination-log; exit 3", wait=False, extra="""\
    volumeMounts: [{name: scratch, mountPath: /scratch}]
  volumes: [{name: scratch, emptyDir: {medium: Memory, sizeLimit: 8Mi}}]
  restartPolicy: Never
""")
    oci.wait_for(lambda: oci.jsonpath("pod/last-words", "{.status.phase}") == "Failed",
                 what="the pod to fail")
    terminated = json.loads(oci.jsonpath(
        "pod/last-words", "{.status.containerStatuses[0].state.terminated}"))
    assert (terminated["exitCode"], terminated["message"]) == (3, "tmpfs-ok\n"), terminated
    uid = oci.jsonpath("pod/last-words", "{.metadata.uid}")
    oci.kubectl("delete", "pod", "last-words", "--timeout=60s")
    oci.wait_for(lambda: uid not in Path("/proc/self/mountinfo").read_text(),
                 what="the tmpfs to be unmounted")


def test_a_missing_image_backs_off_with_the_registrys_error(oci: OciCluster) -> None:
    oci.run_pod("missing", "true", image=oci.image("nope", "1.0"), wait=False)

    def waiting() -> str:
        return oci.jsonpath("pod/missing", "{.status.containerStatuses[0].state.waiting.reason}")

    # ErrImagePull lasts until the next sync (about a second), then the back-off shows.
    oci.wait_for(lambda: waiting() == "ImagePullBackOff", what="ImagePullBackOff")
    message = oci.jsonpath("pod/missing",
                           "{.status.containerStatuses[0].state.waiting.message}")
    assert message.startswith(f'Back-off pulling image "{oci.image("nope", "1.0")}"'), message
    events = oci.events("missing")
    assert f'Failed to pull image "{oci.image("nope", "1.0")}"' in events, events
    assert "not found" in events.lower() or "unknown" in events.lower(), events
    assert re.search(r"BackOff\s+Back-off pulling image", events), events
    assert "Error: ErrImagePull" in events and "Error: ImagePullBackOff" in events
    oci.kubectl("delete", "pod", "missing", "--wait=false")


def test_a_configured_mirror_is_tried_first(oci: OciCluster) -> None:
    before = len(oci.registry.requests)
    oci.run_pod("mirrored", "sleep 3600", image="busybox:latest")
    asked = oci.registry.requests[before:]
    assert ("GET", "/v2/library/busybox/manifests/latest") in asked or \
        ("HEAD", "/v2/library/busybox/manifests/latest") in asked, asked
    events = oci.events("mirrored")
    assert 'Successfully pulled image "busybox:latest"' in events, events


def test_an_imported_image_runs_with_pull_policy_never(oci: OciCluster,
                                                      tmp_path: Path) -> None:
    tarball = tmp_path / "local.tar"
    subprocess.run([sys.executable, "-m", "tests.make_test_image", "--format",
                    "docker-archive", "-o", str(tarball), "--tag", "local/tools:v1"],
                   check=True, timeout=60)
    subprocess.run([sys.executable, "-m", "pyk8s.cli.main", "image", "import", str(tarball),
                    "--root", str(oci.image_root)], check=True, timeout=60,
                   capture_output=True)
    before = len(oci.registry.requests)
    oci.run_pod("imported", "echo imported; sleep 3600", image="local/tools:v1",
                extra="    imagePullPolicy: Never\n")
    assert oci.registry.requests[before:] == []
    assert "already present on machine" in oci.events("imported")
    oci.run_pod("never", "true", image="local/absent:v1",
                extra="    imagePullPolicy: Never\n", wait=False)
    oci.wait_for(lambda: oci.jsonpath(
        "pod/never", "{.status.containerStatuses[0].state.waiting.reason}")
        == "ErrImageNeverPull", what="ErrImageNeverPull")
    oci.kubectl("delete", "pod", "never", "--wait=false")


def test_a_memory_limit_gives_oomkilled(oci: OciCluster) -> None:
    oci.run_pod("hog", "tail /dev/zero", wait=False, extra="""\
    resources:
      limits: {memory: 16Mi}
  restartPolicy: Never
""")
    oci.wait_for(lambda: oci.jsonpath(
        "pod/hog", "{.status.containerStatuses[0].state.terminated.reason}") == "OOMKilled",
        what="OOMKilled")
    assert oci.jsonpath("pod/hog", "{.status.phase}") == "Failed"
    oci.kubectl("delete", "pod", "hog")


def test_a_kubelet_restart_leaves_containers_running(oci: OciCluster) -> None:
    oci.run_pod("survivor", "sleep 3600")
    started = oci.jsonpath("pod/survivor", "{.status.containerStatuses[0].state.running}")
    oci.cluster.kill()
    oci.cluster.start()
    oci.kubectl("wait", "--for=condition=Ready", "pod/survivor", "--timeout=60s")
    time.sleep(2)  # a few pod syncs by the new kubelet
    assert oci.jsonpath("pod/survivor",
                        "{.status.containerStatuses[0].state.running}") == started
    assert oci.jsonpath("pod/survivor", "{.status.containerStatuses[0].restartCount}") == "0"
    assert oci.kubectl("exec", "survivor", "--", "true", check=False).returncode == 0


def test_deleting_a_pod_removes_its_cgroups_mounts_netns_and_ip(oci: OciCluster) -> None:
    oci.run_pod("gone", "sleep 3600", extra="""\
    resources:
      limits: {memory: 64Mi}
""")
    uid = oci.jsonpath("pod/gone", "{.metadata.uid}")
    ip = oci.jsonpath("pod/gone", "{.status.podIP}")
    cid = oci.jsonpath("pod/gone", "{.status.containerStatuses[0].containerID}").split("//")[1]
    cgroup = Path(f"/sys/fs/cgroup/memory/pyk8s/burstable/pod{uid}")  # by QoS class
    assert cgroup.exists()
    state = str(oci.cluster.data_dir / "kubelet" / "runtime")
    reservations = Path(state) / "cni"
    assert any(p.name == ip for p in reservations.rglob("*")), "no IP reservation"

    def mounts() -> set[str]:
        return {line.split()[4] for line in Path("/proc/self/mountinfo").read_text()
                .splitlines() if state in line}

    before = mounts()
    assert any(cid in m for m in before), before
    oci.kubectl("delete", "pod", "gone", "--timeout=60s")

    def cleaned() -> bool:
        removed = before - mounts()
        return (not cgroup.exists()
                and not any(p.name == ip for p in reservations.rglob("*"))
                and any(cid in m for m in removed)
                and any(m.endswith("/ns/net") for m in removed))

    oci.wait_for(cleaned, what="cgroups, mounts, the network namespace and the IP released")


def _free_port() -> int:
    from tests.cluster import free_port

    return free_port()
