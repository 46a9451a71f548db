"""Container logs rotate by size (upstream's containerLogMaxSize/MaxFiles); port-forward
reaches the pod's network (the host's, for the process runtime)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from pyk8s.runtime import ContainerConfig, PodSandboxConfig, RuntimeOperationError
from pyk8s.runtime.logs import parse_record
from pyk8s.runtime.process import ProcessRuntime
from pyk8s.runtime.process.shim import _LogWriter


class TestLogWriter:
    def test_rotates_past_the_size_and_keeps_max_files(self, tmp_path: Path) -> None:
        path = tmp_path / "c" / "0.log"
        writer = _LogWriter(str(path), max_size=1000, max_files=3)
        for i in range(200):
            writer.feed("stdout", f"line {i:04d}\n".encode())
            if i % 40 == 0:
                time.sleep(0.01)
        writer.close()
        files = sorted(os.listdir(path.parent))
        assert "0.log" in files and len(files) == 3  # the current one and two rotated
        assert all(f == "0.log" or f.startswith("0.log.") for f in files)
        assert all((path.parent / f).stat().st_size < 1100 for f in files)
        ordered = [f for f in files if f != "0.log"] + ["0.log"]  # oldest first
        kept = b"".join((path.parent / f).read_bytes() for f in ordered).splitlines()
        records = [parse_record(line) for line in kept]
        assert [r.content for r in records if r] == [
            f"line {i:04d}".encode() for i in range(200 - len(records), 200)]

    def test_size_zero_never_rotates(self, tmp_path: Path) -> None:
        path = tmp_path / "0.log"
        writer = _LogWriter(str(path), max_size=0)
        for _ in range(100):
            writer.feed("stderr", b"x" * 100 + b"\n")
        writer.close()
        assert os.listdir(tmp_path) == ["0.log"]


def test_a_chatty_container_rotates_and_removal_takes_every_file(tmp_path: Path) -> None:
    rt = ProcessRuntime(tmp_path / "state", log_max_size=4096, log_max_files=2)

    async def scenario() -> None:
        sb = await rt.run_pod_sandbox(PodSandboxConfig("u", "p", "ns",
                                                       log_directory=str(tmp_path / "logs")))
        cid = await rt.create_container(sb, ContainerConfig(
            "c", "sh", command=["sh", "-c", "i=0; while [ $i -lt 400 ]; do echo line $i; "
                                            "i=$((i+1)); done"]))
        await rt.start_container(cid)
        for _ in range(200):
            if (await rt.container_status(cid)).finished_at:
                break
            await asyncio.sleep(0.05)
        logs = sorted(os.listdir(tmp_path / "logs" / "c"))
        assert len(logs) == 2 and logs[0] == "0.log"
        await rt.remove_pod_sandbox(sb)
        assert os.listdir(tmp_path / "logs" / "c") == []

    asyncio.run(scenario())


def test_port_forward_connects_to_the_hosts_loopback(tmp_path: Path) -> None:
    rt = ProcessRuntime(tmp_path / "state")

    async def scenario() -> None:
        async def hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"hello")
            writer.close()

        server = await asyncio.start_server(hello, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        sb = await rt.run_pod_sandbox(PodSandboxConfig("u", "p", "ns"))
        reader, writer = await rt.port_forward(sb, port)
        assert await reader.read() == b"hello"
        writer.close()
        server.close()
        with pytest.raises(RuntimeOperationError, match="Connection refused"):
            await rt.port_forward(sb, port)
        await rt.remove_pod_sandbox(sb)

    asyncio.run(scenario())
