"""Importing docker-archive and OCI-layout tarballs built locally."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import pytest

from pyk8s.runtime.images import ImageError, ImageStore, import_archive
from tests.make_test_image import (
    Built,
    file,
    image,
    index,
    layer,
    write_docker_archive,
    write_oci_archive,
    write_oci_layout,
)

ROOT = os.geteuid() == 0


@pytest.fixture
def local(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "images")


class TestDockerArchive:
    def test_import_names_the_repo_tags(self, local: ImageStore, busybox: Built,
                                        tmp_path: Path) -> None:
        tarball = tmp_path / "busybox.tar"
        write_docker_archive(busybox, tarball, ["busybox:latest", "localhost:5000/bb:1"])
        images = import_archive(local, tarball)
        assert [i.name for i in images] == ["docker.io/library/busybox:latest",
                                            "localhost:5000/bb:1"]
        img = local.get("busybox")
        assert img.id == busybox.config_digest
        assert img.diff_ids == (busybox.layers[0].diff_id,)
        assert local.image_config(img).cmd == ("sh",)
        if ROOT:
            assert (local.layer_dirs(img)[0] / "bin/busybox").stat().st_size > 100_000

    def test_an_archive_whose_layer_does_not_match_its_config(self, local: ImageStore,
                                                              tmp_path: Path) -> None:
        built = image([layer([file("a", "a")])])
        built.layers[0] = layer([file("a", "tampered")])
        tarball = tmp_path / "bad.tar"
        write_docker_archive(built, tarball, ["bad:1"])
        with pytest.raises(ImageError, match="does not match the config's diff_id"):
            import_archive(local, tarball)
        assert local.list() == []

    def test_untagged_images_are_kept_under_their_id(self, local: ImageStore,
                                                     small: Built, tmp_path: Path) -> None:
        tarball = tmp_path / "untagged.tar"
        write_docker_archive(small, tarball, [])
        (img,) = import_archive(local, tarball)
        assert img.name == small.config_digest
        assert local.get(small.config_digest[7:20]) == img


class TestOciLayout:
    def test_an_oci_archive_keeps_its_manifest_digest(self, local: ImageStore,
                                                      busybox: Built, tmp_path: Path) -> None:
        tarball = tmp_path / "busybox-oci.tar"
        write_oci_archive(busybox, tarball, ref_name="localhost:5000/busybox:latest")
        (img,) = import_archive(local, tarball)
        assert img.name == "localhost:5000/busybox:latest"
        assert img.digest == busybox.top_digest

    def test_a_bare_tag_takes_the_base_name(self, local: ImageStore, small: Built,
                                            tmp_path: Path) -> None:
        write_oci_layout(small, tmp_path / "layout", ref_name="v1")
        (img,) = import_archive(local, tmp_path / "layout", base_name="example.com/small")
        assert img.name == "example.com/small:v1"
        (unnamed,) = import_archive(local, tmp_path / "layout")
        assert unnamed.name == small.config_digest

    def test_containerds_name_annotation_wins(self, local: ImageStore, small: Built,
                                              tmp_path: Path) -> None:
        write_oci_layout(small, tmp_path / "layout", ref_name="v1",
                         containerd_name="docker.io/library/small:v1")
        assert import_archive(local, tmp_path / "layout")[0].name == \
            "docker.io/library/small:v1"

    def test_an_index_in_a_layout_gives_the_hosts_platform(self, local: ImageStore,
                                                           tmp_path: Path) -> None:
        arch = local.platform["architecture"]
        mine = image([layer([file("arch", arch)])], architecture=arch)
        other = image([layer([file("arch", "s390x")])], architecture="s390x")
        built = index([(other, {"os": "linux", "architecture": "s390x"}),
                       (mine, {"os": "linux", "architecture": arch})])
        write_oci_layout(built, tmp_path / "layout", ref_name="multi.example/x:1")
        (img,) = import_archive(local, tmp_path / "layout")
        assert img.manifest == mine.top_digest and img.digest == built.top_digest

    def test_a_corrupt_blob_is_refused(self, local: ImageStore, small: Built,
                                       tmp_path: Path) -> None:
        layout = tmp_path / "layout"
        write_oci_layout(small, layout, ref_name="x.example/y:1")
        victim = layout / "blobs/sha256" / small.layers[0].digest.split(":")[1]
        victim.write_bytes(victim.read_bytes() + b"x")
        with pytest.raises(ImageError, match="digest mismatch"):
            import_archive(local, layout)

    def test_not_an_image_tarball(self, local: ImageStore, tmp_path: Path) -> None:
        junk = tmp_path / "junk.tar"
        with tarfile.open(junk, "w") as tar:
            info = tarfile.TarInfo("hello.txt")
            tar.addfile(info)
        with pytest.raises(ImageError, match="neither a docker-archive"):
            import_archive(local, junk)
        (tmp_path / "notatar").write_text(json.dumps({}))
        with pytest.raises(ImageError, match="not a readable tarball"):
            import_archive(local, tmp_path / "notatar")
