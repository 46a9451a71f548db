"""``pyk8s image`` subcommands, run through argparse as ``pyk8s`` runs them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from pyk8s.runtime.images.cli import add_parsers, human_size
from tests.make_test_image import Built, write_docker_archive
from tests.registry import TestRegistry


def pyk8s(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="pyk8s")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return int(args.func(args))


def test_import_ls_rm(tmp_path: Path, small: Built, capsys: pytest.CaptureFixture[str]
                      ) -> None:
    root = str(tmp_path / "images")
    tarball = tmp_path / "small.tar"
    write_docker_archive(small, tarball, ["small:1.0"])
    assert pyk8s("image", "import", str(tarball), "--root", root) == 0
    assert "imported docker.io/library/small:1.0 (sha256:" in capsys.readouterr().out
    assert pyk8s("image", "ls", "--root", root) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["IMAGE", "TAG", "IMAGE", "ID", "SIZE"]
    assert lines[1].split()[:3] == ["docker.io/library/small", "1.0",
                                    small.config_digest[7:20]]
    assert pyk8s("image", "ls", "-q", "--root", root) == 0
    assert capsys.readouterr().out.split() == [small.config_digest]
    assert pyk8s("image", "rm", "small:1.0", "--root", root) == 0
    out = capsys.readouterr().out
    assert "Deleted: docker.io/library/small:1.0" in out
    assert pyk8s("image", "ls", "-q", "--root", root) == 0
    assert capsys.readouterr().out == ""


def test_pull_with_progress_and_a_registry_config(tmp_path: Path, small: Built,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    with TestRegistry() as reg:
        reg.push("library/small", "latest", small)
        config = tmp_path / "registries.yaml"
        config.write_text(json.dumps({"servers": {"docker.io": reg.url}}))
        assert pyk8s("image", "pull", "small", "--root", str(tmp_path / "i"),
                     "--registry-config", str(config)) == 0
    out = capsys.readouterr().out
    assert f"{small.layers[0].digest[7:19]}: done" in out
    assert "pulled docker.io/library/small:latest" in out
    assert f"digest: {small.top_digest}" in out


def test_errors_are_one_line_and_exit_1(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert pyk8s("image", "rm", "nothing", "--root", str(tmp_path)) == 1
    assert capsys.readouterr().err.strip() == \
        "pyk8s image rm: image 'nothing' not found in the image store"
    assert pyk8s("image", "pull", "127.0.0.1:9/x", "--root", str(tmp_path)) == 1
    err = capsys.readouterr().err
    assert err.startswith('pyk8s image pull: failed to pull and unpack image '
                          '"127.0.0.1:9/x:latest"') and err.count("\n") == 1


def test_human_sizes() -> None:
    assert [human_size(n) for n in (5, 1_500, 2_345_678, 3e9)] == ["5B", "1.5kB", "2.35MB",
                                                                   "3GB"]
