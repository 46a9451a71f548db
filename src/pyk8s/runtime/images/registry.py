"""The read side of the OCI distribution API, over aiohttp: manifests and blobs of one
repository at one endpoint, with bearer-token auth.

Auth follows the Docker token spec, as every registry client does: a request answered 401
with ``WWW-Authenticate: Bearer realm="...",service="...",scope="..."`` is retried with a
token fetched from the realm (anonymously, or with the host's credentials as HTTP basic);
``Basic`` challenges are answered with the credentials directly. Tokens are cached per
client (one pull) and scope.

This module is the boundary for aiohttp: its exceptions become :class:`RegistryError` with
a message naming the endpoint; registry error bodies (``{"errors": [{code, message}]}``)
are kept, truncated, because the user needs them in the pod's Event.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from pyk8s.runtime.images.config import Endpoint
from pyk8s.runtime.images.errors import RegistryError, truncate
from pyk8s.runtime.images.manifest import ACCEPT, digest_of

Progress = Callable[[str, int, int], None]
"""``progress(digest, bytes_done, bytes_total)``; called as bytes arrive."""

CHUNK = 256 * 1024
MAX_MANIFEST = 4 << 20
"""As containerd: a manifest or index larger than this is refused, not buffered."""
_CHALLENGE_PARAM = re.compile(r'(\w+)\s*=\s*"([^"]*)"')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="x",service="y"`` → ``("bearer", {"realm": "x", "service": "y"})``."""
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(_CHALLENGE_PARAM.findall(rest))


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def _registry_errors(body: bytes) -> tuple[str, str]:
    """(first code, "CODE: message; ...") from a distribution error body, else raw text."""
    try:
        doc = json.loads(body)
        errors = doc.get("errors") or []
        parts = [f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errors]
        if parts:
            return str(errors[0].get("code", "")), truncate("; ".join(parts))
    except (ValueError, AttributeError, TypeError):
        pass
    return "", truncate(body.decode("utf-8", "replace"))


@dataclass
class FetchedManifest:
    data: bytes
    media_type: str
    digest: str


