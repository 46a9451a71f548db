"""What the node serves through the API server, judged with the real kubectl against
``pyk8s server``: port-forward (SPDY/3.1 tunnelled in a WebSocket), attach (with the
container's stdin), exec and attach over kubectl's SPDY fallback, ``nodes/{name}/proxy``,
``kubectl top`` (metrics.k8s.io from the kubelet's stats), and the node server's TLS.
Loopback only."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import Cluster, free_port


@pytest.fixture(scope="module")
def node_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    server = Cluster(tmp_path_factory.mktemp("node-streams"), command="server",
                     extra_args=("--kubelet-port", str(free_port()), "--node-name", "node-1"))
    server.start()
    yield server
    server.stop()
    server.kill_workloads()


@pytest.fixture
def ns(node_cluster: Cluster) -> str:
    name = "streams-" + uuid.uuid4().hex[:6]
    node_cluster.kubectl("create", "namespace", name)
    return name


def run_pod(cluster: Cluster, ns: str, name: str, command: list[str], workdir: str = "/",
            **container: object) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
           "spec": {"terminationGracePeriodSeconds": 1,
                    "containers": [{"name": name, "image": "python", "command": command,
                                    "workingDir": workdir, **container}]}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))
    cluster.kubectl("wait", "--for=condition=Ready", f"pod/{name}", "-n", ns, "--timeout=60s",
                    timeout=70)


class PortForward:
    """``kubectl port-forward`` in the background, stopped on exit."""

    def __init__(self, cluster: Cluster, ns: str, target: str, ports: str, *,
                 websockets: bool = True) -> None:
        kubectl = shutil.which("kubectl")
        assert kubectl is not None
        env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig),
               "KUBECTL_PORT_FORWARD_WEBSOCKETS": "true" if websockets else "false"}
        self.proc = subprocess.Popen(
            [kubectl, f"--cache-dir={cluster.cache_dir}", "port-forward", "-n", ns,
             "--address=127.0.0.1", target, ports],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    def __enter__(self) -> PortForward:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("Forwarding from 127.0.0.1:"), line + self.stop()[1]
        return self

    def stop(self) -> tuple[str, str]:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            out, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        return out, err

    def __exit__(self, *exc: object) -> None:
        self.stop()


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=20) as response:
        return bytes(response.read())


class TestPortForward:
    def test_http_through_the_tunnel_twice_and_at_once(self, node_cluster: Cluster, ns: str,
                                                       tmp_path: Path) -> None:
        (tmp_path / "index.txt").write_text("served from inside the pod\n")
        (tmp_path / "big.bin").write_bytes(os.urandom(3_000_000))
        remote, local = free_port(), free_port()
        run_pod(node_cluster, ns, "web", ["python3", "-m", "http.server", str(remote),
                                          "--bind", "127.0.0.1"], workdir=str(tmp_path))
        with PortForward(node_cluster, ns, "pod/web", f"{local}:{remote}"):
            base = f"http://127.0.0.1:{local}"
            assert get(f"{base}/index.txt") == b"served from inside the pod\n"
            assert get(f"{base}/index.txt") == b"served from inside the pod\n"
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(3) as pool:
                bodies = list(pool.map(get, [f"{base}/big.bin"] * 3))
            assert all(b == (tmp_path / "big.bin").read_bytes() for b in bodies)

    def test_the_spdy_fallback_over_an_http_upgrade(self, node_cluster: Cluster, ns: str,
                                                    tmp_path: Path) -> None:
        """kubectl's transport when WebSockets are off (or their upgrade fails): SPDY/3.1
        straight over the upgraded connection, carried on to the kubelet in a WebSocket."""
        (tmp_path / "big.bin").write_bytes(os.urandom(2_000_000))
        remote, local = free_port(), free_port()
        run_pod(node_cluster, ns, "spdy", ["python3", "-m", "http.server", str(remote),
                                           "--bind", "127.0.0.1"], workdir=str(tmp_path))
        with PortForward(node_cluster, ns, "pod/spdy", f"{local}:{remote}", websockets=False):
            for _ in range(2):
                assert get(f"http://127.0.0.1:{local}/big.bin") \
                    == (tmp_path / "big.bin").read_bytes()

    def test_a_closed_port_is_reported_by_kubectl(self, node_cluster: Cluster, ns: str) -> None:
        run_pod(node_cluster, ns, "idle", ["sleep", "600"])
        closed, local = free_port(), free_port()
        forward = PortForward(node_cluster, ns, "pod/idle", f"{local}:{closed}")
        with forward:
            with pytest.raises(OSError):
                get(f"http://127.0.0.1:{local}/")
            deadline = time.monotonic() + 10
            while forward.proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            _, err = forward.stop()
        assert f"error forwarding port {closed} to pod idle" in err
        assert "Connection refused" in err

    def test_a_pod_that_is_not_running_is_refused(self, node_cluster: Cluster, ns: str) -> None:
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nowhere"},
               "spec": {"nodeSelector": {"no": "such-node"},
                        "containers": [{"name": "c", "image": "python", "command": ["true"]}]}}
        node_cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(pod))
        result = node_cluster.kubectl("port-forward", "-n", ns, "pod/nowhere",
                                      f"{free_port()}:80", check=False, timeout=30)
        assert result.returncode != 0
        assert "pod is not running" in result.stderr


class TestAttach:
    def test_attach_streams_new_output_until_the_container_exits(self, node_cluster: Cluster,
                                                                 ns: str) -> None:
        # An attach sees only what is written once it is connected (as upstream's): the
        # pause is kubectl's time to get there (wait, then attach) on a loaded machine.
        script = "sleep 3; for i in 1 2 3; do echo out $i; echo err $i >&2; sleep 0.3; done"
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "talk"},
               "spec": {"restartPolicy": "Never",
                        "containers": [{"name": "talk", "image": "sh",
                                        "command": ["sh", "-c", script]}]}}
        node_cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(pod))
        node_cluster.kubectl("wait", "--for=condition=Ready", "pod/talk", "-n", ns,
                             "--timeout=60s", timeout=70)
        result = node_cluster.kubectl("attach", "talk", "-n", ns, timeout=30)
        assert result.stdout == "out 1\nout 2\nout 3\n"
        assert "err 1\nerr 2\nerr 3\n" in result.stderr

    def test_attach_to_a_finished_pod_is_refused(self, node_cluster: Cluster, ns: str) -> None:
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "done"},
               "spec": {"restartPolicy": "Never",
                        "containers": [{"name": "done", "image": "sh", "command": ["true"]}]}}
        node_cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(pod))
        node_cluster.kubectl("wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/done",
                             "-n", ns, "--timeout=60s", timeout=70)
        result = node_cluster.kubectl("attach", "done", "-n", ns, check=False, timeout=30)
        assert result.returncode != 0
        assert "completed pod" in result.stderr


def kubectl_process(cluster: Cluster, *args: str, websockets: bool = True
                    ) -> subprocess.Popen[str]:
    """kubectl in the background with pipes; ``websockets=False`` forces its SPDY transport
    for exec and attach (``KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false``)."""
    kubectl = shutil.which("kubectl")
    assert kubectl is not None
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig),
           "KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "true" if websockets else "false"}
    return subprocess.Popen([kubectl, f"--cache-dir={cluster.cache_dir}", *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def kubectl_run(cluster: Cluster, *args: str, input: str = "", websockets: bool = True,
                timeout: float = 60) -> tuple[int, str, str]:
    proc = kubectl_process(cluster, *args, websockets=websockets)
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"kubectl {' '.join(args)} hung:\n{out}\n{err}") from None
    return proc.returncode, out, err


def read_line(proc: subprocess.Popen[str], timeout: float = 20) -> str:
    """The next line kubectl prints, without hanging the test if none comes."""
    import selectors

    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        assert sel.select(timeout), "no output from kubectl"
    return proc.stdout.readline()


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def stdin_pod(cluster: Cluster, ns: str, name: str, script: str, **container: object) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
           "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": name, "image": "sh", "stdin": True,
                                    "command": ["sh", "-c", script], **container}]}}
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(pod))
    cluster.kubectl("wait", "--for=condition=Ready", f"pod/{name}", "-n", ns,
                    "--timeout=60s", timeout=70)


def phase(cluster: Cluster, ns: str, name: str) -> str:
    return cluster.kubectl("get", "pod", name, "-n", ns, "-o",
                           "jsonpath={.status.phase}").stdout


def wait_phase(cluster: Cluster, ns: str, name: str, wanted: str) -> None:
    cluster.kubectl("wait", f"--for=jsonpath={{.status.phase}}={wanted}", f"pod/{name}",
                    "-n", ns, "--timeout=60s", timeout=70)


class TestAttachWithStdin:
    def test_input_reaches_the_container_across_sessions(self, node_cluster: Cluster,
                                                         ns: str) -> None:
        """Without stdinOnce the container's stdin outlives each ``attach -i`` session."""
        stdin_pod(node_cluster, ns, "echoer", "while read l; do echo got $l; done")
        for word in ("hello", "again"):
            proc = kubectl_process(node_cluster, "attach", "-i", "-q", "echoer", "-n", ns)
            try:
                assert proc.stdin is not None
                proc.stdin.write(f"{word}\n")
                proc.stdin.flush()
                assert read_line(proc) == f"got {word}\n"
            finally:
                stop(proc)
        assert phase(node_cluster, ns, "echoer") == "Running"

    @pytest.mark.parametrize("websockets", [True, False], ids=["websocket", "spdy"])
    def test_stdin_once_gives_the_container_eof_after_the_first_session(
            self, node_cluster: Cluster, ns: str, websockets: bool) -> None:
        name = "once-ws" if websockets else "once-spdy"
        stdin_pod(node_cluster, ns, name,
                  "while read l; do echo got $l; echo seen $l >&2; done; echo stdin closed",
                  stdinOnce=True)
        code, out, err = kubectl_run(node_cluster, "attach", "-i", "-q", name, "-n", ns,
                                     input="a\nb\n", websockets=websockets)
        assert code == 0, err
        assert out == "got a\ngot b\nstdin closed\n"
        assert "seen a\nseen b\n" in err
        wait_phase(node_cluster, ns, name, "Succeeded")

    @pytest.mark.parametrize("websockets", [True, False], ids=["websocket", "spdy"])
    def test_kubectl_run_interactive_and_removed(self, node_cluster: Cluster, ns: str,
                                                 websockets: bool) -> None:
        """``kubectl run -i --rm``: a pod with stdin and stdinOnce, attached, then deleted.
        The container answers and exits on the data alone, often before the end of stdin
        (which kubectl sends right after the data) reaches it: the answer must still come
        through the attach itself, not kubectl's fallback to the logs."""
        code, out, err = kubectl_run(
            node_cluster, "run", "asker", "-n", ns, "-i", "--rm", "--restart=Never",
            "--image=sh", "--command", "--", "sh", "-c", "read answer; echo you said $answer",
            input="forty-two\n", timeout=90, websockets=websockets)
        assert code == 0, err
        assert out == 'you said forty-two\npod "asker" deleted\n', err
        assert "falling back to streaming logs" not in err
        assert node_cluster.kubectl("get", "pod", "asker", "-n", ns,
                                    check=False).returncode != 0

    def test_a_container_without_stdin_streams_output_and_ignores_input(
            self, node_cluster: Cluster, ns: str) -> None:
        """As upstream (containerd ignores an attach's stdin when the container has none)."""
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "deaf"},
               "spec": {"restartPolicy": "Never", "containers": [{
                   "name": "deaf", "image": "sh",
                   # the pause: as in TestAttach, kubectl's time to attach
                   "command": ["sh", "-c", "sleep 3; cat; echo stdin was empty"]}]}}
        node_cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(pod))
        node_cluster.kubectl("wait", "--for=condition=Ready", "pod/deaf", "-n", ns,
                             "--timeout=60s", timeout=70)
        code, out, err = kubectl_run(node_cluster, "attach", "-i", "-q", "deaf", "-n", ns,
                                     input="ignored\n")
        assert code == 0, err
        assert out == "stdin was empty\n"


