"""What ``pytest --spillway-coverage`` adds to a process test suite.

    python benchmarks/bench_coverage.py [--instances 500] [--rounds 3]

Baseline: starting the instances of ``processes/order.bpmn`` (small orders and declined cards,
each to completion) on an in-memory engine, as the tests of a suite would. Measured beside it in
the same run: reading that database for coverage the first time (every instance's stored task
tree deserialized and walked) and again with nothing changed (what each later teardown costs).
Medians over ``--rounds`` fresh engines.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import ProcessEngine
from engine.testing import ManualClock
from engine.testing.coverage import CoverageCollector
from processes import order_handlers

ROOT = Path(__file__).resolve().parent.parent


def one_round(instances: int) -> tuple[float, float, float]:
    with ProcessEngine("sqlite://", clock=ManualClock()) as eng:
        order_handlers.register(eng)
        eng.deploy(str(ROOT / "processes" / "order.bpmn"))
        t0 = time.perf_counter()
        for n in range(instances):
            eng.start("order", {"amount": 30, "card": "4111" if n % 2 else "4110"})
        t1 = time.perf_counter()
        collector = CoverageCollector()
        collector.collect(eng)
        t2 = time.perf_counter()
        collector.collect(eng)
        t3 = time.perf_counter()
        assert not collector.data.errors, collector.data.errors
        return t1 - t0, t2 - t1, t3 - t2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    runs = [one_round(args.instances) for _ in range(args.rounds)]
    starts, first, again = (statistics.median(r[i] for r in runs) for i in range(3))
    per = 1000 / args.instances
    print(f"{args.instances} instances of order.bpmn, median of {args.rounds} rounds")
    print("| run | total | per instance |\n|---|---:|---:|")
    print(f"| start to completed (baseline) | {starts:.3f} s | {starts * per:.2f} ms |")
    print(f"| coverage, first read | {first:.3f} s | {first * per:.2f} ms |")
    print(f"| coverage, read again unchanged | {again:.4f} s | {again * per:.3f} ms |")
    print(f"coverage / baseline: {first / starts:.1%}")


if __name__ == "__main__":
    main()
