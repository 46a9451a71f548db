"""The image store's errors: one tree, translated from aiohttp, OS and tar errors where
they enter (:mod:`.registry`, :mod:`.unpack`, :mod:`.archive`).

::

    RuntimeOperationError (pyk8s.runtime.interface; ``reason`` for the kubelet)
     └── ImageError                 reason "ImageError": a local problem (disk, bad tarball)
          ├── ImageNotFound          reason "ImageNotFound": not in the store (with
          │                          imagePullPolicy Never, the kubelet's ErrImageNeverPull)
          └── PullError              reason "ErrImagePull": what the registry (or the network)
               │                     said, worded as containerd words it, for the Event
               └── RegistryError     one registry endpoint's failure (the pull may go on to
                                     the next mirror)

``ErrImagePull``/``ImagePullBackOff`` are the kubelet's business; a ``PullError``'s message is
what it should put after ``Failed to pull image "x": ``.
"""

from __future__ import annotations

from pyk8s.runtime.interface import RuntimeOperationError


class ImageError(RuntimeOperationError):
    def __init__(self, message: str, reason: str = "ImageError") -> None:
        super().__init__(reason, message)


class ImageNotFound(ImageError):
    def __init__(self, image: str) -> None:
        super().__init__(f"image {image!r} not found in the image store", "ImageNotFound")
        self.image = image


class PullError(ImageError):
    def __init__(self, message: str, *, not_found: bool = False) -> None:
        super().__init__(message, "ErrImagePull")
        self.not_found = not_found


class RegistryError(PullError):
    """``status`` is the HTTP status (0: no answer); ``code`` the registry's error code
    (``MANIFEST_UNKNOWN``, ``UNAUTHORIZED``, ...) when it gave one."""

    def __init__(self, message: str, *, status: int = 0, code: str = "",
                 not_found: bool = False) -> None:
        super().__init__(message, not_found=not_found)
        self.status = status
        self.code = code


def truncate(text: str, limit: int = 500) -> str:
    """Untrusted text (a registry's error body) cut to a size fit for an Event or a log."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."
