"""The example processes of this folder and their handlers, as an app for the command line:

    spillway --app processes:engine deploy processes/
    spillway --app processes:engine start order --var amount:=30 --var card=4111

``processes`` is a top-level folder of the checkout, importable from the checkout's root (the
CLI puts the working directory on ``sys.path`` for ``--app``). ``engine(url)`` returns an
engine on ``url`` (``--db`` / ``SPILLWAY_DB``; None: ``sqlite:///spillway.db``) with every
example's handlers registered; ``register(eng)`` registers them on an engine of your own.
"""

from __future__ import annotations

from engine import ProcessEngine
from processes import (
    example_process_handlers,
    invoice_handlers,
    onboarding_handlers,
    order_handlers,
    shipment_c8_handlers,
)

HANDLER_MODULES = (
    order_handlers,
    invoice_handlers,
    onboarding_handlers,
    example_process_handlers,
    shipment_c8_handlers,
)


def register(eng: ProcessEngine) -> None:
    """Register the handlers of every example process on ``eng``."""
    for module in HANDLER_MODULES:
        module.register(eng)


def engine(url: str | None = None) -> ProcessEngine:
    """An engine on ``url`` with the examples' handlers: ``--app processes:engine``."""
    eng = ProcessEngine(url)
    register(eng)
    return eng