class TestSpdyExec:
    """kubectl's SPDY/3.1 transport, forced with KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false."""

    def test_output_streams_and_exit_code(self, node_cluster: Cluster, ns: str) -> None:
        run_pod(node_cluster, ns, "target", ["sleep", "600"])
        code, out, err = kubectl_run(
            node_cluster, "exec", "target", "-n", ns, "--", "sh", "-c",
            "echo to out; echo to err >&2; exit 3", websockets=False)
        assert (code, out) == (3, "to out\n")
        assert "to err\n" in err
        assert "command terminated with exit code 3" in err
        code, out, err = kubectl_run(node_cluster, "exec", "target", "-n", ns, "--",
                                     "echo", "fine", websockets=False)
        assert (code, out, err) == (0, "fine\n", "")

    def test_stdin_is_carried_and_closed(self, node_cluster: Cluster, ns: str) -> None:
        run_pod(node_cluster, ns, "cat", ["sleep", "600"])
        data = "".join(f"line {i}\n" for i in range(2000))
        code, out, err = kubectl_run(node_cluster, "exec", "-i", "cat", "-n", ns, "--", "sh",
                                     "-c", "cat; echo end of input", input=data,
                                     websockets=False)
        assert code == 0, err
        assert out == data + "end of input\n"

    def test_a_missing_command_is_reported(self, node_cluster: Cluster, ns: str) -> None:
        run_pod(node_cluster, ns, "nocmd", ["sleep", "600"])
        code, _, err = kubectl_run(node_cluster, "exec", "nocmd", "-n", ns, "--",
                                   "no-such-command-here", websockets=False)
        assert code != 0
        assert "no-such-command-here" in err


