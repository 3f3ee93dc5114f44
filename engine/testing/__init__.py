"""Testing processes with pytest: virtual time and BPMN-aware assertions (public API)."""

from engine.testing.clock import ManualClock

__all__ = ["ManualClock"]
