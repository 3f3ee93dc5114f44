"""Deploy time of a chain of sequential tasks: linear in the model's size (issue 19).

    python benchmarks/bench_deploy.py [--sizes 1000,2000,4000,10000] [--pg URL]

Each size is a process start -> N user tasks -> end (one file), deployed into a fresh in-memory
SQLite engine (``--pg`` a PostgreSQL database instead; the tables are truncated first); the time
covers reading the XML, the checks, normalisation, SpiffWorkflow's parse and the insert. A size
that fails prints the error. Reported: seconds per size and microseconds per task.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import ProcessEngine

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
TABLES = (
    "sw_deployments, sw_resources, sw_definitions, sw_instances, sw_history, "
    "sw_subscriptions, sw_jobs, sw_incidents, sw_external_tasks, sw_outbox"
)


def chain(tasks: int) -> bytes:
    ids = ["s", *(f"t{i}" for i in range(tasks)), "e"]
    nodes = ['<bpmn:startEvent id="s"/>']
    nodes += [f'<bpmn:userTask id="t{i}" name="Task {i}"/>' for i in range(tasks)]
    nodes.append('<bpmn:endEvent id="e"/>')
    flows = [
        f'<bpmn:sequenceFlow id="f{i}" sourceRef="{a}" targetRef="{b}"/>'
        for i, (a, b) in enumerate(itertools.pairwise(ids))
    ]
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<bpmn:definitions xmlns:bpmn="{BPMN}" id="d">'
        '<bpmn:process id="chain" isExecutable="true">'
        + "".join(nodes)
        + "".join(flows)
        + "</bpmn:process></bpmn:definitions>"
    ).encode()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,2000,4000,10000")
    ap.add_argument("--pg", default=None)
    args = ap.parse_args()
    print(f"{'tasks':>7} {'seconds':>8} {'us/task':>8}")
    for size in (int(s) for s in args.sizes.split(",")):
        eng = ProcessEngine(args.pg or "sqlite://")
        if args.pg:
            with eng.store.transaction() as conn:
                conn.exec_driver_sql(f"TRUNCATE {TABLES}")
        xml = chain(size)
        began = time.perf_counter()
        try:
            eng.deploy(xml)
        except Exception as exc:
            took = time.perf_counter() - began
            print(f"{size:>7} {took:>8.2f}   failed: {type(exc).__name__}: {str(exc)[:90]}")
        else:
            took = time.perf_counter() - began
            print(f"{size:>7} {took:>8.2f} {took / size * 1e6:>8.0f}")
        eng.close()


if __name__ == "__main__":
    main()