class TestNodeProxy:
    def test_kubectl_get_raw_reaches_the_kubelet(self, node_cluster: Cluster,
                                                 ns: str) -> None:
        summary = json.loads(node_cluster.kubectl(
            "get", "--raw", "/api/v1/nodes/node-1/proxy/stats/summary").stdout)
        assert summary["node"]["nodeName"] == "node-1"
        assert node_cluster.kubectl("get", "--raw",
                                    "/api/v1/nodes/node-1/proxy/healthz").stdout == "ok"
        run_pod(node_cluster, ns, "listed", ["sleep", "600"])
        pods = json.loads(node_cluster.kubectl(
            "get", "--raw", "/api/v1/nodes/node-1/proxy/pods").stdout)
        assert pods["kind"] == "PodList"
        assert ("listed", ns) in {(p["metadata"]["name"], p["metadata"]["namespace"])
                                  for p in pods["items"]}
        configz = json.loads(node_cluster.kubectl(
            "get", "--raw", "/api/v1/nodes/node-1/proxy/configz").stdout)
        assert configz["kubeletconfig"]["kind"] == "KubeletConfiguration"
        port = node_cluster.option("--kubelet-port")
        assert node_cluster.kubectl(
            "get", "--raw", f"/api/v1/nodes/node-1:{port}/proxy/healthz").stdout == "ok"
        logs = node_cluster.kubectl(
            "get", "--raw", f"/api/v1/nodes/node-1/proxy/containerLogs/{ns}/listed/listed"
                            "?tailLines=1", check=False)
        assert logs.returncode == 0, logs.stderr

    def test_unknown_paths_nodes_and_unreachable_nodes(self, node_cluster: Cluster) -> None:
        missing = node_cluster.kubectl("get", "--raw", "/api/v1/nodes/node-1/proxy/nothing",
                                       check=False)
        assert missing.returncode != 0 and "NotFound" in missing.stderr
        unknown = node_cluster.kubectl("get", "--raw", "/api/v1/nodes/nope/proxy/healthz",
                                       check=False)
        assert 'nodes "nope" not found' in unknown.stderr
        ghost = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "ghost"},
                 "spec": {"unschedulable": True}}  # no address: no kubelet to reach
        node_cluster.kubectl("apply", "-f", "-", input=json.dumps(ghost))
        try:
            unreachable = node_cluster.kubectl(
                "get", "--raw", "/api/v1/nodes/ghost/proxy/healthz", check=False)
            assert "ServiceUnavailable" in unreachable.stderr
        finally:
            node_cluster.kubectl("delete", "node", "ghost", "--wait=false")
        bad = node_cluster.kubectl("get", "--raw", "/api/v1/nodes/a:b:c:d/proxy/healthz",
                                   check=False)
        assert "invalid node request" in bad.stderr


