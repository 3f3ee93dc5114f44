"""Parsing large models despite SpiffWorkflow's recursive parser (issue 19).

SpiffWorkflow's ``ProcessParser.parse_node`` follows each outgoing sequence flow by recursing into
its target, a few Python frames per flow node, so a chain of about 490 tasks exceeded Python's
default recursion limit (1,000). The parse therefore runs in a thread of its own whose stack is
large (``PARSE_STACK_BYTES``, reserved address space, committed only as used) with the
recursion limit raised to what the model's size needs (``FRAMES_PER_NODE`` per flow node) for the
duration. Models with more than ``MAX_FLOW_NODES`` flow nodes are refused before parsing: that is
the documented size limit (docs/security.md), below which no size-dependent recursion failure
occurs.
"""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: Most flow nodes (tasks, events, gateways, including subprocess contents) in one deployment.
MAX_FLOW_NODES = 20_000
#: Python frames SpiffWorkflow's parser uses per flow node of a chain (measured: 3; headroom).
FRAMES_PER_NODE = 6
#: Stack of the parsing thread: enough for MAX_FLOW_NODES * FRAMES_PER_NODE frames.
PARSE_STACK_BYTES = 512 * 1024 * 1024
#: Below this many flow nodes the parse runs in the calling thread, as it always did.
SMALL_MODEL = 150

_limit_lock = threading.Lock()
_inside = threading.local()
_raised = 0  # parses in flight that need the raised limit
_saved_limit = 0
_gc_paused = 0  # calls in flight that paused the collector
_gc_was_enabled = True


def run(fn: Callable[[], T], flow_nodes: int, *, pause_gc: bool = False) -> T:
    """``fn()`` with stack and recursion room for a model of ``flow_nodes`` flow nodes.

    ``pause_gc``: hold the cyclic garbage collector while it runs (a parse allocates hundreds
    of thousands of objects and no garbage cycles; the collector's full passes made deploying
    a 10,000-task model about 40% slower). Resumed when the last such call ends."""
    if flow_nodes < SMALL_MODEL or getattr(_inside, "deep", False):
        return fn()
    needed = 1_000 + flow_nodes * FRAMES_PER_NODE
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        _inside.deep = True
        try:
            result.append(fn())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            error.append(exc)

    _raise_limit(needed, pause_gc)
    try:
        with _limit_lock:
            previous = threading.stack_size(PARSE_STACK_BYTES)
            try:
                thread = threading.Thread(target=target, name="spillway-parse", daemon=True)
                thread.start()
            finally:
                threading.stack_size(previous)
        thread.join()
    finally:
        _restore_limit(pause_gc)
    if error:
        raise error[0]
    return result[0]


def _raise_limit(needed: int, pause_gc: bool) -> None:
    global _raised, _saved_limit, _gc_paused, _gc_was_enabled
    with _limit_lock:
        if _raised == 0:
            _saved_limit = sys.getrecursionlimit()
        _raised += 1
        if pause_gc:
            if _gc_paused == 0:
                _gc_was_enabled = gc.isenabled()
                gc.disable()
            _gc_paused += 1
        if sys.getrecursionlimit() < needed:
            sys.setrecursionlimit(needed)


def _restore_limit(pause_gc: bool) -> None:
    global _raised, _gc_paused
    with _limit_lock:
        if pause_gc:
            _gc_paused -= 1
            if _gc_paused == 0 and _gc_was_enabled:
                gc.enable()
        _raised -= 1
        if _raised == 0:
            sys.setrecursionlimit(_saved_limit)
