"""Standard loops (``bpmn:standardLoopCharacteristics``) with an engine-wide iteration cap.

SpiffWorkflow runs a standard loop as BPMN 2.0 (10.2.8) says: the activity repeats while the
loop condition holds, tested before (``testBefore="true"``) or after each iteration, at most
``loopMaximum`` times. ``engine.deploy.rewrites`` gives a loop without condition or maximum
``loopMaximum="1"``, and the script engine evaluates the condition (JUEL or FEEL).

A condition that never turns false would spin forever inside one engine call. So every
``max_loop_iterations`` iterations (the ``ProcessEngine`` option, default
``DEFAULT_MAX_LOOP_ITERATIONS``) the loop stops before its next iteration: the run commits
the instance with an incident on the activity (``engine.runtime.run``), and retrying the
incident resumes the loop for as many iterations again.
"""

from __future__ import annotations

from typing import Any, Final

from SpiffWorkflow.bpmn.specs.defaults import StandardLoopTask as _SpiffStandardLoopTask

from engine.core.errors import EngineError

DEFAULT_MAX_LOOP_ITERATIONS: Final = 1000
#: internal_data key on a loop task the cap stopped: iterations done when it stopped.
CAPPED: Final = "spillway_loop_capped"
#: internal_data key: iterations the loop may reach before it stops next (after a resume).
LIMIT: Final = "spillway_loop_limit"


class LoopLimitReached(EngineError):
    """A standard loop reached the engine's iteration cap with its condition still true."""

    default_message = "loop iteration limit reached"


def _max_iterations(task: Any) -> int:
    value = getattr(task.workflow.script_engine, "max_loop_iterations", None)
    return int(value) if value is not None else DEFAULT_MAX_LOOP_ITERATIONS


class StandardLoopTask(_SpiffStandardLoopTask):  # type: ignore[misc]
    """SpiffWorkflow's standard loop, stopping at the iteration cap instead of spinning."""

    def create_child(self, my_task: Any) -> None:
        done = len(my_task.internal_data.get("merged", []))
        limit = my_task.internal_data.get(LIMIT, _max_iterations(my_task))
        if done >= limit:
            my_task.internal_data[CAPPED] = done  # stays STARTED; the run opens the incident
            return
        super().create_child(my_task)


def is_capped(task: Any) -> bool:
    """A loop task stopped by the cap, still waiting for its incident to be retried."""
    return isinstance(task.task_spec, StandardLoopTask) and CAPPED in task.internal_data


def limit_reached(task: Any) -> LoopLimitReached:
    done = task.internal_data[CAPPED]
    return LoopLimitReached(
        f"loop '{task.task_spec.bpmn_id}' stopped after {done} iterations with its loop "
        f"condition still true (max_loop_iterations is {_max_iterations(task)}); retry the "
        "incident to let it run as many iterations again"
    )


def resume(task: Any) -> None:
    """Continue a capped loop for another ``max_loop_iterations`` iterations."""
    done = task.internal_data.pop(CAPPED)
    task.internal_data[LIMIT] = done + _max_iterations(task)
    task.task_spec.create_child(task)


class _LoopingParserFactory:
    """Wraps one of the parser's node-parser classes (or factories) so the task parsers it
    creates build our ``StandardLoopTask``; other attributes (such as the DMN parser's
    ``get_decision_ref``) pass through."""

    def __init__(self, wrapped: Any) -> None:
        self.wrapped = wrapped

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        node_parser = self.wrapped(*args, **kwargs)
        if hasattr(node_parser, "STANDARD_LOOP_CLASS"):
            node_parser.STANDARD_LOOP_CLASS = StandardLoopTask
        return node_parser

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)


def looping(node_parser: Any) -> Any:
    """``node_parser`` (a class or factory from ``_get_parser_class``), building our loops."""
    return None if node_parser is None else _LoopingParserFactory(node_parser)