SPIN = ("import time\nx = bytearray(40 * 1024 * 1024)\nwhile True:\n"
        "    t = time.time()\n    while time.time() - t < 0.05: pass\n    time.sleep(0.05)")


class TestTop:
    def test_top_node_and_pod_read_the_kubelets_stats(self, node_cluster: Cluster,
                                                      ns: str) -> None:
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "busy", "labels": {"app": "busy"}},
               "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                   {"name": "spin", "image": "python", "command": ["python3", "-c", SPIN]},
                   {"name": "idle", "image": "sh", "command": ["sleep", "600"]}]}}
        node_cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(pod))
        node_cluster.kubectl("wait", "--for=condition=Ready", "pod/busy", "-n", ns,
                             "--timeout=60s", timeout=70)
        nodes = node_cluster.kubectl("top", "node").stdout.splitlines()
        assert nodes[0].split() == ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)",
                                    "MEMORY(%)"]
        assert nodes[1].split()[0] == "node-1"
        rows = node_cluster.kubectl("top", "pod", "-n", ns, "--containers").stdout.splitlines()
        assert [r.split()[:2] for r in rows[1:]] == [["busy", "idle"], ["busy", "spin"]]
        assert node_cluster.kubectl("top", "pod", "-n", ns, "-l", "app=busy").stdout \
            .splitlines()[1].split()[0] == "busy"

        raw = json.loads(node_cluster.kubectl(
            "get", "--raw", f"/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods/busy").stdout)
        assert raw["kind"] == "PodMetrics" and raw["metadata"]["labels"] == {"app": "busy"}
        usage = {c["name"]: c["usage"] for c in raw["containers"]}
        assert int(usage["spin"]["cpu"].removesuffix("n")) > 10_000_000  # > 10m
        assert int(usage["spin"]["memory"].removesuffix("Ki")) > 40 * 1024
        assert raw["window"].endswith("s")

    def test_metrics_api_is_discoverable_and_answers_404_as_upstream(
            self, node_cluster: Cluster, ns: str) -> None:
        resources = node_cluster.kubectl("api-resources", "--api-group=metrics.k8s.io").stdout
        assert "NodeMetrics" in resources and "PodMetrics" in resources
        missing = node_cluster.kubectl("get", "--raw",
                                       f"/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods/none",
                                       check=False)
        assert 'podmetrics.metrics.k8s.io "none" not found' in missing.stderr


