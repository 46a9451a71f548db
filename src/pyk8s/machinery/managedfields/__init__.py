"""Server-side apply: field ownership (``metadata.managedFields``) as upstream keeps it.

The public surface is :mod:`.updater` (:func:`~.updater.record_update`,
:func:`~.updater.apply`, :class:`~.updater.Conflicts`); the rest is its machinery, each a
Python counterpart of a piece of sigs.k8s.io/structured-merge-diff or of apimachinery's
``managedfields`` package:

* :mod:`.fieldpath` — paths and field sets in the ``FieldsV1`` spelling;
* :mod:`.typed` — atomic versus granular, read from the official definitions;
* :mod:`.values` — field sets of values, comparison, merge and removal by type;
* :mod:`.entries` — the managedFields entries (decode, encode, identity, the cap on Update
  managers).

Everything here is pure (no I/O, no clock: the time is a parameter); the API server decides
when to call it and turns a conflict into a 409.
"""
