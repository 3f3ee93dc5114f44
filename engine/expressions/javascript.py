"""JavaScript scripts of BPMN files, run in a QuickJS sandbox.

Camunda 7 models carry JavaScript (``scriptFormat="javascript"``) in script tasks and in
``camunda:script`` values of input/output parameters. Each evaluation gets a fresh QuickJS
context with a memory, time and stack limit; QuickJS without its ``std``/``os`` modules has no
file, network, process or clock access, so a script can only compute on the values it is given.

The script sees Camunda's ``execution`` object (variables, business key, instance and activity
id) and every process variable as a global (a copy: assigning it changes nothing, as with
Camunda's default ``autoStoreScriptVariables=false``). Values cross the boundary as JSON; the
script's value is the value of its last expression statement (``undefined`` is null).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import quickjs

from engine.core.errors import ExpressionError

#: scriptFormat values (lower case) that mean JavaScript: Camunda 7 resolves the format by
#: JSR-223 engine name, and these are the names of Nashorn and GraalJS.
FORMATS = frozenset({"javascript", "js", "ecmascript", "nashorn", "graal.js"})
#: Memory one evaluation may allocate (QuickJS heap, variables included), in bytes.
MEMORY_LIMIT = 32 * 1024 * 1024
#: CPU seconds one evaluation may run. QuickJS measures with clock(), the CPU time of the whole
#: process, so on a busy multi-threaded node a script gets at most this, possibly less.
TIME_LIMIT = 1.0
#: Stack one evaluation may use, in bytes (deep recursion stops with an error, not a crash).
STACK_LIMIT = 256 * 1024

#: A frame of the user's top-level code (runner frames are named functions).
_LINE = re.compile(r"at (?:<eval> \()?<input>:(\d+)")

# Runs the user's source (indirect eval: global code, sloppy mode, as Camunda's engines) after
# defining `execution` and the variable globals; returns JSON {"value", "writes"}. Everything
# the runner needs is captured before user code runs, so a script that replaces JSON or Object
# only spoils its own result, which is checked again in Python.
_RUNNER = r"""
(function () {
  "use strict";
  const parse = JSON.parse, stringify = JSON.stringify, keys = Object.keys;
  const getProto = Object.getPrototypeOf, objectProto = Object.prototype;
  const isArray = Array.isArray, isFinite = Number.isFinite;
  const own = Function.prototype.call.bind(Object.prototype.hasOwnProperty);
  const input = parse(globalThis.__spillway_input);
  const source = globalThis.__spillway_source;
  delete globalThis.__spillway_input;
  delete globalThis.__spillway_source;
  const vars = input.variables;
  const info = input.execution;
  const writes = [];

  // Why `value` cannot cross as JSON ("is a function"), with the path inside it, or null.
  function problem(value, path, seen) {
    if (value === null) return null;
    const type = typeof value;
    if (type === "string" || type === "boolean") return null;
    if (type === "number") {
      return isFinite(value) ? null : [path, "is " + value + ", which JSON cannot hold"];
    }
    if (type !== "object") return [path, type === "undefined" ? "is undefined" : "is a " + type];
    if (seen.indexOf(value) >= 0) return [path, "refers to itself"];
    seen.push(value);
    if (isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        const found = problem(value[i], path + "[" + i + "]", seen);
        if (found) return found;
      }
    } else {
      const proto = getProto(value);
      if (proto !== objectProto && proto !== null) {
        const name = proto && proto.constructor && proto.constructor.name;
        return [path, "is a " + (name || "non-plain") + " object (only JSON values cross)"];
      }
      for (const key of keys(value)) {
        const found = problem(value[key], path + "." + key, seen);
        if (found) return found;
      }
    }
    seen.pop();
    return null;
  }
  function copy(value) { return parse(stringify(value)); }
  function check(value, label, root) {
    const found = problem(value, root, []);
    if (found) {
      const at = found[0] === root ? "" : " (at " + found[0] + ")";
      throw new TypeError(label + at + " " + found[1]);
    }
  }

  const execution = Object.freeze({
    getVariable(name) { name = String(name); return own(vars, name) ? copy(vars[name]) : null; },
    hasVariable(name) { return own(vars, String(name)); },
    getVariables() { return copy(vars); },
    setVariable(name, value) {
      name = String(name);
      check(value, "variable '" + name + "'", name);
      const stored = copy(value);
      vars[name] = stored;
      writes.push([name, stored]);
    },
    getBusinessKey() { return info.businessKey; },
    getProcessBusinessKey() { return info.businessKey; },
    getProcessInstanceId() { return info.processInstanceId; },
    getActivityId() { return info.activityId; },
    getCurrentActivityId() { return info.activityId; },
  });
  Object.defineProperty(globalThis, "execution", { value: execution });
  for (const name of keys(vars)) {
    if (!(name in globalThis)) globalThis[name] = copy(vars[name]);
  }

  let value = (0, eval)(source);
  if (value === undefined || !input.wantValue) value = null;
  check(value, "the script's value", "value");
  return stringify({ value: value, writes: writes });
})()
"""


@dataclass(frozen=True)
class Execution:
    """What the script's ``execution`` object tells about where it runs (None: null)."""

    process_instance_id: str | None = None
    business_key: str | None = None
    activity_id: str | None = None


