"""Layers are applied by the OCI changeset rules, and never write outside their root."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from pyk8s.runtime.images import ImageError
from pyk8s.runtime.images.unpack import OPAQUE_XATTR, apply_layer
from tests.make_test_image import (
    Entry,
    directory,
    file,
    hardlink,
    layer,
    opaque,
    symlink,
    whiteout,
)

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="overlayfs whiteouts (mknod, trusted "
                                "xattrs) and mounts need root; CI runs as root")


def blob(tmp_path: Path, entries: list[Entry], name: str = "layer", **kw: bool) -> tuple[Path, str]:
    built = layer(entries, **kw)
    path = tmp_path / name
    path.write_bytes(built.blob)
    return path, built.diff_id


BASE = [directory("etc"), file("etc/a", "a"), file("etc/b", "b"), directory("etc/sub"),
        file("etc/sub/c", "c"), directory("usr"), file("usr/keep", "k")]


class TestApplyOntoOneDirectory:
    def test_files_dirs_symlinks_and_modes(self, tmp_path: Path) -> None:
        path, diff_id = blob(tmp_path, [*BASE, file("bin/tool", "#!", 0o4755),
                                        symlink("bin/sh", "/bin/busybox")])
        root = tmp_path / "root"
        assert apply_layer(path, root, overlay=False) == diff_id
        assert (root / "etc/sub/c").read_text() == "c"
        assert os.readlink(root / "bin/sh") == "/bin/busybox"  # absolute targets are kept
        assert stat.S_IMODE(os.stat(root / "bin/tool").st_mode) == 0o4755
        assert os.stat(root / "etc/a").st_mtime == 1_700_000_000

    def test_uncompressed_layers_too(self, tmp_path: Path) -> None:
        path, diff_id = blob(tmp_path, BASE, compress=False)
        assert apply_layer(path, tmp_path / "root", overlay=False) == diff_id

    def test_whiteout_deletes_a_lower_file_and_directory(self, tmp_path: Path) -> None:
        root = tmp_path / "root"
        apply_layer(blob(tmp_path, BASE, "l1")[0], root, overlay=False)
        apply_layer(blob(tmp_path, [whiteout("etc/a"), whiteout("etc/sub")], "l2")[0], root,
                    overlay=False)
        assert sorted(os.listdir(root / "etc")) == ["b"]
        assert not (root / "etc/.wh.a").exists()

    def test_opaque_directory_hides_lower_content_but_keeps_its_own(self, tmp_path: Path
                                                                    ) -> None:
        root = tmp_path / "root"
        apply_layer(blob(tmp_path, BASE, "l1")[0], root, overlay=False)
        apply_layer(blob(tmp_path, [directory("etc"), opaque("etc"), file("etc/new", "n")],
                         "l2")[0], root, overlay=False)
        assert sorted(os.listdir(root / "etc")) == ["new"]
        assert (root / "usr/keep").exists()

    def test_a_file_replaces_a_directory_and_back(self, tmp_path: Path) -> None:
        root = tmp_path / "root"
        apply_layer(blob(tmp_path, BASE, "l1")[0], root, overlay=False)
        apply_layer(blob(tmp_path, [file("etc/sub", "now a file")], "l2")[0], root,
                    overlay=False)
        assert (root / "etc/sub").read_text() == "now a file"

    def test_hard_links_within_the_layer(self, tmp_path: Path) -> None:
        root = tmp_path / "root"
        apply_layer(blob(tmp_path, [*BASE, hardlink("etc/a2", "etc/a")])[0], root,
                    overlay=False)
        assert os.stat(root / "etc/a2").st_ino == os.stat(root / "etc/a").st_ino


class TestSafety:
    def test_dot_dot_is_refused(self, tmp_path: Path) -> None:
        path, _ = blob(tmp_path, [file("../escape", "x")])
        with pytest.raises(ImageError, match="escapes"):
            apply_layer(path, tmp_path / "root", overlay=False)
        assert not (tmp_path / "escape").exists()

    def test_writing_through_a_symlink_is_refused(self, tmp_path: Path) -> None:
        outside = tmp_path / "outside"
        outside.mkdir()
        path, _ = blob(tmp_path, [symlink("evil", str(outside)), file("evil/pwned", "x")])
        with pytest.raises(ImageError, match="through the symlink"):
            apply_layer(path, tmp_path / "root", overlay=False)
        assert not (outside / "pwned").exists()

    def test_a_hard_link_out_of_the_root_is_refused(self, tmp_path: Path) -> None:
        path, _ = blob(tmp_path, [hardlink("passwd", "../../etc/passwd")])
        with pytest.raises(ImageError, match="escapes"):
            apply_layer(path, tmp_path / "root", overlay=False)

    def test_absolute_member_names_stay_inside(self, tmp_path: Path) -> None:
        path, _ = blob(tmp_path, [file("/abs/file", "x")])
        apply_layer(path, tmp_path / "root", overlay=False)
        assert (tmp_path / "root/abs/file").read_text() == "x"

    def test_truncated_layers_fail(self, tmp_path: Path) -> None:
        path, _ = blob(tmp_path, [file("big", os.urandom(100_000))])
        path.write_bytes(path.read_bytes()[:50_000])
        with pytest.raises(ImageError, match="cannot unpack"):
            apply_layer(path, tmp_path / "root", overlay=False)

    def test_zstd_is_refused_clearly(self, tmp_path: Path) -> None:
        path = tmp_path / "z"
        path.write_bytes(b"\x28\xb5\x2f\xfd" + b"\0" * 100)
        with pytest.raises(ImageError, match="zstd"):
            apply_layer(path, tmp_path / "root", overlay=False)


@needs_root
class TestOverlayLayers:
    def test_whiteouts_become_overlayfs_whiteouts(self, tmp_path: Path) -> None:
        upper = tmp_path / "l2"
        apply_layer(blob(tmp_path, [whiteout("etc/a"), directory("etc/sub"), opaque("etc/sub"),
                                    file("etc/sub/d", "d")], "b2")[0], upper, overlay=True)
        st = os.lstat(upper / "etc/a")
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)
        assert os.getxattr(upper / "etc/sub", OPAQUE_XATTR) == b"y"

    def test_a_real_overlay_mount_shows_the_merged_image(self, tmp_path: Path) -> None:
        lower, upper = tmp_path / "l1", tmp_path / "l2"
        apply_layer(blob(tmp_path, BASE, "b1")[0], lower, overlay=True)
        apply_layer(blob(tmp_path, [whiteout("etc/a"), directory("etc/sub"), opaque("etc/sub"),
                                    file("etc/sub/d", "d")], "b2")[0], upper, overlay=True,
                    lowers=[lower])
        merged = tmp_path / "merged"
        merged.mkdir()
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={upper}:{lower}", str(merged)], check=True)
        try:
            assert sorted(os.listdir(merged / "etc")) == ["b", "sub"]
            assert os.listdir(merged / "etc/sub") == ["d"]
            assert (merged / "usr/keep").read_text() == "k"
        finally:
            subprocess.run(["umount", str(merged)], check=True)

    def test_hard_link_to_a_lower_layer_is_copied_up(self, tmp_path: Path) -> None:
        lower, upper = tmp_path / "l1", tmp_path / "l2"
        apply_layer(blob(tmp_path, BASE, "b1")[0], lower, overlay=True)
        apply_layer(blob(tmp_path, [hardlink("etc/a-link", "etc/a")], "b2")[0], upper,
                    overlay=True, lowers=[lower])
        assert (upper / "etc/a-link").read_text() == "a"
