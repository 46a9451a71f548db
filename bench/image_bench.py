#!/usr/bin/env python3
"""Image pulls from a registry on loopback: throughput of the node's image store.

Prints one JSON object per line on stdout (progress on stderr). An image of ``--layers``
gzip-compressed layers of ``--mib`` MiB of incompressible data in all is served by the test
registry (``tests/registry.py``, in this process on 127.0.0.1) and pulled with
``ImageStore.pull`` into a fresh store ``--runs`` times: download, digest checks,
decompression and (as root) unpacking into overlayfs lower directories all count.

    .venv/bin/python bench/image_bench.py               # 64 MiB in 4 layers
    .venv/bin/python bench/image_bench.py --mib 256 --layers 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from pyk8s.runtime.images import ImageStore  # noqa: E402
from tests.make_test_image import busybox_layer, file, image, layer  # noqa: E402
from tests.registry import TestRegistry  # noqa: E402


def emit(**figures: Any) -> None:
    print(json.dumps(figures), flush=True)


def progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    per_layer = args.mib * 1024 * 1024 // args.layers
    progress(f"building {args.layers} layers of {per_layer >> 20} MiB")
    layers = [busybox_layer()] + [layer([file(f"data/blob{i}", os.urandom(per_layer))])
                                  for i in range(args.layers)]
    built = image(layers)
    compressed = sum(len(b) for b in built.blobs.values())
    tmp = Path(tempfile.mkdtemp(prefix="image-bench-"))
    seconds = []
    try:
        with TestRegistry() as registry:
            registry.push("bench/big", "v1", built)
            ref = f"{registry.host}/bench/big:v1"
            for run in range(args.runs):
                store = ImageStore(tmp / f"store{run}")
                t0 = time.monotonic()
                asyncio.run(store.pull(ref))
                seconds.append(time.monotonic() - t0)
                progress(f"run {run + 1}: {seconds[-1]:.2f}s")
                shutil.rmtree(tmp / f"store{run}", ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    best = min(seconds)
    emit(figure="image_pull_loopback", layers=len(layers),
         compressed_mib=round(compressed / 2**20, 1), unpacked=os.geteuid() == 0,
         seconds_best=round(best, 3), seconds_median=round(sorted(seconds)[len(seconds) // 2], 3),
         mib_per_second=round(compressed / 2**20 / best, 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
