"""``BridgeOptions``: the tuning knobs of a ``RabbitMQBridge``, shared by its publisher and
consumer."""

from __future__ import annotations

from dataclasses import dataclass

from engine.bridge.amqp import RECONNECT_INITIAL, RECONNECT_MAX
from engine.core.errors import EngineError
from engine.storage.outbox import DEFAULT_PUBLISH_LOCK


@dataclass(frozen=True)
class BridgeOptions:
    """Tuning knobs with their defaults; the topology and routes are constructor arguments."""

    batch_size: int = 100  # outbox rows (one per commit and topic) or re-sent tasks per batch
    prefetch: int = 200  # unacknowledged result messages one consumer holds
    consumer_threads: int = 1  # threads applying results (the engine retries conflicts)
    poll_interval: float = 1.0  # seconds between outbox polls when no wake-up came
    scan_interval: float = 5.0  # seconds between scans for expired locks and due retries
    confirm_timeout: float = 30.0  # seconds a batch may wait for confirms before reconnecting
    stop_grace: float = 5.0  # seconds stop() lets the batch in flight land
    reconnect_initial: float = RECONNECT_INITIAL
    reconnect_max: float = RECONNECT_MAX
    publish_lock: float = DEFAULT_PUBLISH_LOCK
    variables: tuple[str, ...] | None = None  # variables carried by task messages (None: all)

    def __post_init__(self) -> None:
        for name in ("batch_size", "prefetch", "consumer_threads"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise EngineError(f"bridge option {name} must be an int >= 1, got {value!r}")
        for name in (
            "poll_interval",
            "scan_interval",
            "confirm_timeout",
            "stop_grace",
            "reconnect_initial",
            "reconnect_max",
            "publish_lock",
        ):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value <= 0:
                raise EngineError(f"bridge option {name} must be seconds > 0, got {value!r}")
