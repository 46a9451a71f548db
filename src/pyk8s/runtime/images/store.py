"""The node's image store: content-addressed blobs, named images, unpacked layers.

On disk, under ``root`` (default ``/var/lib/pyk8s/images``)::

    blobs/sha256/<hex>          manifests, indexes, configs, compressed layers (verified)
    layers/sha256/<diff-id hex> one directory per unpacked layer, in overlayfs format:
                                a container's rootfs is an overlay of these (lower dirs)
    images.json                 name -> record (repo digest, manifest, config, layers)
    leases/<holder>.json        layers a container holds: garbage collection keeps them
    leases/pin-<id>.json        blobs and layers of a pull or import in progress
    tmp/                        downloads and unpacks in progress (renamed into place)

Concurrency: blobs and layers are written to ``tmp/`` and renamed into place, so readers
never see half a file and two writers of the same content both succeed. ``images.json`` is
read-modify-written under an exclusive ``flock`` on ``lock``, which garbage collection holds
for its whole pass. A pull (or import) *pins* what it is about to write before writing it
(under the same lock) and unpins once the image is named, so a collection in another
process never deletes content that is not named yet; pins left by a crash expire after
``PIN_TTL``. Within one process, concurrent pulls of one reference share one download.
Blocking work (hashing, unpacking) runs in threads.

Pulling tries the registry's mirrors in order, then the registry itself (:mod:`.config`);
any failure of one endpoint (unreachable, 404, bad digest) moves on to the next, and the
error raised at the end names the registry's own failure first. What this store does not
do: push, image signatures, disk-usage-driven collection (the kubelet's policy; it calls
:meth:`ImageStore.remove` and :meth:`ImageStore.gc`), zstd layers, schema 1 manifests.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pyk8s.runtime.images import reference, unpack
from pyk8s.runtime.images.config import Endpoint, RegistryConfig
from pyk8s.runtime.images.errors import ImageError, ImageNotFound, PullError, RegistryError
from pyk8s.runtime.images.manifest import (
    INDEXES,
    MANIFESTS,
    Descriptor,
    ImageConfig,
    Manifest,
    ManifestError,
    check_digest,
    digest_of,
    host_platform,
    media_type_of,
    select_platform,
)
from pyk8s.runtime.images.registry import Progress, RegistryClient, new_session

DEFAULT_ROOT = "/var/lib/pyk8s/images"
PIN_TTL = 6 * 3600.0
"""A pin not refreshed for this long belongs to a pull that died: collection ignores it."""


@dataclass(frozen=True)
class Image:
    """A named image in the store. ``id`` is its config digest (upstream's image ID)."""

    name: str
    """Normalised reference (``docker.io/library/busybox:latest``), or the ID when unnamed."""
    digest: str
    """What the name resolved to: the index or manifest digest (the repo digest)."""
    manifest: str
    config: str
    layers: tuple[str, ...]
    diff_ids: tuple[str, ...]
    size: int
    created: float = 0.0
    media_type: str = ""

    @property
    def id(self) -> str:
        return self.config

    @property
    def repo_digest(self) -> str:
        """``docker.io/library/busybox@sha256:...``, what the kubelet reports as imageID."""
        try:
            ref = reference.parse(self.name)
        except reference.InvalidReference:
            return self.digest
        return ref.with_digest(self.digest).string

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["layers"], data["diff_ids"] = list(self.layers), list(self.diff_ids)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Image:
        return cls(**{**data, "layers": tuple(data["layers"]),
                      "diff_ids": tuple(data["diff_ids"])})


@dataclass
class GcResult:
    blobs: list[str] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    bytes_freed: int = 0


class Pin:
    """Content a pull or import is writing, kept from collection until :meth:`close`."""

    def __init__(self, store: ImageStore) -> None:
        self.store = store
        self.path = store.root / "leases" / f"pin-{os.getpid()}-{uuid.uuid4().hex[:12]}.json"
        self.blobs: set[str] = set()
        self.diff_ids: set[str] = set()

    def add(self, blobs: Sequence[str] = (), diff_ids: Sequence[str] = ()) -> None:
        """Call *before* writing the content: a collection then either ran already or
        sees the pin."""
        self.blobs.update(blobs)
        self.diff_ids.update(diff_ids)
        with self.store._locked():
            _write_atomic(self.path, json.dumps({"blobs": sorted(self.blobs),
                                                 "diff_ids": sorted(self.diff_ids)}).encode())

    def close(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class ImageStore:
    """See the module docstring. ``unpack``: make overlayfs layer directories on pull and
    import (default: when root; unprivileged stores keep blobs only and can
    :meth:`export_rootfs`). ``session_factory``: the HTTP client (a test seam)."""

    def __init__(self, root: str | Path = DEFAULT_ROOT, *,
                 registry: RegistryConfig | None = None, unpack: bool | None = None,
                 platform: dict[str, str] | None = None,
                 max_concurrent_downloads: int = 3, session_factory: Any = new_session) -> None:
        self.root = Path(root)
        self.registry = registry or RegistryConfig()
        self.unpack = (os.geteuid() == 0) if unpack is None else unpack
        self.platform = platform or host_platform()
        self.max_concurrent_downloads = max_concurrent_downloads
        self.session_factory = session_factory
        for sub in ("blobs/sha256", "layers/sha256", "leases", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._inflight: dict[str, asyncio.Future[Image]] = {}

    # ---- files --------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        algorithm, _, hexpart = check_digest(digest).partition(":")
        return self.root / "blobs" / algorithm / hexpart

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).exists()

    def read_blob(self, digest: str) -> bytes:
        try:
            return self.blob_path(digest).read_bytes()
        except FileNotFoundError:
            raise ImageError(f"blob {digest} is missing from the store") from None

    def tmp_path(self, what: str = "blob") -> Path:
        return self.root / "tmp" / f"{what}-{os.getpid()}-{uuid.uuid4().hex[:12]}"

    def commit_blob(self, tmp: Path, digest: str) -> None:
        """Move a verified temporary file into the content store."""
        path = self.blob_path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, path)

    def put_blob(self, data: bytes, digest: str | None = None) -> str:
        actual = digest_of(data, digest.split(":")[0] if digest else "sha256")
        if digest and actual != digest:
            raise ImageError(f"digest mismatch: expected {digest}, got {actual}")
        if not self.has_blob(actual):
            tmp = self.tmp_path()
            tmp.write_bytes(data)
            self.commit_blob(tmp, actual)
        return actual

    def layer_path(self, diff_id: str) -> Path:
        algorithm, _, hexpart = check_digest(diff_id).partition(":")
        return self.root / "layers" / algorithm / hexpart

    @contextlib.contextmanager
    def pin(self) -> Iterator[Pin]:
        pin = Pin(self)
        try:
            yield pin
        finally:
            pin.close()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.root / "lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _records(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads((self.root / "images.json").read_bytes())
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise ImageError(f"{self.root / 'images.json'} is corrupt: {exc}") from None
        return dict(data.get("images") or {})

    def _save(self, records: dict[str, dict[str, Any]]) -> None:
        _write_atomic(self.root / "images.json",
                      json.dumps({"images": records}, indent=1, sort_keys=True).encode())

    # ---- queries ------------------------------------------------------------------------

    def list(self) -> list[Image]:
        return [Image.from_json(r) for _, r in sorted(self._records().items())]

    def get(self, ref: str) -> Image:
        """By name (``busybox`` finds ``docker.io/library/busybox:latest``), by repo digest
        (``busybox@sha256:...``), or by ID (``sha256:<hex>`` or a unique prefix of the hex)."""
        records = self._records()
        key = ref
        with contextlib.suppress(reference.InvalidReference):
            key = reference.parse(ref).string
        if key in records:
            return Image.from_json(records[key])
        images = [Image.from_json(r) for r in records.values()]
        if "@" in ref:
            with contextlib.suppress(reference.InvalidReference):
                parsed = reference.parse(ref)
                for image in images:
                    if image.repo_digest == parsed.with_digest(parsed.digest).string:
                        return image
        hexpart = ref.removeprefix("sha256:")
        if len(hexpart) >= 6 and all(c in "0123456789abcdef" for c in hexpart):
            found = {i.id: i for i in images if i.id.removeprefix("sha256:").startswith(hexpart)}
            if len(found) == 1:
                return next(iter(found.values()))
        raise ImageNotFound(ref)

    def exists(self, ref: str) -> bool:
        try:
            self.get(ref)
            return True
        except ImageNotFound:
            return False

    def image_config(self, image: Image) -> ImageConfig:
        try:
            return ImageConfig.parse(self.read_blob(image.config))
        except ManifestError as exc:
            raise ImageError(f"image {image.name}: bad config: {exc}") from None

    # ---- pulling ------------------------------------------------------------------------

    async def ensure(self, image: str, policy: str = "", *, progress: Progress | None = None
                     ) -> Image:
        """The kubelet's use: ``imagePullPolicy`` (empty: upstream's default for the
        reference) decides whether to contact the registry."""
        policy = policy or reference.default_pull_policy(image)
        if policy == "Always":
            return await self.pull(image, progress=progress)
        try:
            return self.get(image)
        except ImageNotFound:
            if policy == "Never":
                raise ImageError(f'Container image "{image}" is not present with pull policy '
                                 "of Never", "ErrImageNeverPull") from None
        return await self.pull(image, progress=progress)

    async def pull(self, image: str, *, insecure: bool = False,
                   progress: Progress | None = None) -> Image:
        """Fetch ``image`` (verifying every digest), name it, unpack its layers."""
        try:
            ref = reference.parse(image)
        except reference.InvalidReference as exc:
            raise PullError(f'failed to pull image "{image}": {exc}') from None
        key = ref.string
        if key in self._inflight:
            return await asyncio.shield(self._inflight[key])
        future: asyncio.Future[Image] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await self._pull(ref, insecure, progress)
            future.set_result(result)
            return result
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        finally:
            del self._inflight[key]

    async def _pull(self, ref: reference.Reference, insecure: bool,
                    progress: Progress | None) -> Image:
        errors: list[tuple[Endpoint, RegistryError | ManifestError]] = []
        fetched = None
        with self.pin() as pin:
            async with self.session_factory() as session:
                for endpoint in self.registry.endpoints(ref.domain, insecure=insecure):
                    client = RegistryClient(session, endpoint, ref.path,
                                            self.registry.credentials_for(endpoint.host))
                    try:
                        fetched = await self._fetch(client, ref, pin, progress)
                        break
                    except (RegistryError, ManifestError) as exc:
                        errors.append((endpoint, exc))
            if fetched is None:
                raise _pull_failure(ref, errors)
            image = Image(name=ref.string, created=time.time(), **fetched)
            await asyncio.to_thread(self._unpack, image)
            self._name(image)
        return image

    async def _fetch(self, client: RegistryClient, ref: reference.Reference, pin: Pin,
                     progress: Progress | None) -> dict[str, Any]:
        top = await client.get_manifest(ref.object)
        media_type = media_type_of(top.data, top.media_type)
        pin.add([top.digest])
        self.put_blob(top.data)
        if media_type in INDEXES:
            entry = select_platform(top.data, self.platform)
            chosen = await client.get_manifest(entry.digest)
            if chosen.digest != entry.digest:
                raise RegistryError(f"manifest {entry.digest}: digest mismatch")
            manifest_data = chosen.data
            manifest_type = media_type_of(chosen.data, entry.media_type or chosen.media_type)
            pin.add([chosen.digest])
            self.put_blob(chosen.data)
        elif media_type in MANIFESTS:
            manifest_data, manifest_type = top.data, media_type
        else:
            raise ManifestError(f"unsupported manifest media type {media_type!r}")
        manifest = Manifest.parse(manifest_data, manifest_type)
        descriptors = [manifest.config, *manifest.layers]
        pin.add([d.digest for d in descriptors])
        semaphore = asyncio.Semaphore(self.max_concurrent_downloads)

        async def fetch(desc: Descriptor) -> None:
            if self.has_blob(desc.digest):
                if progress:
                    progress(desc.digest, max(desc.size, 0), max(desc.size, 0))
                return
            async with semaphore:
                tmp = self.tmp_path()
                try:
                    await client.fetch_blob(desc.digest, desc.size, tmp, progress)
                    self.commit_blob(tmp, desc.digest)
                finally:
                    with contextlib.suppress(FileNotFoundError):
                        tmp.unlink()

        await asyncio.gather(*(fetch(d) for d in descriptors))
        config = ImageConfig.parse(self.read_blob(manifest.config.digest))
        if len(config.diff_ids) != len(manifest.layers):
            raise ManifestError(f"image config has {len(config.diff_ids)} diff_ids for "
                                f"{len(manifest.layers)} layers")
        pin.add(diff_ids=config.diff_ids)
        return {"digest": top.digest, "manifest": digest_of(manifest_data),
                "config": manifest.config.digest,
                "layers": tuple(d.digest for d in manifest.layers),
                "diff_ids": config.diff_ids, "media_type": media_type,
                "size": sum(max(d.size, 0) for d in descriptors) + len(manifest_data)}

    def _name(self, image: Image) -> None:
        with self._locked():
            records = self._records()
            records[image.name] = image.to_json()
            self._save(records)

    def add(self, image: Image) -> Image:
        """Name an image whose blobs are in the store (import); unpacks it first."""
        self._unpack(image)
        self._name(image)
        return image

    # ---- layers -------------------------------------------------------------------------

    def _unpack(self, image: Image) -> None:
        if self.unpack:
            self.layer_dirs(image)

    def layer_dirs(self, image: Image) -> list[Path]:
        """The image's layer directories, bottom first, unpacking any that are missing
        (each checked against its diff_id). Overlayfs wants them top first."""
        dirs: list[Path] = []
        for blob, diff_id in zip(image.layers, image.diff_ids, strict=True):
            path = self.layer_path(diff_id)
            if not path.exists():
                tmp = self.tmp_path("layer")
                try:
                    actual = unpack.apply_layer(self.blob_path(blob), tmp, overlay=True,
                                                lowers=dirs)
                    if actual != diff_id:
                        raise ImageError(f"layer {blob}: diff_id mismatch: the config says "
                                         f"{diff_id}, the content is {actual}")
                    with contextlib.suppress(FileExistsError, OSError):
                        os.rename(tmp, path)  # lost a race: the other copy is identical
                finally:
                    if tmp.exists():
                        shutil.rmtree(tmp, ignore_errors=True)
            dirs.append(path)
        return dirs

    def export_rootfs(self, image: Image, dest: str | Path) -> None:
        """Apply every layer onto ``dest`` (a flat rootfs, e.g. for a runtime without
        overlayfs); works unprivileged."""
        for blob, diff_id in zip(image.layers, image.diff_ids, strict=True):
            actual = unpack.apply_layer(self.blob_path(blob), Path(dest), overlay=False)
            if actual != diff_id:
                raise ImageError(f"layer {blob}: diff_id mismatch ({actual} != {diff_id})")

    def lease(self, holder: str, image: Image) -> None:
        """Keep ``image``'s layer directories through garbage collection until released;
        also records the image's last use (disk-usage collection removes the least
        recently used first)."""
        _write_atomic(self.root / "leases" / f"{holder}.json",
                      json.dumps({"image": image.name, "diff_ids": image.diff_ids}).encode())
        used = self.root / "used" / image.id.replace(":", "-")
        used.parent.mkdir(exist_ok=True)
        used.touch()
        os.utime(used)

    def last_used(self, image: Image) -> float:
        """When a container last took ``image`` (else when it was stored)."""
        try:
            return (self.root / "used" / image.id.replace(":", "-")).stat().st_mtime
        except FileNotFoundError:
            return image.created

    def release(self, holder: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.root / "leases" / f"{holder}.json").unlink()

    # ---- removal ------------------------------------------------------------------------

    def remove(self, ref: str) -> Image:
        """Forget the name ``ref`` (or, given an ID, every name of that image). Blobs and
        layers stay until :meth:`gc`."""
        with self._locked():
            image = self.get(ref)
            records = self._records()
            key = ref
            with contextlib.suppress(reference.InvalidReference):
                key = reference.parse(ref).string
            if key == image.name or "@" in ref:
                names = [image.name]
            else:  # found by ID: every name of that image
                names = [n for n, r in records.items() if r["config"] == image.id]
            for name in names:
                records.pop(name, None)
            self._save(records)
        return image

    def gc(self) -> GcResult:
        """Delete blobs and layer directories that no named image, container lease or
        pull in progress references."""
        result = GcResult()
        now = time.time()
        with self._locked():
            blobs: set[str] = set()
            layers: set[str] = set()
            for image in self.list():
                blobs.update((image.digest, image.manifest, image.config, *image.layers))
                layers.update(image.diff_ids)
            for lease in (self.root / "leases").glob("*.json"):
                with contextlib.suppress(OSError, ValueError):
                    if lease.name.startswith("pin-") and now - lease.stat().st_mtime > PIN_TTL:
                        lease.unlink()
                        continue
                    data = json.loads(lease.read_bytes())
                    blobs.update(data.get("blobs") or ())
                    layers.update(data.get("diff_ids") or ())
            for algorithm_dir in (self.root / "blobs").iterdir():
                for path in algorithm_dir.iterdir():
                    digest = f"{algorithm_dir.name}:{path.name}"
                    if digest in blobs:
                        continue
                    with contextlib.suppress(FileNotFoundError):
                        size = path.stat().st_size
                        path.unlink()
                        result.blobs.append(digest)
                        result.bytes_freed += size
            for algorithm_dir in (self.root / "layers").iterdir():
                for path in algorithm_dir.iterdir():
                    diff_id = f"{algorithm_dir.name}:{path.name}"
                    if diff_id not in layers:
                        shutil.rmtree(path, ignore_errors=True)
                        result.layers.append(diff_id)
            ids = {i.id.replace(":", "-") for i in self.list()}
            for path in (self.root / "used").glob("*") if (self.root / "used").exists() else ():
                if path.name not in ids:
                    with contextlib.suppress(OSError):
                        path.unlink()
            for path in (self.root / "tmp").iterdir():
                with contextlib.suppress(OSError):
                    if now - path.lstat().st_mtime >= PIN_TTL:
                        shutil.rmtree(path) if path.is_dir() else path.unlink()
        return result

    def usage(self) -> int:
        """Bytes used by blobs (what ``ls`` sizes add up from)."""
        total = 0
        for path in (self.root / "blobs").rglob("*"):
            with contextlib.suppress(OSError):
                if path.is_file():
                    total += path.stat().st_size
        return total


def _pull_failure(ref: reference.Reference,
                  errors: Sequence[tuple[Endpoint, RegistryError | ManifestError]]) -> PullError:
    """The registry's own error first (it is the one users recognise), mirrors' after."""
    def text(e: RegistryError | ManifestError) -> str:
        return e.message if isinstance(e, RegistryError) else str(e)

    primary = next((e for ep, e in errors if not ep.mirror), errors[-1][1])
    head = f'failed to pull and unpack image "{ref.string}": '
    if isinstance(primary, RegistryError) and primary.not_found:
        head += f'failed to resolve reference "{ref.string}": '
    message = head + text(primary)
    mirrors = [f"{ep}: {text(e)}" for ep, e in errors if ep.mirror]
    if mirrors:
        message += f" (mirrors tried first: {'; '.join(mirrors)})"
    not_found = all(isinstance(e, RegistryError) and e.not_found for _, e in errors)
    return PullError(message, not_found=not_found)
