"""The controller manager and its controllers; the public surface is two names."""

from pyk8s.controllers.manager import ControllerManager, ControllerManagerSettings

__all__ = ["ControllerManager", "ControllerManagerSettings"]