class RegistryClient:
    """One repository (``library/busybox``) at one endpoint; lives for one pull."""

    def __init__(self, session: aiohttp.ClientSession, endpoint: Endpoint, repository: str,
                 credentials: tuple[str, str] | None = None) -> None:
        self.session = session
        self.endpoint = endpoint
        self.repository = repository
        self.credentials = credentials
        self._authorization: str | None = None

    def _url(self, kind: str, obj: str) -> str:
        return f"{self.endpoint.api}/{self.repository}/{kind}/{obj}"

    async def _token(self, params: dict[str, str]) -> str:
        realm = params.get("realm", "")
        if not realm.startswith(("http://", "https://")):
            raise RegistryError(f"{self.endpoint}: bad bearer realm {truncate(realm, 100)!r}")
        query = {k: v for k, v in params.items() if k in ("service", "scope")}
        query.setdefault("scope", f"repository:{self.repository}:pull")
        headers = {"Authorization": _basic(*self.credentials)} if self.credentials else {}
        async with self.session.get(realm, params=query, headers=headers) as resp:
            body = await resp.read()
            if resp.status != 200:
                _, text = _registry_errors(body)
                raise RegistryError(
                    f"failed to fetch anonymous token: unexpected status from GET request to "
                    f"{realm}: {resp.status} {resp.reason}" + (f": {text}" if text else ""),
                    status=resp.status)
        try:
            doc = json.loads(body)
            token = doc.get("token") or doc.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not token:
            raise RegistryError(f"{realm}: the token endpoint returned no token")
        return f"Bearer {token}"

    async def _get(self, url: str, headers: dict[str, str]) -> aiohttp.ClientResponse:
        """GET with auth; the caller reads and releases the response (status < 400)."""
        for attempt in range(2):
            hdrs = dict(headers)
            if self._authorization:
                hdrs["Authorization"] = self._authorization
            resp = await self.session.get(url, headers=hdrs)
            if resp.status == 401 and attempt == 0:
                challenge = resp.headers.get("WWW-Authenticate", "")
                resp.release()
                scheme, params = parse_challenge(challenge)
                if scheme == "bearer":
                    self._authorization = await self._token(params)
                    continue
                if scheme == "basic" and self.credentials:
                    self._authorization = _basic(*self.credentials)
                    continue
                raise RegistryError(f"{self.endpoint}: authorization required "
                                    f"({truncate(challenge, 200) or 'no challenge'})",
                                    status=401, code="UNAUTHORIZED")
            if resp.status >= 400:
                body = await resp.read()
                resp.release()
                raise self._http_error(url, resp, body)
            return resp
        raise AssertionError("unreachable")

    def _http_error(self, url: str, resp: aiohttp.ClientResponse, body: bytes
                    ) -> RegistryError:
        code, text = _registry_errors(body)
        if resp.status in (401, 403):
            return RegistryError(
                "pull access denied, repository does not exist or may require authorization: "
                + (text or f"{resp.status} {resp.reason}"), status=resp.status, code=code)
        return RegistryError(
            f"unexpected status from GET request to {url}: {resp.status} {resp.reason}"
            + (f": {text}" if text else ""),
            status=resp.status, code=code, not_found=resp.status == 404)

    async def get_manifest(self, obj: str) -> FetchedManifest:
        """The manifest or index named by tag or digest, its digest verified (against the
        digest asked for, else against ``Docker-Content-Digest`` when given)."""
        url = self._url("manifests", obj)
        try:
            resp = await self._get(url, {"Accept": ACCEPT})
            try:
                if (resp.content_length or 0) > MAX_MANIFEST:
                    raise RegistryError(f"{url}: manifest too large "
                                        f"({resp.content_length} bytes)")
                chunks: list[bytes] = []
                async for chunk in resp.content.iter_chunked(CHUNK):
                    chunks.append(chunk)
                    if sum(map(len, chunks)) > MAX_MANIFEST:
                        raise RegistryError(f"{url}: manifest too large")
                data = b"".join(chunks)
                media_type = resp.headers.get("Content-Type", "")
                header_digest = resp.headers.get("Docker-Content-Digest", "")
            finally:
                resp.release()
        except RegistryError as exc:
            if exc.status == 404:
                raise RegistryError(f"{self.endpoint.host}/{self.repository}:{obj}: not found"
                                    if ":" not in obj else
                                    f"{self.endpoint.host}/{self.repository}@{obj}: not found",
                                    status=404, code=exc.code, not_found=True) from None
            raise
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise _network_error(self.endpoint, url, exc) from None
        expected = obj if obj.startswith(("sha256:", "sha512:")) else header_digest
        algorithm = expected.split(":", 1)[0] if expected else "sha256"
        if algorithm not in ("sha256", "sha512"):
            algorithm, expected = "sha256", ""
        actual = digest_of(data, algorithm)
        if expected and actual != expected:
            raise RegistryError(f"{url}: manifest digest mismatch: expected {expected}, "
                                f"got {actual}")
        return FetchedManifest(data, media_type, actual if algorithm == "sha256"
                               else digest_of(data))

    async def fetch_blob(self, digest: str, size: int, dest: Path,
                         progress: Progress | None = None) -> None:
        """Stream the blob into ``dest`` (a temporary file), verifying size and digest."""
        url = self._url("blobs", digest)
        algorithm, _, want = digest.partition(":")
        hasher = hashlib.new(algorithm)
        done = 0
        try:
            resp = await self._get(url, {})
            try:
                total = size if size >= 0 else (resp.content_length or 0)
                with open(dest, "wb") as out:
                    async for chunk in resp.content.iter_chunked(CHUNK):
                        hasher.update(chunk)
                        out.write(chunk)
                        done += len(chunk)
                        if size >= 0 and done > size:
                            raise RegistryError(f"{url}: blob larger than its descriptor "
                                                f"({size} bytes)")
                        if progress:
                            progress(digest, done, total)
            finally:
                resp.release()
        except RegistryError as exc:
            if exc.status == 404:
                raise RegistryError(f"{self.endpoint.host}/{self.repository}@{digest}: "
                                    "blob not found", status=404, code=exc.code,
                                    not_found=True) from None
            raise
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise _network_error(self.endpoint, url, exc) from None
        if size >= 0 and done != size:
            raise RegistryError(f"{url}: short read: {done} of {size} bytes")
        if hasher.hexdigest() != want:
            raise RegistryError(f"{url}: digest mismatch: expected {digest}, got "
                                f"{algorithm}:{hasher.hexdigest()}")


def _network_error(endpoint: Endpoint, url: str, exc: BaseException) -> RegistryError:
    if isinstance(exc, TimeoutError):
        text = "timed out"
    else:
        text = truncate(str(exc) or type(exc).__name__, 300)
    return RegistryError(f"failed to do request: Get {url!r}: {text}")


def new_session(*, connect_timeout: float = 10.0, read_timeout: float = 60.0
                ) -> aiohttp.ClientSession:
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout,
                                    sock_read=read_timeout)
    return aiohttp.ClientSession(timeout=timeout, headers={"User-Agent": "pyk8s-images/0.1"})
