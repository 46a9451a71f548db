"""``pyk8s image``: import, list, remove, pull and prune images in a node's image store.

The lead's ``cli/main.py`` calls :func:`add_parsers` with its subparsers. Every subcommand
takes ``--root`` (the store, default ``/var/lib/pyk8s/images``, the one the ``oci`` runtime
uses) and ``--registry-config`` (mirrors, insecure registries, credentials: see
:mod:`pyk8s.runtime.images.config`). Errors are one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from typing import TextIO

from pyk8s.runtime.images import reference
from pyk8s.runtime.images.archive import import_archive
from pyk8s.runtime.images.config import RegistryConfig
from pyk8s.runtime.images.errors import ImageError
from pyk8s.runtime.images.store import DEFAULT_ROOT, Image, ImageStore


def human_size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.3g}{unit}"
        n /= 1000
    return f"{n}"


def _store(args: argparse.Namespace) -> ImageStore:
    registry = RegistryConfig.from_file(args.registry_config) if args.registry_config \
        else RegistryConfig()
    return ImageStore(args.root, registry=registry)


def _split(image: Image) -> tuple[str, str]:
    """(repository, tag) for the listing, as ``crictl images`` shows them."""
    try:
        ref = reference.parse(image.name)
    except reference.InvalidReference:
        return "<none>", "<none>"
    if image.name == image.id:
        return "<none>", "<none>"
    return ref.name, ref.tag or "<none>"


def cmd_ls(args: argparse.Namespace) -> int:
    out = sys.stdout
    images = _store(args).list()
    if args.quiet:
        for image_id in dict.fromkeys(i.id for i in images):
            print(image_id, file=out)
        return 0
    rows = [("IMAGE", "TAG", "DIGEST" if args.digests else "IMAGE ID", "SIZE")]
    for image in images:
        repo, tag = _split(image)
        ident = image.digest if args.digests else image.id.removeprefix("sha256:")[:13]
        rows.append((repo, tag, ident, human_size(image.size)))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(),
              file=out)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    out = sys.stdout
    store = _store(args)
    started = time.monotonic()
    for image in import_archive(store, args.file, base_name=args.base_name):
        name = image.name if image.name != image.id else "<none>"
        print(f"imported {name} ({image.id}) in {time.monotonic() - started:.2f}s", file=out)
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    out = sys.stdout
    store = _store(args)
    status = 0
    for ref in args.image:
        try:
            image = store.remove(ref)
            print(f"Deleted: {image.name}", file=out)
        except ImageError as exc:
            print(f"pyk8s image rm: {exc.message}", file=sys.stderr)
            status = 1
    result = store.gc()
    if result.blobs or result.layers:
        print(f"freed {human_size(result.bytes_freed)} ({len(result.blobs)} blobs, "
              f"{len(result.layers)} layers)", file=out)
    return status


def cmd_prune(args: argparse.Namespace) -> int:
    out = sys.stdout
    result = _store(args).gc()
    print(f"freed {human_size(result.bytes_freed)} ({len(result.blobs)} blobs, "
          f"{len(result.layers)} layers)", file=out)
    return 0


class _Progress:
    """One status line per blob, rewritten in place on a terminal; a line per finished
    blob otherwise (logs stay readable)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.done: dict[str, tuple[int, int]] = {}
        self.finished: set[str] = set()
        self.last = 0.0

    def __call__(self, digest: str, done: int, total: int) -> None:
        self.done[digest] = (done, total)
        complete = total > 0 and done >= total
        if complete and digest not in self.finished:
            self.finished.add(digest)
            if not self.tty:
                print(f"{digest[7:19]}: done {human_size(total)}", file=self.out)
        now = time.monotonic()
        if self.tty and (complete or now - self.last > 0.1):
            self.last = now
            got = sum(d for d, _ in self.done.values())
            want = sum(t for _, t in self.done.values())
            print(f"\r{digest[7:19]}: {human_size(done)}/{human_size(total)}   "
                  f"total {human_size(got)}/{human_size(want)}  "
                  f"({len(self.finished)}/{len(self.done)} blobs)\x1b[K",
                  end="", file=self.out, flush=True)

    def close(self) -> None:
        if self.tty and self.done:
            print(file=self.out)


def cmd_pull(args: argparse.Namespace) -> int:
    out = sys.stdout
    store = _store(args)
    progress = _Progress(out)
    started = time.monotonic()
    try:
        image = asyncio.run(store.pull(args.image, insecure=args.insecure, progress=progress))
    finally:
        progress.close()
    print(f"pulled {image.name} ({image.id[:19]}, {human_size(image.size)}) in "
          f"{time.monotonic() - started:.2f}s", file=out)
    print(f"digest: {image.digest}", file=out)
    return 0


def _guarded(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except (ImageError, ValueError, OSError) as exc:
            text = exc.message if isinstance(exc, ImageError) else str(exc)
            print(f"pyk8s image {args.image_command}: {text}", file=sys.stderr)
            return 1
    return run


def add_parsers(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``image`` with its subcommands to the ``pyk8s`` command."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--root", default=DEFAULT_ROOT,
                        help=f"image store directory (default {DEFAULT_ROOT})")
    common.add_argument("--registry-config", default="",
                        help="YAML file with registry mirrors, insecure registries and "
                             "credentials")
    image = subparsers.add_parser("image", help="manage the node's container images")
    sub = image.add_subparsers(dest="image_command", required=True)

    p = sub.add_parser("ls", parents=[common], help="list images")
    p.add_argument("-q", "--quiet", action="store_true", help="only image IDs")
    p.add_argument("--digests", action="store_true", help="show repo digests")
    p.set_defaults(func=_guarded(cmd_ls))

    p = sub.add_parser("import", parents=[common],
                       help="import a docker-archive or OCI layout tarball")
    p.add_argument("file")
    p.add_argument("--base-name", default="",
                   help="repository for OCI layouts whose ref names are bare tags")
    p.set_defaults(func=_guarded(cmd_import))

    p = sub.add_parser("rm", parents=[common], help="remove images (and free their blobs)")
    p.add_argument("image", nargs="+")
    p.set_defaults(func=_guarded(cmd_rm))

    p = sub.add_parser("pull", parents=[common], help="pull an image from its registry")
    p.add_argument("image")
    p.add_argument("--insecure", action="store_true",
                   help="plain HTTP to the registry (loopback registries always are)")
    p.set_defaults(func=_guarded(cmd_pull))

    p = sub.add_parser("prune", parents=[common],
                       help="delete blobs and layers no image references")
    p.set_defaults(func=_guarded(cmd_prune))


def main(argv: list[str] | None = None) -> int:
    """``python -m pyk8s.runtime.images.cli image ...``: the same commands without the rest
    of ``pyk8s`` (until ``cli/main.py`` wires :func:`add_parsers`)."""
    parser = argparse.ArgumentParser(prog="pyk8s")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
