"""The queue engine: pure, deterministic, no I/O. See ``core.py`` for the theory of operation."""

from hall_controller.engine.core import Decision, Engine, Refusal
from hall_controller.engine.spec import CounterSpec, DispenserSpec, HallSpec, ServiceSpec

__all__ = ["CounterSpec", "Decision", "DispenserSpec", "Engine", "HallSpec", "Refusal", "ServiceSpec"]
