"""Pulling from a registry (the loopback test registry), the store's cache, names, removal
and garbage collection."""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from pyk8s.runtime.images import (
    ImageError,
    ImageNotFound,
    ImageStore,
    PullError,
    RegistryConfig,
)
from pyk8s.runtime.images.manifest import ACCEPT, select_platform
from tests.make_test_image import Built, file, image, index, layer
from tests.registry import TestRegistry

ROOT = os.geteuid() == 0


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def blob_gets(reg: TestRegistry) -> list[str]:
    return [p for _, p in reg.requests if "/blobs/" in p]


class TestPull:
    def test_pull_fetches_names_and_verifies(self, store: ImageStore, registry: TestRegistry,
                                             small: Built) -> None:
        registry.push("library/small", "latest", small)
        img = run(store.pull("small"))
        assert img.name == "docker.io/library/small:latest"
        assert img.digest == small.top_digest
        assert img.id == small.config_digest
        assert img.repo_digest == f"docker.io/library/small@{small.top_digest}"
        assert img.diff_ids == tuple(x.diff_id for x in small.layers)
        assert store.image_config(img).cmd == ("cat", "/etc/hello")
        assert [i.name for i in store.list()] == [img.name]
        for digest in (img.config, *img.layers, img.manifest):
            assert store.has_blob(digest)

    def test_every_manifest_type_is_accepted(self, store: ImageStore,
                                             registry: TestRegistry) -> None:
        layers = [layer([file("x", "1")], docker=True)]
        docker = image(layers, docker=True)
        registry.push("library/d", "v2", docker)
        registry.push("library/dl", "list", index([(docker, {"os": "linux",
                                                             "architecture": "amd64"})],
                                                  docker=True))
        assert run(store.pull("d:v2")).manifest == docker.top_digest
        listed = run(store.pull("dl:list"))
        assert listed.manifest == docker.top_digest and listed.digest != docker.top_digest
        assert all(t in ACCEPT for t in ("vnd.oci.image.index", "vnd.oci.image.manifest",
                                         "manifest.list.v2", "distribution.manifest.v2"))

    def test_the_hosts_platform_is_chosen_from_an_index(self, store: ImageStore,
                                                        registry: TestRegistry) -> None:
        amd = image([layer([file("arch", "amd64")])], architecture="amd64")
        arm = image([layer([file("arch", "arm64")])], architecture="arm64")
        registry.push("library/multi", "1", index([
            (arm, {"os": "linux", "architecture": "arm64", "variant": "v8"}),
            (amd, {"os": "linux", "architecture": "amd64"})]))
        arm_only = ImageStore(store.root, registry=store.registry,
                              platform={"os": "linux", "architecture": "arm64",
                                        "variant": "v8"})
        want = amd if store.platform["architecture"] == "amd64" else arm
        assert run(store.pull("multi:1")).manifest == want.top_digest
        assert run(arm_only.pull("multi:1")).manifest == arm.top_digest
        # only the chosen platform's layers were fetched
        assert arm.layers[0].digest in blob_gets(registry)[-1]

    def test_no_matching_platform_is_a_pull_error(self, store: ImageStore,
                                                  registry: TestRegistry) -> None:
        s390 = image([layer([file("a")])], architecture="s390x")
        registry.push("library/other", "1", index([(s390, {"os": "linux",
                                                           "architecture": "s390x"})]))
        with pytest.raises(PullError, match=r"no match for platform linux/\w+ in manifest "
                                            r"list \(available: linux/s390x\)"):
            run(store.pull("other:1"))

    def test_pull_by_digest(self, store: ImageStore, registry: TestRegistry,
                            small: Built) -> None:
        registry.push("library/small", "", small)
        img = run(store.pull(f"small@{small.top_digest}"))
        assert img.name == f"docker.io/library/small@{small.top_digest}"
        assert store.get(f"docker.io/library/small@{small.top_digest}") == img

    def test_loopback_registries_speak_plain_http(self, tmp_path: Path,
                                                  registry: TestRegistry, small: Built) -> None:
        registry.push("team/small", "v1", small)
        plain = ImageStore(tmp_path / "s")
        img = run(plain.pull(f"{registry.host}/team/small:v1"))
        assert img.name == f"{registry.host}/team/small:v1"

    def test_blobs_in_the_cache_are_not_fetched_again(self, store: ImageStore,
                                                      registry: TestRegistry,
                                                      small: Built) -> None:
        registry.push("library/small", "latest", small)
        run(store.pull("small"))
        before = len(blob_gets(registry))
        run(store.pull("small"))
        assert len(blob_gets(registry)) == before

    def test_concurrent_pulls_of_one_image_share_the_download(
            self, store: ImageStore, registry: TestRegistry, small: Built) -> None:
        registry.push("library/small", "latest", small)

        async def both() -> list[Any]:
            return await asyncio.gather(store.pull("small"), store.pull("busybox-not-here"),
                                        store.pull("small"), return_exceptions=True)
        a, missing, b = run(both())
        assert a == b and isinstance(missing, PullError)
        assert len(blob_gets(registry)) == 1 + len(small.layers)


