"""Everything beyond plain CRUD: patches, scale, binding, eviction, namespace finalize,
request-only kinds (access reviews) and the streaming subresources.

Patches are applied inside the guaranteed-update loop, so a patch that loses a race is
re-applied to the newer object instead of failing, as upstream does.
"""

from __future__ import annotations

import copy
from typing import Any

from aiohttp import web

from pyk8s.apiserver import codec, fieldmanager, nodeproxy, objects, rest, validation
from pyk8s.apiserver.context import ApiContext
from pyk8s.apiserver.http import User, json_response, may_do_anything, success_status
from pyk8s.apiserver.objects import Obj
from pyk8s.machinery import errors, patch, selectors
from pyk8s.machinery.meta import now_rfc3339
from pyk8s.machinery.resources import Resource
from pyk8s.machinery.schema import patchmeta

STREAMING = frozenset({"log", "exec", "attach", "portforward", "proxy"})


def patch_failure(exc: patch.PatchError) -> errors.ApiError:
    """Upstream's Status for a failed patch, with the library's own words as a cause (where
    upstream puts them too). Upstream answers some strategic-merge failures with a 500; those
    are the client's fault, so they are 422 here."""
    code = 422 if exc.code >= 500 else exc.code
    reason = exc.reason or "Invalid"
    message = exc.status_message if exc.code < 500 else exc.message
    details = {"causes": [{"reason": "UnexpectedServerResponse", "message": exc.message}]}
    return errors.ApiError(code, reason, message, details=details)


def _merge_schema(res: Resource) -> patch.MergeSchema:
    return patchmeta.merge_schema(res.api_version, res.kind) or patch.EMPTY_SCHEMA


def apply_patch(res: Resource, current: Obj, patch_type: str, body: Any, *,
                in_place: bool = False) -> Obj:
    """The object ``body`` (of ``patch_type``) makes of ``current``, which is left alone
    unless ``in_place`` (a merge patch then changes it rather than a copy of it)."""
    try:
        if patch_type == codec.MERGE_PATCH:
            patch.validate_merge_patch(body)
            result = patch.json_merge_patch(current, body, in_place=in_place)
        elif patch_type == codec.JSON_PATCH:
            result = patch.json_patch(current, body)
        elif patch_type == codec.STRATEGIC_PATCH:
            if not patch.supports_strategic_merge(res.api_version, res.kind):
                raise errors.unsupported_media_type(
                    "application/json-patch+json, application/merge-patch+json, "
                    "application/apply-patch+yaml")
            result = patch.strategic_merge_patch(current, body, _merge_schema(res))
        else:
            # Server-side apply without a manager (internal callers; the API requires one):
            # the applied configuration as a strategic merge patch.
            if not isinstance(body, dict):
                raise errors.bad_request("an apply patch must be an object")
            body = {k: v for k, v in body.items() if k not in ("apiVersion", "kind")}
            result = patch.strategic_merge_patch(current, body, _merge_schema(res))
    except patch.PatchError as exc:
        raise patch_failure(exc) from None
    if not isinstance(result, dict):
        raise errors.ApiError(422, "Invalid", "the patch did not produce an object")
    return result