class TestNodeServerTLS:
    """The node server speaks HTTPS with a certificate from the cluster CA and lets only
    system:masters clients (the API server's kubelet client certificate) in."""

    def _context(self, cluster: Cluster, client: str | None) -> ssl.SSLContext:
        pki = cluster.data_dir / "pki"
        context = ssl.create_default_context(cafile=str(pki / "ca.crt"))  # verified, by IP
        if client:
            context.load_cert_chain(pki / f"{client}.crt", pki / f"{client}.key")
        return context

    def _get(self, cluster: Cluster, path: str, client: str | None) -> tuple[int, bytes]:
        port = cluster.extra_args[cluster.extra_args.index("--kubelet-port") + 1]
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{port}{path}", timeout=10,
                                        context=self._context(cluster, client)) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def _wait_up(self, cluster: Cluster) -> None:
        deadline = time.monotonic() + 30
        while True:  # the node server starts a moment after the API server
            try:
                assert self._get(cluster, "/healthz", None) == (200, b"ok")
                return
            except urllib.error.URLError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def test_clients_need_a_system_masters_certificate(self, node_cluster: Cluster,
                                                       tmp_path: Path) -> None:
        from pyk8s.pki import certs
        from pyk8s.pki.keypair import KeyPair

        pki = node_cluster.data_dir / "pki"
        ca = KeyPair.read(pki / "ca.crt", pki / "ca.key")
        certs.issue_client(ca, "someone", ["developers"]).write(
            pki / "someone.crt", pki / "someone.key")
        self._wait_up(node_cluster)
        assert self._get(node_cluster, "/pods", None)[0] == 401
        assert self._get(node_cluster, "/pods", "someone")[0] == 403
        status, body = self._get(node_cluster, "/pods", "apiserver-kubelet-client")
        assert status == 200 and json.loads(body)["kind"] == "PodList"

    def test_plain_http_is_not_served(self, node_cluster: Cluster) -> None:
        self._wait_up(node_cluster)
        port = node_cluster.extra_args[node_cluster.extra_args.index("--kubelet-port") + 1]
        with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10)


