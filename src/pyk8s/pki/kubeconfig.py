"""kubeconfig files: what kubectl and the client libraries read to find and trust a cluster."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import yaml

from pyk8s.pki.keypair import KeyPair


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def render(server: str, ca_pem: bytes, client: KeyPair, *, cluster: str = "pyk8s",
           user: str = "admin") -> str:
    context = f"{user}@{cluster}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": cluster,
            "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)},
        }],
        "users": [{
            "name": user,
            "user": {
                "client-certificate-data": _b64(client.cert_pem),
                "client-key-data": _b64(client.key_pem),
            },
        }],
        "contexts": [{"name": context, "context": {"cluster": cluster, "user": user}}],
        "current-context": context,
        "preferences": {},
    }
    return yaml.safe_dump(config, sort_keys=False)


def write(path: Path, text: str) -> None:
    """Written 0600: it holds a private key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)
