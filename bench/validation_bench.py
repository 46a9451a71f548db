#!/usr/bin/env python3
"""What decoding, defaulting and validation cost per write, in process (no server, no I/O).

Prints one JSON object per line (µs per operation, best of 3 runs):

* ``decode_us`` — decoding a body into its kind (:func:`pyk8s.apiserver.validation.decode_body`)
  with the compiled check (``compiled``), forced through the Python walk (``walk``), and, for
  comparison, pure-Python ``jsonschema`` on the same closed schema (``jsonschema``);
* ``create_path_us`` — decode + the registry's defaults and validation (what a create adds
  on top of storage), for a 0.1 KiB pod (the API bench's) and a 2 KiB Deployment;
* ``apply_patch_us`` — the strategic merge patch of a second ``kubectl apply`` with patch
  metadata from the definitions, plus decoding the result.

    .venv/bin/python bench/validation_bench.py
"""

# ruff: noqa: B023 - every closure is called within the loop iteration that defines it
from __future__ import annotations

import copy
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from pyk8s.apiserver import objects, validation  # noqa: E402
from pyk8s.apiserver.registry import strategy_for  # noqa: E402
from pyk8s.machinery import patch  # noqa: E402
from pyk8s.machinery.resources import CATALOGUE  # noqa: E402
from pyk8s.machinery.schema import decoder, definitions, fast, patchmeta  # noqa: E402

SMALL_POD: dict[str, Any] = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "bench-1", "namespace": "default", "labels": {"app": "bench"}},
    "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]},
}
DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "fe"}},
    "spec": {
        "replicas": 3, "selector": {"matchLabels": {"app": "web"}},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
        "template": {
            "metadata": {"labels": {"app": "web", "tier": "fe"}},
            "spec": {
                "containers": [{
                    "name": "main", "image": "nginx:1.27",
                    "ports": [{"containerPort": 80, "name": "http"}],
                    "env": [{"name": "A", "value": "1"},
                            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                    "resources": {"limits": {"cpu": "500m", "memory": "256Mi"},
                                  "requests": {"cpu": "100m", "memory": "128Mi"}},
                    "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"},
                                      "initialDelaySeconds": 5, "periodSeconds": 10},
                    "readinessProbe": {"httpGet": {"path": "/ready", "port": 80}},
                    "volumeMounts": [{"name": "data", "mountPath": "/data"},
                                     {"name": "cfg", "mountPath": "/etc/cfg", "readOnly": True}],
                }, {
                    "name": "sidecar", "image": "busybox:1.36",
                    "command": ["sh", "-c", "while true; do sleep 5; done"],
                    "resources": {"requests": {"cpu": "10m"}},
                }],
                "volumes": [{"name": "data", "emptyDir": {"sizeLimit": "1Gi"}},
                            {"name": "cfg", "configMap": {"name": "web-cfg"}}],
                "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                                 "effect": "NoExecute", "tolerationSeconds": 300}],
                "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                    "weight": 100, "podAffinityTerm": {
                        "labelSelector": {"matchLabels": {"app": "web"}},
                        "topologyKey": "kubernetes.io/hostname"}}]}},
            },
        },
    },
}


def per_op(fn: Callable[[Any], Any], make: Callable[[], Any], n: int) -> float:
    """Best of 3 runs, µs per call; inputs are prepared outside the clock."""
    best = float("inf")
    for _ in range(3):
        inputs = [make() for _ in range(n)]
        start = time.perf_counter()
        for item in inputs:
            fn(item)
        best = min(best, (time.perf_counter() - start) / n * 1e6)
    return round(best, 1)


def emit(figure: str, **values: Any) -> None:
    print(orjson.dumps({"figure": figure, "unit": "us", **values}).decode(), flush=True)


def main() -> None:
    defs = definitions.get()
    for label, body, plural in (("pod_0.1KiB", SMALL_POD, ("", "v1", "pods")),
                                ("deployment_2KiB", DEPLOYMENT, ("apps", "v1", "deployments"))):
        res = CATALOGUE.by_plural(*plural)
        assert res is not None
        root = defs.by_gvk(res.group, res.version, res.kind)
        assert root is not None
        raw = orjson.dumps(body)
        validation.decode_body(res, orjson.loads(raw), validation.FieldValidation("Strict", raw))
        walker = decoder.decoder_for(root)
        figures: dict[str, Any] = {"bytes": len(raw)}
        for mode in ("Strict", "Ignore"):
            figures[f"compiled_{mode.lower()}"] = per_op(
                lambda b, m=mode: validation.decode_body(res, b, validation.FieldValidation(m, raw)),
                lambda: orjson.loads(raw), 20000)
        figures["walk"] = per_op(lambda b: decoder.decode(walker, b), lambda: orjson.loads(raw), 5000)
        try:
            import jsonschema

            checker = jsonschema.Draft202012Validator(fast.json_schema(defs, root))
            figures["jsonschema"] = per_op(checker.is_valid, lambda: orjson.loads(raw), 200)
        except ImportError:
            figures["jsonschema"] = None
        emit("decode_us", object=label, **figures)

        strategy = strategy_for(res, None)  # type: ignore[arg-type]

        def create_path(b: dict[str, Any], res: Any = res, strategy: Any = strategy) -> None:
            b = validation.decode_body(res, b, validation.FieldValidation("Strict", raw))
            strategy.prepare_create(b)
            objects.metadata_causes(res, b)
            strategy.validate_create(b)

        emit("create_path_us", object=label,
             value=per_op(create_path, lambda: orjson.loads(raw), 10000))

    deployments = CATALOGUE.by_plural("apps", "v1", "deployments")
    assert deployments is not None
    schema = patchmeta.merge_schema("apps/v1", "Deployment")
    assert schema is not None
    live = copy.deepcopy(DEPLOYMENT)
    smp = {"spec": {"replicas": 4, "template": {"spec": {
        "$setElementOrder/containers": [{"name": "main"}, {"name": "sidecar"}],
        "containers": [{"name": "main", "image": "nginx:1.28"}]}}}}

    def apply(_: Any) -> None:
        result = patch.strategic_merge_patch(live, smp, schema)
        validation.decode_patched(deployments, result, smp, "application/strategic-merge-patch+json",
                                  validation.FieldValidation("Strict"))

    emit("apply_patch_us", object="deployment_2KiB", value=per_op(apply, lambda: None, 5000))


if __name__ == "__main__":
    main()
