"""Async on error: try synchronously, switch to a retried continuation job only on failure."""

from __future__ import annotations

from engine.runtime.activation import Activation


class AsyncOnErrorBehavior:
    """The caller gets an answer in milliseconds either way. On a technical failure what the
    attempt wrote is discarded, the task stays where it is, and a continuation job (or, once
    retries are spent or the error is non-retryable, an incident) is committed with the
    instance."""

    name = "async-on-error"

    def execute(self, act: Activation) -> None:
        failure = act.call()
        if failure is not None:
            act.schedule_retry(failure)
