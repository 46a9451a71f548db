"""The ``process`` runtime (no isolation): containers as supervised host processes."""

from pyk8s.runtime.process.runtime import ProcessRuntime

__all__ = ["ProcessRuntime"]
