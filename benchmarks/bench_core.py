"""Engine core throughput, each figure beside plain SpiffWorkflow in memory in the same run.

    python benchmarks/bench_core.py [--instances 2000] [--long 200] [--pg URL] [--blocks]
                                    [--rounds 3]

1. A one-service-task process, start to completed, persisted (SQLite file; PostgreSQL with
   --pg): instances/s and p50/p99 latency of ``start()``. Baseline: the same BPMN run by
   SpiffWorkflow alone in memory (parse once, instantiate, run, complete the task).
2. ``--long`` instances of a 50-sequential-service-task process: tasks/s, same baseline.
3. The cost of observability on (1), SQLite file: metrics off and tracing off, metrics on
   (the default), metrics on with OpenTelemetry's API installed but no provider set,
   interleaved in batches over ``--rounds`` rounds so machine load hits all alike; then the
   hooks' cost per call (with an SDK provider last).

In (1) and (2) the baseline and the engine take turns, one instance each (interleaved), so
that both see the same load of a shared machine; ``--blocks`` runs all baseline instances
first, then all of the engine's (the way of the figures before issue 18).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.parser.BpmnParser import BpmnParser
from SpiffWorkflow.util.task import TaskState

from engine import ProcessEngine
from engine.core import observe, tracing
from tests.bpmnbuild import process, service


def one_task() -> bytes:
    return process("one", service("Work", "work"))


def fifty_tasks() -> bytes:
    return process("fifty", *(service(f"T{i:02}", "work") for i in range(50)))


def spiff_instance(bpmn: bytes, key: str) -> Callable[[], None]:
    """One instance of the BPMN run by SpiffWorkflow alone, in memory, no persistence."""
    parser = BpmnParser()
    parser.add_bpmn_str(bpmn)
    spec, subs = parser.get_spec(key), parser.get_subprocess_specs(key)

    def run() -> None:
        wf = BpmnWorkflow(spec, subs)
        wf.do_engine_steps()
        while not wf.completed:
            for task in wf.get_tasks(state=TaskState.STARTED):
                task.data.update({"done": True})
                task.complete()
            wf.do_engine_steps()

    return run


def engine_instance(url: str, bpmn: bytes, key: str) -> tuple[ProcessEngine, Callable[[], None]]:
    """``start()`` of the BPMN on a fresh engine, persisted."""
    eng = ProcessEngine(url)
    eng.register_handler("work", lambda ctx: {"done": True})
    eng.deploy(bpmn)

    def run() -> None:
        assert eng.start(key).state == "completed"

    return eng, run


def timed(fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def side_by_side(
    base: Callable[[], None], engine: Callable[[], None], runs: int, blocks: bool
) -> tuple[list[float], list[float]]:
    """Seconds per instance of the baseline and of the engine, after 20 warm-up runs each:
    taking turns, or (``blocks``) all of the baseline's first."""
    for _ in range(min(20, runs)):  # warm the spec cache and the connection pool
        base()
        engine()
    if blocks:
        return [timed(base) for _ in range(runs)], [timed(engine) for _ in range(runs)]
    pairs = [(timed(base), timed(engine)) for _ in range(runs)]
    return [b for b, _ in pairs], [e for _, e in pairs]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(name: str, times: list[float], tasks_per_instance: int = 1) -> dict[str, float]:
    total = sum(times)
    row = {
        "inst_s": len(times) / total,
        "tasks_s": len(times) * tasks_per_instance / total,
        "p50_ms": statistics.median(times) * 1000,
        "p99_ms": pct(times, 0.99) * 1000,
    }
    print(
        f"  {name:<34} {row['inst_s']:>9.0f} inst/s {row['tasks_s']:>9.0f} tasks/s"
        f"   p50 {row['p50_ms']:6.2f} ms   p99 {row['p99_ms']:6.2f} ms"
    )
    return row


def fresh_pg(url: str) -> str:
    eng = ProcessEngine(url)
    with eng.store.transaction() as conn:
        conn.exec_driver_sql(
            "TRUNCATE sw_deployments, sw_resources, sw_definitions, sw_instances, sw_history, "
            "sw_subscriptions, sw_jobs, sw_incidents, sw_external_tasks, sw_outbox"
        )
    eng.close()
    return url


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--instances", type=int, default=2000)
    ap.add_argument("--long", type=int, default=200)
    ap.add_argument("--pg", default=os.environ.get("SPILLWAY_BENCH_PG"))
    ap.add_argument("--blocks", action="store_true", help="baseline first, not interleaved")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of (3), interleaved")
    args = ap.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        f", load average {os.getloadavg()[0]:.2f}"
    )
    tmp = Path(tempfile.mkdtemp())
    backends: list[tuple[str, Callable[[], str]]] = [
        ("SQLite file", lambda: f"sqlite:///{tmp / f'bench-{time.monotonic_ns()}.db'}")
    ]
    if args.pg:
        backends.append(("PostgreSQL", lambda: fresh_pg(args.pg)))

    how = "baseline first, then the engine" if args.blocks else "interleaved, one each in turn"
    print(f"\n1. one service task, start to completed ({args.instances} instances, {how})")
    compare(backends, one_task(), "one", args.instances, args.blocks, 1)
    print(f"\n2. 50 sequential service tasks ({args.long} instances, {how})")
    compare(backends, fifty_tasks(), "fifty", args.long, args.blocks, 50)
    print(
        f"\n3. observability on (1), SQLite file ({args.rounds} x {args.instances} instances each)"
    )
    observability_cost(backends[0][1], args.instances, args.rounds)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


