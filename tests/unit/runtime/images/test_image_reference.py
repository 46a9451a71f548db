"""Image references are normalised exactly as upstream's distribution/reference does."""

from __future__ import annotations

import pytest

from pyk8s.runtime.images import InvalidReference, default_pull_policy, parse_reference
from pyk8s.runtime.images.config import RegistryConfig, is_loopback

D = "sha256:" + "a" * 64


class TestNormalisation:
    @pytest.mark.parametrize(("text", "expected"), [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36"),
        ("library/busybox", "docker.io/library/busybox:latest"),
        ("bitnami/redis:7", "docker.io/bitnami/redis:7"),
        ("docker.io/busybox", "docker.io/library/busybox:latest"),
        ("index.docker.io/library/busybox", "docker.io/library/busybox:latest"),
        ("quay.io/coreos/etcd:v3.5", "quay.io/coreos/etcd:v3.5"),
        ("localhost/app", "localhost/app:latest"),
        ("localhost:5000/app:v1", "localhost:5000/app:v1"),
        ("127.0.0.1:5000/a/b/c:x", "127.0.0.1:5000/a/b/c:x"),
        (f"busybox@{D}", f"docker.io/library/busybox@{D}"),
        (f"busybox:1.36@{D}", f"docker.io/library/busybox:1.36@{D}"),
        ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"),
    ])
    def test_normalised_string(self, text: str, expected: str) -> None:
        assert parse_reference(text).string == expected

    def test_parts(self) -> None:
        ref = parse_reference("localhost:5000/team/app:v2")
        assert (ref.domain, ref.path, ref.tag, ref.digest) == ("localhost:5000", "team/app",
                                                               "v2", "")
        assert ref.object == "v2"
        assert parse_reference(f"app@{D}").object == D

    def test_a_digest_implies_no_tag(self) -> None:
        assert parse_reference(f"busybox@{D}").tag == ""

    def test_familiar_form(self) -> None:
        assert parse_reference("busybox").familiar() == "busybox:latest"
        assert parse_reference("quay.io/a/b:1").familiar() == "quay.io/a/b:1"

    @pytest.mark.parametrize(("text", "why"), [
        ("", "empty"),
        ("Busybox", "lowercase"),
        ("a" * 64, "64-byte hexadecimal"),
        ("busybox:la:test", "invalid"),
        ("busybox@sha256:abc", "invalid digest"),
        ("bad..name", "invalid reference format"),
    ])
    def test_invalid_references_say_why(self, text: str, why: str) -> None:
        with pytest.raises(InvalidReference, match=why):
            parse_reference(text)


class TestDefaultPullPolicy:
    @pytest.mark.parametrize(("image", "policy"), [
        ("busybox", "Always"),
        ("busybox:latest", "Always"),
        ("busybox:1.36", "IfNotPresent"),
        (f"busybox@{D}", "IfNotPresent"),
        (f"busybox:latest@{D}", "Always"),
        ("localhost:5000/app", "Always"),
        ("localhost:5000/app:v1", "IfNotPresent"),
    ])
    def test_upstream_defaults_by_tag(self, image: str, policy: str) -> None:
        assert default_pull_policy(image) == policy


class TestEndpoints:
    def test_mirrors_come_first_then_the_registry(self) -> None:
        config = RegistryConfig.from_dict({"mirrors": {
            "docker.io": ["http://127.0.0.1:5000", "https://mirror.example.com/"],
            "*": ["https://all.example.com"]}})
        urls = [e.api for e in config.endpoints("docker.io")]
        assert urls == ["http://127.0.0.1:5000/v2", "https://mirror.example.com/v2",
                        "https://all.example.com/v2", "https://registry-1.docker.io/v2"]
        assert [e.mirror for e in config.endpoints("docker.io")] == [True, True, True, False]

    def test_https_unless_loopback_or_insecure(self) -> None:
        config = RegistryConfig.from_dict({"insecure": ["registry.lan:5000"]})
        assert config.endpoints("quay.io")[-1].api == "https://quay.io/v2"
        assert config.endpoints("registry.lan:5000")[-1].api == "http://registry.lan:5000/v2"
        assert config.endpoints("localhost:5000")[-1].api == "http://localhost:5000/v2"
        assert config.endpoints("quay.io", insecure=True)[-1].api == "http://quay.io/v2"
        assert all(is_loopback(h) for h in ("localhost", "127.0.0.1:5000", "[::1]:5000"))
        assert not is_loopback("10.0.0.1:5000")

    def test_bad_mirror_urls_are_rejected(self) -> None:
        with pytest.raises(ValueError, match="is not an http"):
            RegistryConfig.from_dict({"mirrors": {"docker.io": ["127.0.0.1:5000"]}})
