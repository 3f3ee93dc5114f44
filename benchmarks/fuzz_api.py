"""The long run of the property tests (tests/test_properties.py): hostile calls and mutated
models against one engine, for as many examples as asked (issue 19, docs/security.md).

    python benchmarks/fuzz_api.py [--examples 2000] [--models 500] [--pg URL] [--seed N]

Property: every public call either succeeds or raises an EngineError, and a failed call leaves
every table as it was. The first counterexample is printed (shrunk) and the exit code is 1.
Reported: examples run per property and the time taken.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hypothesis import HealthCheck, given, seed, settings

from engine import ProcessEngine
from tests import hostile
from tests.bpmnbuild import process, user

EXAMPLE = Path(__file__).resolve().parent.parent / "processes" / "example_process.bpmn"
TABLES = (
    "sw_deployments, sw_resources, sw_definitions, sw_instances, sw_history, "
    "sw_subscriptions, sw_jobs, sw_incidents, sw_external_tasks, sw_outbox"
)


def fresh(url: str) -> tuple[ProcessEngine, hostile.Target]:
    eng = ProcessEngine(url, lazy_handlers=True)
    if eng.store.dialect == "postgresql":
        with eng.store.transaction() as conn:
            conn.exec_driver_sql(f"TRUNCATE {TABLES}")
    eng.deploy(process("p", user("U")))
    eng.deploy(EXAMPLE)
    inst = eng.start("p", business_key="bk")
    eng.start("ExampleProcess", variables={"files": ["a", "b", "c"]})
    task = eng.external_tasks.fetch_and_lock("copy-worker", topics=["copy"], max_tasks=1)[0]
    return eng, hostile.Target(instance=inst.id, task=task.id, job="0" * 32)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=2000)
    ap.add_argument("--models", type=int, default=500)
    ap.add_argument("--pg", default=None)
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    logging.getLogger("spillway").setLevel(logging.ERROR)  # expected failures log warnings
    url = args.pg or f"sqlite:///{tempfile.mkdtemp()}/fuzz.db"
    eng, target = fresh(url)
    common: dict[str, Any] = {
        "deadline": None,
        "database": None,
        "suppress_health_check": list(HealthCheck),
    }

    @settings(max_examples=args.examples, **common)
    @given(call=hostile.calls)
    def calls(call: tuple[Any, ...]) -> None:
        hostile.check_call(eng, lambda: hostile.invoke(eng, call, target))

    @settings(max_examples=args.models, **common)
    @given(mutation=hostile.mutations, business_key=hostile.names)
    def models(mutation: hostile.Mutation, business_key: Any) -> None:
        source = mutation.apply()
        deployed: list[Any] = []
        if hostile.check_call(eng, lambda: deployed.append(eng.deploy(source))):
            for key in deployed[0].process_keys:
                hostile.check_call(eng, lambda key=key: eng.start(key, business_key=business_key))

    failed = False
    for name, prop, count in (("calls", calls, args.examples), ("models", models, args.models)):
        if args.seed is not None:
            prop = seed(args.seed)(prop)
        began = time.perf_counter()
        try:
            prop()
            print(
                f"{name}: {count} examples, no counterexample, {time.perf_counter() - began:.1f} s"
            )
        except Exception as exc:
            failed = True
            print(f"{name}: counterexample after {time.perf_counter() - began:.1f} s:")
            traceback.print_exception(exc, limit=-6)
    eng.close()
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