def compare(
    backends: list[tuple[str, Callable[[], str]]],
    bpmn: bytes,
    key: str,
    runs: int,
    blocks: bool,
    tasks: int,
) -> None:
    for name, url in backends:
        eng, engine = engine_instance(url(), bpmn, key)
        base_times, engine_times = side_by_side(spiff_instance(bpmn, key), engine, runs, blocks)
        eng.close()
        base = report("SpiffWorkflow in memory (baseline)", base_times, tasks)
        row = report(f"Spillway, persisted, {name}", engine_times, tasks)
        print(
            f"  {'':<34} persisted/in-memory p50 ratio {row['p50_ms'] / base['p50_ms']:.2f}"
            f", p99/p50 {row['p99_ms'] / row['p50_ms']:.2f}"
        )


def observability_cost(url: Callable[[], str], runs: int, rounds: int) -> None:
    """Start latency with metrics and tracing off, metrics on, and both on: one engine per
    variant (each on its own SQLite file), batches of 50 starts interleaved round-robin so
    machine load hits every variant alike; then the hooks' own cost per call."""
    variants: dict[str, tuple[bool, bool]] = {
        "metrics off, tracing off": (False, False),
        "metrics on, tracing off": (True, False),
        "metrics on, OTel API (no provider)": (True, True),
    }
    available = tracing.ENABLED
    if not available:
        del variants["metrics on, OTel API (no provider)"]
    engines = {}
    for name, (metrics, _traced) in variants.items():
        eng = ProcessEngine(url(), metrics=metrics)
        eng.register_handler("work", lambda ctx: {"done": True})
        eng.deploy(one_task())
        for _ in range(50):
            eng.start("one")
        engines[name] = eng
    times: dict[str, list[float]] = {name: [] for name in variants}
    batch = 50
    try:
        for _ in range(max(1, rounds * runs // batch)):
            for name, (_metrics, traced) in variants.items():
                tracing.ENABLED = available and traced
                eng = engines[name]
                for _ in range(batch):
                    t0 = time.perf_counter()
                    eng.start("one")
                    times[name].append(time.perf_counter() - t0)
    finally:
        tracing.ENABLED = available
        for eng in engines.values():
            eng.close()
    rows = {name: report(name, t) for name, t in times.items()}
    base = rows["metrics off, tracing off"]
    for name, row in rows.items():
        print(
            f"  {name:<34} start p50 {row['p50_ms'] / base['p50_ms']:.3f}x "
            f"(+{(row['p50_ms'] - base['p50_ms']) * 1000:.0f} us) of metrics and tracing off"
        )
    hooks(available)


def hooks(available: bool) -> None:
    """What the hooks a start calls cost, per call, without the database around them."""
    eng = ProcessEngine("sqlite://")
    m = eng.metrics
    assert m is not None
    n = 20000

    def per_call(fn: Callable[[], object]) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t0) / n * 1e6

    def traced_step() -> None:
        with observe.step("spillway.start", process_key="one"):
            observe.annotate(instance_id="i")

    costs = {
        "Observer.instance_committed (metrics on)": per_call(
            lambda: m.instance_committed("one", True, "completed")
        )
    }
    tracing.ENABLED = False
    costs["observe.step + annotate, tracing off"] = per_call(traced_step)
    tracing.ENABLED = available
    if available:
        costs["observe.step + annotate, OTel API, no provider"] = per_call(traced_step)
        try:
            from opentelemetry import trace
            from opentelemetry.sdk.trace import TracerProvider
        except ImportError:
            pass
        else:  # last: a provider, once set, stays for the process
            trace.set_tracer_provider(TracerProvider())
            costs["observe.step + annotate, OTel SDK span"] = per_call(traced_step)
    eng.close()
    for name, us in costs.items():
        print(f"  {name:<48} {us:6.2f} us per call")


if __name__ == "__main__":
    main()