async def patch_object(
    ctx: ApiContext, res: Resource, namespace: str, name: str, sub: str, patch_type: str,
    body: Any, *, dry_run: bool, force: bool,
    field_validation: validation.FieldValidation | None = None,
    manager: str | None = None,
) -> tuple[Obj, bool]:
    """Patch an object. An apply (server-side apply, with ``manager``) is merged by field
    ownership (:mod:`pyk8s.apiserver.fieldmanager`) and creates a missing object; other
    patches record ``manager``'s Update."""
    config: Obj | None = None
    if patch_type == codec.APPLY_PATCH and sub in ("", "status"):
        if not isinstance(body, dict):
            raise errors.bad_request("an apply patch must be an object")
        meta = body.setdefault("metadata", {})
        if isinstance(meta, dict) and meta.get("name") not in (None, name):
            raise errors.bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})")
        if isinstance(meta, dict):
            meta["name"] = name
        decoded = validation.decode_body(res, body, field_validation)
        if manager is not None and isinstance(decoded, dict):
            config = decoded
        key = res.key(namespace, name)
        if not sub and await ctx.store.get(key) is None:
            managed = None
            if config is not None:
                decoded = fieldmanager.apply(res, None, copy.deepcopy(config), manager or "", force)
                managed = decoded["metadata"].pop("managedFields", None)
            try:
                obj = await rest.create(ctx, res, namespace, decoded, dry_run=dry_run,
                                        managed_fields=managed)
                return obj, True
            except errors.ApiError as err:
                if err.reason != "AlreadyExists":
                    raise
    if isinstance(body, dict) and isinstance(body.get("metadata"), dict):
        wanted = body["metadata"].get("resourceVersion")
    else:
        wanted = None

    # A status merge patch changes the status alone: it need not work on a private copy of
    # the object (see rest.guaranteed_update's ``copy``), the patched status being the only
    # part of ``patched`` the new object takes.
    shared = (sub == "status" and config is None and patch_type == codec.MERGE_PATCH
              and isinstance(body, dict))

    def mutate(obj: Obj, current: Obj) -> Obj:
        rest.check_precondition(res, name, wanted, current)
        if config is not None:
            patched = fieldmanager.apply(res, obj, config, manager or "", force, sub)
        elif shared:
            patched = patch.json_merge_patch_shared(current, body)
        else:
            patched = apply_patch(res, obj, patch_type, body, in_place=True)
        sent_managed = (patched.get("metadata") or {}).get("managedFields") \
            if isinstance(patched.get("metadata"), dict) else None
        patched["apiVersion"] = res.api_version
        patched["kind"] = res.kind
        patched = validation.decode_patched(res, patched, body, patch_type,
                                            None if config is not None else field_validation)
        meta = patched.get("metadata")
        if not isinstance(meta, dict):
            raise errors.ApiError(422, "Invalid", "metadata must be an object")
        if meta.get("name") != name:
            raise errors.invalid(res.group, res.kind, name, [(
                "metadata.name", "FieldValueInvalid", "Invalid value: field is immutable")])
        if res.namespaced and meta.get("namespace") != namespace:
            raise errors.invalid(res.group, res.kind, name, [(
                "metadata.namespace", "FieldValueInvalid", "Invalid value: field is immutable")])
        if sub == "status":
            # ``current`` is this attempt's private parse and is only read from here on, so
            # the new object shares its subtrees; metadata is copied, being written below.
            new = rest.merge_status(patched, {**current, "metadata": dict(current["metadata"])})
        else:
            new = rest.merge_update(ctx, res, name, patched, current)
        if config is not None:
            fieldmanager.keep(new, sent_managed)
        elif manager is not None:
            fieldmanager.stamp(res, sub, manager, current, new, sent_managed)
        return new

    obj = await rest.guaranteed_update(ctx, res, namespace, name, mutate, dry_run=dry_run,
                                       reallocate=not sub, copy=not shared)
    return obj, False


# -- scale -------------------------------------------------------------------------------

def scale_of(res: Resource, obj: Obj) -> Obj:
    meta = obj["metadata"]
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    selector = spec.get("selector")
    if isinstance(selector, dict):
        selector_text = selectors.label_selector_dict_to_string(selector)
    else:
        selector_text = ""
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                          "creationTimestamp") if k in meta},
        "spec": {"replicas": spec.get("replicas", 0)},
        "status": {"replicas": status.get("replicas", 0), "selector": selector_text},
    }


async def get_scale(ctx: ApiContext, res: Resource, namespace: str, name: str) -> Obj:
    return scale_of(res, await rest.get(ctx, res, namespace, name))


def _replicas_from(scale: Any, res: Resource, name: str) -> int:
    replicas = (scale.get("spec") or {}).get("replicas", 0) if isinstance(scale, dict) else None
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise errors.invalid("autoscaling", "Scale", name, [(
            "spec.replicas", "FieldValueInvalid",
            f"Invalid value: {replicas}: must be greater than or equal to 0")])
    return replicas