def test_an_agent_joins_with_a_self_signed_certificate(tmp_path: Path) -> None:
    """``pyk8s agent`` without certificates of its own serves HTTPS with a self-signed one
    (as upstream's kubelet does); the API server reaches it with its kubelet client
    certificate, which the agent checks against the cluster CA."""
    import sys

    server = Cluster(tmp_path / "server", command="server", extra_args=("--disable-agent",))
    server.start()
    agent_port = free_port()
    agent = subprocess.Popen(
        [sys.executable, "-m", "pyk8s.cli.main", "agent", "--kubeconfig",
         str(server.kubeconfig), "--node-name", "agent-1", "--node-ip", "127.0.0.1",
         "--root-dir", str(tmp_path / "agent"), "--runtime", "process", "--port", str(agent_port),
         "--client-ca-file", str(server.data_dir / "pki" / "ca.crt"), "--runtime", "process"],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "agent.log", "wb"))  # noqa: SIM115
    try:
        deadline = time.monotonic() + 30
        while server.kubectl("get", "node", "agent-1", check=False).returncode != 0:
            assert agent.poll() is None, (tmp_path / "agent.log").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.2)
        server.kubectl("wait", "--for=condition=Ready", "node/agent-1", "--timeout=60s",
                       timeout=70)
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hi"},
               "spec": {"containers": [{"name": "hi", "image": "sh",
                                        "command": ["sh", "-c", "echo hi there; sleep 600"]}]}}
        server.kubectl("apply", "-f", "-", input=json.dumps(pod))
        server.kubectl("wait", "--for=condition=Ready", "pod/hi", "--timeout=60s", timeout=70)
        deadline = time.monotonic() + 20
        while "hi there" not in (logs := server.kubectl("logs", "hi", check=False).stdout):
            assert time.monotonic() < deadline, logs
            time.sleep(0.2)
        assert server.kubectl("exec", "hi", "--", "echo", "inside").stdout == "inside\n"
        assert (tmp_path / "agent" / "pki" / "kubelet.crt").exists()
    finally:
        agent.terminate()
        agent.wait(10)
        server.stop()
        import asyncio

        from pyk8s.runtime import open_runtime, remove_everything

        asyncio.run(remove_everything(open_runtime(
            "process", state_dir=tmp_path / "agent" / "runtime")))