class TestPullErrors:
    def test_missing_image_is_worded_for_the_event(self, tmp_path: Path,
                                                   registry: TestRegistry) -> None:
        store = ImageStore(tmp_path / "s")
        with pytest.raises(PullError) as info:
            run(store.pull(f"{registry.host}/library/nope:1.0"))
        err = info.value
        assert err.reason == "ErrImagePull" and err.not_found
        assert err.message == (
            f'failed to pull and unpack image "{registry.host}/library/nope:1.0": failed to '
            f'resolve reference "{registry.host}/library/nope:1.0": '
            f"{registry.host}/library/nope:1.0: not found")

    def test_a_corrupt_blob_fails_the_pull_and_is_not_kept(
            self, store: ImageStore, registry: TestRegistry, small: Built) -> None:
        registry.push("library/small", "latest", small)
        registry.corrupt.add(small.layers[0].digest)
        with pytest.raises(PullError, match="digest mismatch"):
            run(store.pull("small"))
        assert not store.has_blob(small.layers[0].digest)
        assert store.list() == []
        assert list((store.root / "tmp").iterdir()) == []

    def test_an_unreachable_registry(self, tmp_path: Path) -> None:
        store = ImageStore(tmp_path / "s")
        with pytest.raises(PullError, match=re.escape("failed to do request: Get "
                                                      "'http://127.0.0.1:9/v2/")):
            run(store.pull("127.0.0.1:9/app"))

    def test_an_invalid_reference(self, store: ImageStore) -> None:
        with pytest.raises(PullError, match="must be lowercase"):
            run(store.pull("Busybox"))


class TestMirrors:
    def test_mirrors_are_tried_in_order_then_the_registry(
            self, tmp_path: Path, registry: TestRegistry, small: Built) -> None:
        with TestRegistry() as empty_mirror, TestRegistry() as mirror:
            mirror.push("team/small", "v1", small)
            registry.push("team/small", "v1", small)
            config = RegistryConfig(mirrors={registry.host: [empty_mirror.url, mirror.url]})
            store = ImageStore(tmp_path / "s", registry=config)
            run(store.pull(f"{registry.host}/team/small:v1"))
            assert empty_mirror.requests[0] == ("GET", "/v2/team/small/manifests/v1")
            assert len(blob_gets(mirror)) == 1 + len(small.layers)
            assert registry.requests == []  # the mirror had it: the registry was not asked

    def test_the_registry_answers_when_no_mirror_has_it(
            self, tmp_path: Path, registry: TestRegistry, small: Built) -> None:
        registry.push("team/small", "v1", small)
        with TestRegistry() as mirror:
            config = RegistryConfig(mirrors={registry.host: [mirror.url, "http://127.0.0.1:9"]})
            store = ImageStore(tmp_path / "s", registry=config)
            run(store.pull(f"{registry.host}/team/small:v1"))
            assert mirror.requests and blob_gets(registry)

    def test_when_everything_fails_the_registrys_error_comes_first(
            self, tmp_path: Path, registry: TestRegistry) -> None:
        config = RegistryConfig(mirrors={registry.host: ["http://127.0.0.1:9"]})
        store = ImageStore(tmp_path / "s", registry=config)
        with pytest.raises(PullError) as info:
            run(store.pull(f"{registry.host}/team/none:v1"))
        text = info.value.message
        assert text.index("not found") < text.index("mirrors tried first: http://127.0.0.1:9")