async def _write_scale(ctx: ApiContext, res: Resource, namespace: str, name: str,
                       make_scale: Any, dry_run: bool, manager: str | None = None) -> Obj:
    def mutate(obj: Obj, current: Obj) -> Obj:
        scale = make_scale(scale_of(res, current))
        wanted = (scale.get("metadata") or {}).get("resourceVersion") if isinstance(scale, dict) else None
        rest.check_precondition(res, name, wanted, current)
        replicas = _replicas_from(scale, res, name)
        new = obj
        new.setdefault("spec", {})["replicas"] = replicas
        new = rest.merge_update(ctx, res, name, new, current)
        if manager is not None:
            fieldmanager.stamp(res, "scale", manager, current, new, None)
        return new

    obj = await rest.guaranteed_update(ctx, res, namespace, name, mutate, dry_run=dry_run)
    return scale_of(res, obj)


async def update_scale(ctx: ApiContext, res: Resource, namespace: str, name: str, body: Any,
                       dry_run: bool, manager: str | None = None) -> Obj:
    if not isinstance(body, dict):
        raise errors.bad_request("the request body must be a Scale object")
    return await _write_scale(ctx, res, namespace, name, lambda _scale: body, dry_run, manager)


async def patch_resource(ctx: ApiContext, res: Resource, namespace: str, name: str, sub: str,
                         patch_type: str, body: Any, *, dry_run: bool, force: bool,
                         field_validation: validation.FieldValidation | None = None,
                         manager: str | None = None) -> tuple[Obj, bool]:
    if sub == "scale":
        def patched_scale(scale: Obj) -> Obj:
            try:
                if patch_type == codec.JSON_PATCH:
                    return patch.json_patch(scale, body)
                return patch.json_merge_patch(scale, body)
            except patch.PatchError as exc:
                raise patch_failure(exc) from None
        return await _write_scale(ctx, res, namespace, name, patched_scale, dry_run,
                                  manager), False
    return await patch_object(ctx, res, namespace, name, sub, patch_type, body,
                              dry_run=dry_run, force=force, field_validation=field_validation,
                              manager=manager)


# -- POST subresources ---------------------------------------------------------------------

async def post(request: web.Request, ctx: ApiContext, target: Any, body: Any,
               dry_run: bool) -> web.Response:
    res, ns, name, sub = target.resource, target.namespace or "", target.name, target.subresource
    if sub == "binding":
        await bind_pod(ctx, res, ns, name, body, dry_run)
        return json_response(success_status(201), status=201)
    if sub == "eviction":
        options = (body or {}).get("deleteOptions") or {} if isinstance(body, dict) else {}
        await rest.delete(ctx, res, ns, name, options, dry_run=dry_run)
        return json_response(success_status(201), status=201)
    raise errors.method_not_supported(res.group, f"{res.plural}/{sub}", "create")


async def bind_pod(ctx: ApiContext, res: Resource, namespace: str, name: str, body: Any,
                   dry_run: bool) -> Obj:
    if not isinstance(body, dict):
        raise errors.bad_request("the request body must be a Binding object")
    target = body.get("target") or {}
    node = target.get("name") if isinstance(target, dict) else None
    if not node:
        raise errors.invalid("", "Binding", name, [("target.name", "FieldValueRequired", "Required value")])
    if target.get("kind") not in (None, "", "Node"):
        raise errors.invalid("", "Binding", name, [("target.kind", "FieldValueNotSupported",
                                                     'Unsupported value: "{}": supported values: "Node"'.format(target.get("kind")))])

    def mutate(current: Obj, _current: Obj) -> Obj:
        # copy=False: the pod read is shared; the new one copies the spec and status it sets.
        meta = current["metadata"]
        spec = current.get("spec") or {}
        if meta.get("deletionTimestamp"):
            raise errors.conflict("", "pods/binding", name,
                                  f"pod {name} is being deleted, cannot be assigned to a host")
        if spec.get("nodeName"):
            raise errors.conflict("", "pods/binding", name,
                                  f'pod {name} is already assigned to node "{spec["nodeName"]}"')
        status = current.get("status") or {}
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conditions.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                           "lastTransitionTime": now_rfc3339()})
        return {**current, "spec": {**spec, "nodeName": node},
                "status": {**status, "conditions": conditions}}

    return await rest.guaranteed_update(ctx, res, namespace, name, mutate, dry_run=dry_run,
                                        copy=False)


