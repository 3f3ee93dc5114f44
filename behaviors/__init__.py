"""What a service task does when the token reaches it.

Each behaviour is a small strategy over ``runtime.activation.Activation``: call the handler now,
defer to a job, or hand the work to an external worker. The engine picks one per task from its
BPMN attributes and the engine defaults (see ``engine.engine.ProcessEngine.behavior_for``).
"""

from behaviors.async_before import AsyncBeforeBehavior
from behaviors.async_on_error import AsyncOnErrorBehavior
from behaviors.external import ExternalBehavior
from behaviors.pooled import PooledBehavior
from behaviors.sync import SyncBehavior

__all__ = [
    "AsyncBeforeBehavior",
    "AsyncOnErrorBehavior",
    "ExternalBehavior",
    "PooledBehavior",
    "SyncBehavior",
]
