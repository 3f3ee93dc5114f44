"""``RunView``: what every piece of a run (its activations, its ledger, its finish) reads of
the ``engine.runtime.run.Run`` it belongs to. Each piece extends it with the little more it
needs, so none of them imports ``Run``."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from engine.bpmn.task_tree import History
from engine.deploy.deployment import ProcessModel
from engine.storage.write import InstanceWrite


class RunView(Protocol):
    """The instance a run works on, its model, the moment, and what it gathers to write."""

    @property
    def model(self) -> ProcessModel: ...
    @property
    def instance_id(self) -> str: ...
    @property
    def business_key(self) -> str | None: ...
    @property
    def now(self) -> datetime:
        """The engine's time when the run began: every row of the run carries it."""
        ...

    @property
    def history(self) -> History: ...
    @property
    def write(self) -> InstanceWrite: ...
