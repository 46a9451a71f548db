"""The API server's lean HTTP/1.1 front (apiserver/fastpath.py), over raw TLS sockets: plain
resource requests on a kept-alive connection, pipelining, bodies that arrive in pieces, and
the hand-off to aiohttp of everything else (discovery, chunked bodies, watches), after which
the connection keeps working."""

from __future__ import annotations

import json
import socket
import ssl
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster import Cluster


class Connection:
    """One TLS connection with a tiny HTTP/1.1 response reader."""

    def __init__(self, cluster: Cluster, *, client_cert: bool = True) -> None:
        pki = cluster.data_dir / "pki"
        context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        context.check_hostname = False
        if client_cert:
            context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        raw = socket.create_connection(("127.0.0.1", cluster.port), timeout=10)
        self.sock = context.wrap_socket(raw)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buffer += chunk
        return bool(chunk)

    def _take_line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            if not self._fill():
                raise ConnectionError("closed")
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def _take(self, n: int) -> bytes:
        while len(self.buffer) < n:
            if not self._fill():
                raise ConnectionError("closed")
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def head(self) -> tuple[int, dict[str, str]]:
        status = int(self._take_line().split(b" ")[1])
        headers: dict[str, str] = {}
        while line := self._take_line():
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        return status, headers

    def response(self) -> tuple[int, dict[str, str], Any]:
        status, headers = self.head()
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while size := int(self._take_line(), 16):
                body += self._take(size)
                self._take_line()
            self._take_line()
        else:
            body = self._take(int(headers["content-length"]))
        return status, headers, json.loads(body) if body else None

    def chunk(self) -> bytes:
        """One chunk of a chunked (watch) response."""
        size = int(self._take_line(), 16)
        data = self._take(size)
        self._take_line()
        return data

    def closed(self) -> bool:
        self.sock.settimeout(5)
        try:
            return not self._fill()
        except (ConnectionError, ssl.SSLError):
            return True

    def close(self) -> None:
        self.sock.close()


def request(method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None,
            content_type: str = "application/json") -> bytes:
    data = json.dumps(body).encode() if body is not None else b""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Accept: application/json"]
    if data:
        lines += [f"Content-Type: {content_type}", f"Content-Length: {len(data)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


def configmap(name: str, value: str = "1") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": {"k": value}}


@pytest.fixture
def conn(cluster: Cluster) -> Iterator[Connection]:
    connection = Connection(cluster)
    yield connection
    connection.close()


def test_kept_alive_connection_serves_resource_requests_then_hands_off(
        conn: Connection, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    conn.send(request("POST", base, configmap("a")))
    status, headers, body = conn.response()
    assert status == 201, body
    assert headers["content-type"].startswith("application/json")
    assert body["metadata"]["name"] == "a" and body["metadata"]["resourceVersion"]
    # aiohttp names itself in a Server header; the lean front does not.
    assert "server" not in headers
    conn.send(request("GET", f"{base}/a"))
    status, _, body = conn.response()
    assert (status, body["data"]) == (200, {"k": "1"})
    # Discovery is aiohttp's: the connection is handed over and keeps working.
    conn.send(request("GET", "/api"))
    status, headers, body = conn.response()
    assert status == 200 and body["kind"] == "APIVersions"
    assert "aiohttp" in headers.get("server", "")
    conn.send(request("GET", f"{base}/a"))
    status, headers, body = conn.response()
    assert (status, body["metadata"]["name"]) == (200, "a")
    assert "aiohttp" in headers.get("server", "")


def test_pipelined_requests_are_answered_in_order(conn: Connection, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    conn.send(request("POST", base, configmap("p"))
              + request("PATCH", f"{base}/p", {"data": {"k": "2"}},
                        content_type="application/merge-patch+json")
              + request("GET", f"{base}/p")
              + request("DELETE", f"{base}/p")
              + request("GET", f"{base}/p"))
    answers = [conn.response() for _ in range(5)]
    assert [a[0] for a in answers] == [201, 200, 200, 200, 404]
    assert answers[1][2]["data"] == {"k": "2"} and answers[2][2]["data"] == {"k": "2"}
    assert answers[4][2]["kind"] == "Status" and answers[4][2]["reason"] == "NotFound"


def test_body_arriving_in_pieces(conn: Connection, namespace: str) -> None:
    data = request("POST", f"/api/v1/namespaces/{namespace}/configmaps", configmap("slow"))
    head_end = data.index(b"\r\n\r\n")
    for piece in (data[:10], data[10:head_end + 2], data[head_end + 2:head_end + 9],
                  data[head_end + 9:]):
        conn.send(piece)
        time.sleep(0.05)
    status, _, body = conn.response()
    assert (status, body["metadata"]["name"]) == (201, "slow")


def test_chunked_body_goes_to_aiohttp(conn: Connection, namespace: str) -> None:
    data = json.dumps(configmap("chunked")).encode()
    conn.send((f"POST /api/v1/namespaces/{namespace}/configmaps HTTP/1.1\r\nHost: x\r\n"
               "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
              + b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data))
    status, _, body = conn.response()
    assert (status, body["metadata"]["name"]) == (201, "chunked")


def test_connection_close_is_honoured(conn: Connection, namespace: str) -> None:
    conn.send(request("GET", f"/api/v1/namespaces/{namespace}", headers={"Connection": "close"}))
    status, headers, body = conn.response()
    assert status == 200 and body["metadata"]["name"] == namespace
    assert headers.get("connection") == "close"
    assert conn.closed()


def test_watch_after_fast_requests_on_one_connection(cluster: Cluster, conn: Connection,
                                                     namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    conn.send(request("POST", base, configmap("w1")))
    status, _, created = conn.response()
    assert status == 201
    rv = created["metadata"]["resourceVersion"]
    conn.send(request("GET", f"{base}?watch=true&resourceVersion={rv}"))
    status, headers = conn.head()
    assert status == 200 and headers.get("transfer-encoding") == "chunked"
    writer = Connection(cluster)
    try:
        writer.send(request("POST", base, configmap("w2")))
        assert writer.response()[0] == 201
    finally:
        writer.close()
    line = b""
    while b"\n" not in line:
        line += conn.chunk()
    event = json.loads(line.split(b"\n")[0])
    assert event["type"] == "ADDED" and event["object"]["metadata"]["name"] == "w2"


def test_request_without_client_certificate_gets_401(cluster: Cluster, namespace: str) -> None:
    anonymous = Connection(cluster, client_cert=False)
    try:
        anonymous.send(request("GET", f"/api/v1/namespaces/{namespace}/configmaps"))
        status, _, body = anonymous.response()
        assert status == 401 and body["kind"] == "Status" and body["code"] == 401
    finally:
        anonymous.close()


def test_unknown_resource_and_bad_body_get_status_errors(conn: Connection,
                                                         namespace: str) -> None:
    conn.send(request("GET", f"/api/v1/namespaces/{namespace}/widgets"))
    status, _, body = conn.response()
    assert status == 404 and body["kind"] == "Status"
    bad = b"{not json"
    conn.send((f"POST /api/v1/namespaces/{namespace}/configmaps HTTP/1.1\r\nHost: x\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(bad)}\r\n\r\n").encode()
              + bad)
    status, _, body = conn.response()
    assert status == 400 and body["kind"] == "Status"
    name = "after-" + uuid.uuid4().hex[:6]
    conn.send(request("POST", f"/api/v1/namespaces/{namespace}/configmaps", configmap(name)))
    assert conn.response()[0] == 201