class TestTokenAuth:
    def test_a_bearer_challenge_is_answered_with_a_token(self, tmp_path: Path,
                                                         small: Built) -> None:
        with TestRegistry(token_auth=True) as reg:
            reg.push("team/small", "v1", small)
            store = ImageStore(tmp_path / "s")
            run(store.pull(f"{reg.host}/team/small:v1"))
            tokens = [p for _, p in reg.requests if p.startswith("/token")]
            assert tokens == ["/token?service=test-registry&scope=repository:team/small:pull"]

    def test_credentials_go_to_the_token_endpoint(self, tmp_path: Path, small: Built) -> None:
        with TestRegistry(token_auth=True, credentials=("user", "secret")) as reg:
            reg.push("team/small", "v1", small)
            anonymous = ImageStore(tmp_path / "a")
            with pytest.raises(PullError, match="incorrect username or password"):
                run(anonymous.pull(f"{reg.host}/team/small:v1"))
            config = RegistryConfig(credentials={reg.host: ("user", "secret")})
            authed = ImageStore(tmp_path / "b", registry=config)
            assert run(authed.pull(f"{reg.host}/team/small:v1")).digest == small.top_digest


class TestNamesRemovalAndGc:
    def test_lookup_by_name_id_prefix_and_repo_digest(self, store: ImageStore,
                                                      registry: TestRegistry,
                                                      small: Built) -> None:
        registry.push("library/small", "latest", small)
        img = run(store.pull("small"))
        assert store.get("small") == img
        assert store.get("docker.io/library/small:latest") == img
        assert store.get(img.id) == img
        assert store.get(img.id[7:19]) == img
        assert store.get(f"small@{small.top_digest}") == img
        with pytest.raises(ImageNotFound):
            store.get("small:other")

    def test_remove_then_gc_frees_blobs_and_layers(self, store: ImageStore,
                                                   registry: TestRegistry,
                                                   small: Built) -> None:
        registry.push("library/small", "latest", small)
        registry.push("library/small", "again", small)
        img = run(store.pull("small"))
        run(store.pull("small:again"))
        store.remove("small")
        assert store.gc().blobs == []  # the other name still holds everything
        store.remove("small:again")
        result = store.gc()
        assert set(result.blobs) == {img.digest, img.config, *img.layers}
        assert result.bytes_freed > 0
        assert not any(p for p in (store.root / "blobs/sha256").iterdir())
        if store.unpack:
            assert set(result.layers) == set(img.diff_ids)

    def test_remove_by_id_removes_every_name(self, store: ImageStore, registry: TestRegistry,
                                             small: Built) -> None:
        registry.push("library/small", "latest", small)
        registry.push("library/small", "again", small)
        img = run(store.pull("small"))
        run(store.pull("small:again"))
        store.remove(img.id)
        assert store.list() == []

    def test_gc_spares_pinned_content_and_leased_layers(self, store: ImageStore,
                                                        registry: TestRegistry,
                                                        small: Built) -> None:
        registry.push("library/small", "latest", small)
        img = run(store.pull("small"))
        assert list((store.root / "leases").iterdir()) == []  # the pull's pin is gone
        store.lease("container-1", img)
        store.remove("small")
        with store.pin() as pin:  # as a pull in another process would, before writing
            pin.add([img.config])
            result = store.gc()
        assert img.config not in result.blobs and len(result.blobs) == 3
        assert result.layers == []
        store.release("container-1")
        assert store.gc().blobs == [img.config]
        assert len(store.gc().layers) == 0
        assert not any((store.root / "layers/sha256").iterdir())

    def test_removing_an_unknown_image(self, store: ImageStore) -> None:
        with pytest.raises(ImageNotFound, match="not found in the image store"):
            store.remove("nothing")