async def finalize_namespace(ctx: ApiContext, res: Resource, name: str, body: Any,
                             dry_run: bool) -> Obj:
    if not isinstance(body, dict):
        raise errors.bad_request("the request body must be a Namespace object")
    finalizers = (body.get("spec") or {}).get("finalizers") or []

    def mutate(ns: Obj, _current: Obj) -> Obj:
        ns.setdefault("spec", {})["finalizers"] = list(finalizers)
        if not finalizers:
            ns["spec"].pop("finalizers")
        return ns

    return await rest.guaranteed_update(ctx, res, "", name, mutate, dry_run=dry_run)


async def virtual_create(request: web.Request, ctx: ApiContext, res: Resource, namespace: str,
                         body: Any) -> web.Response:
    """Kinds that exist only as a request: access reviews, and the bindings collection."""
    obj = objects.check_body(res, body, namespace)
    if res.kind == "Binding":
        name = obj["metadata"].get("name", "")
        pods = ctx.catalogue.by_plural("", "v1", "pods")
        assert pods is not None
        await bind_pod(ctx, pods, namespace, name, obj, False)
        return json_response(success_status(201), status=201)
    if res.kind == "SelfSubjectAccessReview":
        user: User = request["user"]
        spec = obj.get("spec")
        if not isinstance(spec, dict) or not (spec.get("resourceAttributes") or spec.get("nonResourceAttributes")):
            raise errors.invalid(res.group, res.kind, "", [(
                "spec.resourceAttributes", "FieldValueRequired",
                "Required value: exactly one of nonResourceAttributes or resourceAttributes must be specified")])
        allowed = may_do_anything(user)
        obj["status"] = {"allowed": allowed}
        if not allowed:
            obj["status"]["reason"] = "no RBAC policy matched"
        obj["metadata"].setdefault("creationTimestamp", None)
        return json_response(obj, status=201)
    raise errors.method_not_supported(res.group, res.plural, "create")


async def streaming(request: web.Request, ctx: ApiContext, target: Any) -> web.StreamResponse:
    """Subresources a node serves, proxied to its kubelet (:mod:`nodeproxy`): logs, exec,
    attach, port-forward and node proxy; pod and service proxies are not served yet, and
    the answer says so."""
    res, ns, name, sub = target.resource, target.namespace or "", target.name, target.subresource
    if not name:
        raise errors.method_not_supported(res.group, f"{res.plural}/{sub}", "get")
    if res.kind == "Pod" and sub == "log":
        if request.method != "GET":
            raise errors.method_not_supported(res.group, "pods/log", request.method.lower())
        return await nodeproxy.pod_logs(request, ctx, res, ns, name)
    if res.kind == "Pod" and sub == "exec":
        return await nodeproxy.pod_exec(request, ctx, res, ns, name)
    if res.kind == "Pod" and sub == "attach":
        return await nodeproxy.pod_attach(request, ctx, res, ns, name)
    if res.kind == "Pod" and sub == "portforward":
        return await nodeproxy.pod_portforward(request, ctx, res, ns, name)
    if res.kind == "Node" and sub == "proxy":
        return await nodeproxy.node_proxy(request, ctx, res, name)
    obj = await rest.get(ctx, res, ns, name)
    if res.kind == "Pod" and not (obj.get("spec") or {}).get("nodeName"):
        raise errors.bad_request(f"pod {name} does not have a host assigned")
    raise errors.ApiError(501, "NotImplemented",
                          f"{res.plural}/{sub} is not served by this cluster yet")
