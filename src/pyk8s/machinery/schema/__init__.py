"""Built-in types from the official Kubernetes 1.32 definitions (never hand-written).

* :mod:`.definitions` — loading the definitions shipped by ``kubernetes-validate`` (lazily,
  or in a background thread), back in OpenAPI's shape, found by group-version-kind;
* :mod:`.openapi` — the same as OpenAPI v3 ``components.schemas`` and v2 ``definitions``;
* :mod:`.decoder` — decoding objects as kube-apiserver's Go decoder does: pruning unknown
  fields, reporting unknown and duplicate fields, and failing on wrong types, bad quantities,
  times and bytes with upstream's messages; :mod:`.fast` puts a compiled ``jsonschema_rs``
  check in front so clean objects are not walked in Python;
* :mod:`.quantity` — resource quantities (parsing, canonical form);
* :mod:`.patchmeta` — strategic-merge-patch metadata (list merge keys and strategies).

Semantic validation (names, required values, ranges, immutability) is not here: it belongs to
the API server's registry strategies, which run after decoding, as upstream's do.
"""