class TestEnsure:
    def test_pull_policies(self, store: ImageStore, registry: TestRegistry,
                           small: Built) -> None:
        registry.push("library/small", "1.0", small)
        with pytest.raises(ImageError, match=re.escape('"small:1.0" is not present with '
                                                        "pull policy of Never")) as info:
            run(store.ensure("small:1.0", "Never"))
        assert info.value.reason == "ErrImageNeverPull"
        run(store.ensure("small:1.0"))  # IfNotPresent by default for a tag: pulls once
        gets = len(registry.requests)
        run(store.ensure("small:1.0"))
        run(store.ensure("small:1.0", "Never"))
        assert len(registry.requests) == gets
        run(store.ensure("small:1.0", "Always"))
        assert len(registry.requests) == gets + 1  # the manifest only: blobs are cached


@pytest.mark.skipif(not ROOT, reason="layer directories for overlayfs need root")
class TestLayers:
    def test_layers_are_unpacked_once_and_shared(self, store: ImageStore,
                                                 registry: TestRegistry) -> None:
        base = layer([file("etc/base", "b")])
        one = image([base, layer([file("etc/one", "1")])])
        two = image([base, layer([file("etc/two", "2")])])
        registry.push("library/one", "latest", one)
        registry.push("library/two", "latest", two)
        dirs_one = store.layer_dirs(run(store.pull("one")))
        dirs_two = store.layer_dirs(run(store.pull("two")))
        assert dirs_one[0] == dirs_two[0] and dirs_one[1] != dirs_two[1]
        assert (dirs_two[1] / "etc/two").read_text() == "2"

    def test_a_layer_that_does_not_match_its_diff_id_is_refused(
            self, store: ImageStore, registry: TestRegistry) -> None:
        real = layer([file("a", "a")])
        built = image([real])
        config = json.loads(built.blobs[built.config_digest])
        config["rootfs"]["diff_ids"] = ["sha256:" + "0" * 64]
        lying = image([real], extra_config={})
        lying_config = json.dumps(config, sort_keys=True).encode()
        del lying.blobs[lying.config_digest]
        from tests.make_test_image import sha256
        manifest = json.loads(lying.manifest_bytes)
        manifest["config"].update(digest=sha256(lying_config), size=len(lying_config))
        data = json.dumps(manifest).encode()
        lying.blobs[sha256(lying_config)] = lying_config
        lying.manifests = {sha256(data): (lying.top_media_type, data)}
        lying.top_digest = sha256(data)
        registry.push("library/lying", "latest", lying)
        with pytest.raises(ImageError, match="diff_id mismatch"):
            run(store.pull("lying"))
        assert store.list() == []


def test_select_platform_prefers_the_exact_variant() -> None:
    doc = json.dumps({"manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + "1" * 64,
         "size": 1, "platform": {"os": "linux", "architecture": "arm64"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + "2" * 64,
         "size": 1, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
    ]}).encode()
    want = {"os": "linux", "architecture": "arm64", "variant": "v8"}
    assert select_platform(doc, want).digest == "sha256:" + "2" * 64
    want_v9 = {"os": "linux", "architecture": "arm64", "variant": "v9"}
    assert select_platform(doc, want_v9).digest == "sha256:" + "1" * 64
