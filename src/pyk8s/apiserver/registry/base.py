"""The strategy interface: what differs per kind on create, update and delete.

The generic REST code (:mod:`pyk8s.apiserver.rest`) does what every kind shares: metadata,
optimistic concurrency, status subresources, finalizers, watch. A strategy adds the few rules
a kind has of its own (a Service's cluster IP, a Secret's ``stringData``, a Pod's graceful
deletion), as upstream's ``registry/<kind>/strategy.go`` files do.

Validation hooks return a list of field causes ``(field, reason, message)``; an empty list
means valid. Expected outcomes are values, not exceptions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyk8s.machinery.resources import Resource

if TYPE_CHECKING:
    from pyk8s.apiserver.context import ApiContext

Cause = tuple[str, str, str]
Obj = dict[str, Any]


def required(field: str) -> Cause:
    return (field, "FieldValueRequired", "Required value")


def invalid_value(field: str, value: Any, why: str) -> Cause:
    shown = f'"{value}"' if isinstance(value, str) else repr(value)
    return (field, "FieldValueInvalid", f"Invalid value: {shown}: {why}")


def unsupported_value(field: str, value: Any, allowed: list[str]) -> Cause:
    options = ", ".join(f'"{a}"' for a in allowed)
    return (field, "FieldValueNotSupported", f'Unsupported value: "{value}": supported values: {options}')


def immutable(field: str) -> Cause:
    return (field, "FieldValueInvalid", "Invalid value: field is immutable")


class Strategy:
    """Default behaviour: a generic stored kind with no rules of its own."""

    def __init__(self, resource: Resource, ctx: ApiContext) -> None:
        self.resource = resource
        self.ctx = ctx

    # Kinds whose spec changes count as generation changes (upstream: most with a spec).
    tracks_generation = True
    # Kinds that reserve from shared pools (allocate/reallocate): their updates start from a
    # fresh store read, so a stale cached copy never makes a reservation that is then lost.
    allocates = False

    def prepare_create(self, obj: Obj) -> None:
        """Defaults and resets before a create is validated (status reset, defaults)."""
        if self.resource.has_status:
            obj.pop("status", None)

    def validate_create(self, obj: Obj) -> list[Cause]:
        return []

    def prepare_update(self, new: Obj, old: Obj) -> None:
        """Before an update of the main resource is validated."""

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        return self.validate_create(new)

    async def allocate(self, obj: Obj) -> None:
        """Reserve what the object needs from shared pools (cluster IPs, node ports).
        Raises ApiError; :meth:`release` undoes it if the write then fails."""

    async def reallocate(self, new: Obj, old: Obj) -> None:
        """The same on update, for fields that may change (a Service's type)."""

    def release(self, obj: Obj) -> None:
        """Give back what :meth:`allocate` reserved, after a failed write or a delete."""

    def grace_period(self, obj: Obj, requested: int | None) -> int:
        """Seconds a delete waits before the object goes (0: at once)."""
        return 0

    def on_deleting(self, obj: Obj) -> None:
        """Changes made to an object that enters graceful deletion (a namespace's phase)."""

    def deletion_finalized(self, obj: Obj) -> bool:
        """Whether an object marked for deletion may now be removed from the store."""
        meta = obj.get("metadata", {})
        return not meta.get("finalizers")