@dataclass
class Outcome:
    """The script's value (None unless asked for) and its ``execution.setVariable`` calls in
    order (a later call of one name wins)."""

    value: Any = None
    writes: dict[str, Any] = field(default_factory=dict)


def is_javascript(script_format: str | None) -> bool:
    return (script_format or "").strip().lower() in FORMATS


def run(
    source: str,
    variables: Mapping[str, Any],
    execution: Execution,
    *,
    where: str,
    want_value: bool = True,
) -> Outcome:
    """Run ``source`` over ``variables``; ``where`` (such as "element 'Check'") starts every
    error message. Any failure of the script is an ``ExpressionError``."""
    payload = json.dumps(
        {
            "variables": _json_variables(variables, where),
            "execution": {
                "processInstanceId": execution.process_instance_id,
                "businessKey": execution.business_key,
                "activityId": execution.activity_id,
            },
            "wantValue": want_value,
        },
        allow_nan=False,
    )
    context = quickjs.Context()
    context.set_memory_limit(MEMORY_LIMIT)
    context.set_time_limit(TIME_LIMIT)
    context.set_max_stack_size(STACK_LIMIT)
    try:
        context.set("__spillway_input", payload)
        context.set("__spillway_source", source)
        result = context.eval(_RUNNER)
    except quickjs.JSException as exc:
        raise ExpressionError(f"{where}: JavaScript failed: {_describe(exc)}") from exc
    except MemoryError as exc:  # the variables alone do not fit into the memory limit
        raise ExpressionError(f"{where}: JavaScript failed: {_describe(exc)}") from exc
    if not isinstance(result, str):
        raise ExpressionError(f"{where}: JavaScript failed: the script broke the engine's runner")
    data = json.loads(result)
    return Outcome(value=data["value"], writes=dict(data["writes"]))


def _json_variables(variables: Mapping[str, Any], where: str) -> dict[str, Any]:
    for name, value in variables.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ExpressionError(
                f"{where}: variable '{name}' cannot be passed to JavaScript: {exc}"
            ) from exc
    return dict(variables)


def _describe(exc: BaseException) -> str:
    """One line: the JavaScript error and the line of the script it was raised at."""
    text = str(exc)
    first = text.splitlines()[0] if text.strip() else type(exc).__name__
    if "interrupted" in first and first.startswith("InternalError"):
        return f"stopped after the time limit of {TIME_LIMIT:g} s of CPU time (an endless loop?)"
    if "out of memory" in first or isinstance(exc, MemoryError):
        return f"stopped at the memory limit of {MEMORY_LIMIT // (1024 * 1024)} MiB"
    if "stack overflow" in first:
        return "stack overflow (recursion too deep)"
    if first == "null":  # QuickJS throws null when it cannot even allocate the error
        return (
            f"the script threw null, or ran out of memory (limit {MEMORY_LIMIT // (1024 * 1024)} "
            "MiB)"
        )
    # The user's frames come before the runner's `eval (native)` frame.
    script_frames = text.split("eval (native)")[0] if "eval (native)" in text else ""
    line = _LINE.search(script_frames)
    return f"{first} (line {line.group(1)})" if line else first
