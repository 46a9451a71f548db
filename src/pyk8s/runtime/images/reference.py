"""Image references, parsed and normalised as upstream's ``distribution/reference`` does.

``busybox`` is ``docker.io/library/busybox:latest``; ``localhost:5000/app`` names a registry
because its first component has a port; ``name@sha256:...`` pins a digest (and then no
``:latest`` is implied). The normalised string (:attr:`Reference.string`) is the key the
image store lists, as containerd's CRI plugin does.

Also here, because it depends only on the reference: upstream's default
``imagePullPolicy`` (``Always`` for ``:latest`` or no tag, else ``IfNotPresent``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
"""Where ``docker.io`` is actually served (as the Docker client and containerd map it)."""

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"^(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$")
_HEX64 = re.compile(r"^[a-f0-9]{64}$")
NAME_TOTAL_MAX = 255


class InvalidReference(ValueError):
    """A string that is not an image reference; the message says why, as upstream words it."""


@dataclass(frozen=True)
class Reference:
    domain: str
    """The registry host, with its port: ``docker.io``, ``localhost:5000``."""
    path: str
    """The repository inside the registry: ``library/busybox``."""
    tag: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        """``docker.io/library/busybox``: the repository, fully qualified."""
        return f"{self.domain}/{self.path}"

    @property
    def string(self) -> str:
        """The normalised reference: a tag, a digest, or both (``name:tag@digest``)."""
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    @property
    def object(self) -> str:
        """What to ask the registry's ``/manifests/`` endpoint for: the digest if pinned."""
        return self.digest or self.tag

    def with_digest(self, digest: str) -> Reference:
        """``name@digest``: the canonical form containerd reports as an image's repo digest."""
        return Reference(self.domain, self.path, "", digest)

    def familiar(self) -> str:
        """The short form users type (``busybox:latest``), as ``docker images`` shows it."""
        name = self.name
        if self.domain == DOCKER_HUB:
            name = self.path.removeprefix("library/") if self.path.count("/") == 1 else self.path
        out = name + (f":{self.tag}" if self.tag else "")
        return out + (f"@{self.digest}" if self.digest else "")

    def __str__(self) -> str:
        return self.string


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if not sep or ("." not in first and ":" not in first and first != "localhost"
                   and first == first.lower()):
        domain, remainder = DOCKER_HUB, name
    else:
        domain, remainder = first, rest
    if domain == "index.docker.io":
        domain = DOCKER_HUB
    if domain == DOCKER_HUB and "/" not in remainder:
        remainder = f"library/{remainder}"
    return domain, remainder


def parse(text: str) -> Reference:
    """Parse and normalise ``text`` (``ParseDockerRef``): defaults the domain to
    ``docker.io``, the ``library/`` namespace there, and the tag to ``latest`` when neither
    tag nor digest is given."""
    if not text:
        raise InvalidReference("invalid reference format: empty reference")
    if _HEX64.match(text):
        raise InvalidReference(f"invalid repository name ({text}), cannot specify 64-byte "
                               "hexadecimal strings")
    rest, _, digest = text.partition("@")
    if digest and not _DIGEST.match(digest):
        raise InvalidReference(f"invalid reference format: invalid digest {digest!r}")
    tag = ""
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1:]
        if not _TAG.match(tag):
            raise InvalidReference(f"invalid reference format: invalid tag {tag!r}")
    domain, path = _split_domain(rest)
    if not _DOMAIN.match(domain):
        raise InvalidReference(f"invalid reference format: invalid registry host {domain!r}")
    if not _PATH.match(path):
        if path.lower() != path and _PATH.match(path.lower()):
            raise InvalidReference(f"invalid reference format: repository name ({path}) "
                                   "must be lowercase")
        raise InvalidReference(f"invalid reference format: {text!r}")
    if len(f"{domain}/{path}") > NAME_TOTAL_MAX:
        raise InvalidReference(f"repository name must not be more than {NAME_TOTAL_MAX} "
                               "characters")
    if not tag and not digest:
        tag = "latest"
    return Reference(domain, path, tag, digest.lower() if digest else "")


def default_pull_policy(image: str) -> str:
    """Upstream's defaulting of ``imagePullPolicy`` (``SetDefaults_Container``): ``Always``
    when the tag is ``latest``, or when there is neither a tag nor a digest; otherwise
    ``IfNotPresent`` (so ``busybox@sha256:...`` is not pulled again)."""
    rest, _, digest = image.partition("@")
    slash, colon = rest.rfind("/"), rest.rfind(":")
    tag = rest[colon + 1:] if colon > slash else ""
    if not tag and not digest:
        tag = "latest"
    return "Always" if tag == "latest" else "IfNotPresent"
