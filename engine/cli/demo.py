"""``spillway demo``: deploy the examples in ``processes/`` and run them: the order process
through its paths (straight through, approval, declined card, a gateway timeout retried by a
job), an invoice approved and paid (user task, message correlation) and one rejected, and an
onboarding whose laptop order runs as an async-before job, and the seed's ExampleProcess: 50
parallel external "copy" tasks drained by a worker pool."""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path
from types import ModuleType

from engine.cli.output import progress, retry_line
from engine.core.errors import EngineError
from engine.engine import ProcessEngine

PROCESSES = Path(__file__).resolve().parents[2] / "processes"


def _load_handlers(folder: Path) -> list[ModuleType]:
    modules = []
    for path in sorted(folder.glob("*_handlers.py")):
        spec = importlib.util.spec_from_file_location(f"spillway_demo_{path.stem}", path)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        modules.append(module)
    return modules


def _why(amount: int, card: str, flaky: bool) -> str:
    """The input that decides the order's path, as order.bpmn and its handlers decide it."""
    reasons = []
    if amount > 1000:
        reasons.append(f"amount {amount} > 1000: needs approval")
    if card.endswith("0"):
        reasons.append(f"card {card} ends in 0: declined by the issuer")
    elif flaky:
        reasons.append(f"card {card}: the gateway times out once")
    return "; ".join(reasons) or "small order, good card"


def _path(eng: ProcessEngine, instance_id: str) -> str:
    """The activities passed, by BPMN id (as waiting_at and history name them); a failed
    attempt and its retry are shown as such."""
    steps: list[str] = []
    attempts: dict[str, int] = {}
    for h in eng.history(instance_id):
        if not h.outcome or h.activity_type.endswith("Event") or "Gateway" in h.activity_type:
            continue
        n = attempts[h.activity_id] = attempts.get(h.activity_id, 0) + 1
        label = h.activity_id if n == 1 else f"{h.activity_id} (retry {n - 1})"
        if h.outcome == "failed":
            label += f" failed: {(h.error or '').split(':')[0]}"
        elif h.outcome == "error":
            label += " raised a BPMN error"
        steps.append(label)
    return " > ".join(steps)


def run_demo(eng: ProcessEngine, args: argparse.Namespace) -> None:
    if not PROCESSES.is_dir():
        raise EngineError(f"the examples folder {PROCESSES} is missing (install from a checkout)")
    handlers = _load_handlers(PROCESSES)
    for module in handlers:
        module.register(eng)
    order = next(m for m in handlers if m.__name__.endswith("order_handlers"))
    dep = eng.deploy(PROCESSES)
    print(f"deployed {', '.join(f'{k} v{v}' for k, v in sorted(dep.versions.items()))}")

    started = []
    cards = ["4111", "4242", "4000", "4999"]
    with progress("orders", total=args.orders) as bar:
        for n in range(args.orders):
            amount = [30, 250, 1500, 75][n % 4]
            card = cards[n % len(cards)] + str(n)
            flaky = n % 4 == 3
            if flaky:
                order.flaky_charges.add(card)  # this charge times out once
            t0 = time.perf_counter()
            inst = eng.start("order", {"amount": amount, "card": card}, business_key=f"ORD-{n:03}")
            ms = (time.perf_counter() - t0) * 1000
            outcome = inst.state
            if inst.waiting_at:
                outcome += f", waiting at {', '.join(inst.waiting_at)}"
            why = _why(amount, card, flaky)
            print(f"  order {inst.business_key} ({why}) -> {outcome} ({ms:.1f} ms)")
            for job in eng.jobs(inst.id):
                if job.last_error:
                    print(f"    {retry_line(job)}")
            started.append(inst)
            bar.advance()

    for inst in started:
        if "ApproveOrder" in inst.waiting_at:
            done = eng.complete_task(inst.id, "ApproveOrder", {"approved_by": "demo"})
            print(f"  approve {inst.business_key} at ApproveOrder -> {done.state}")

    pending = eng.jobs()
    if pending:
        wait = max(0.0, max((j.due_at - eng.now()).total_seconds() for j in pending))
        print(f"  {len(pending)} charge(s) failed; their retry jobs are due in {wait:.1f}s")
        time.sleep(wait + 0.05)
        print(f"  ran {eng.run_jobs()} retry job(s)")

    _invoices_and_onboarding(eng)
    _copies(eng, handlers)

    rows = []
    for inst in started:
        fresh = eng.get_instance(inst.id)
        state = fresh.state
        if fresh.waiting_at:
            state += f" (waiting at {', '.join(fresh.waiting_at)})"
        rows.append((fresh.business_key or "", state, _path(eng, inst.id)))
    print()
    print(f"{'order':<8} {'state':<10} path (BPMN ids)")
    for key, state, steps_text in rows:
        print(f"{key:<8} {state:<10} {steps_text}")
    counts: dict[str, int] = {}
    for inst in started:
        state = eng.get_instance(inst.id).state
        counts[state] = counts.get(state, 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    tail = f"open jobs {len(eng.jobs())}, incidents {len(eng.incidents())}"
    print(f"\n{len(rows)} orders: {summary}; {tail}")
    print(f"database: {eng.store.url.render_as_string(hide_password=True)}")


def _invoices_and_onboarding(eng: ProcessEngine) -> None:
    lines = [{"qty": 2, "price": 19.5}, {"qty": 1, "price": 61.0}]
    for number, approved in (("INV-1", True), ("INV-2", False)):
        inst = eng.start("invoice", {"invoice_no": number, "lines": lines}, business_key=number)
        inst = eng.complete_task(inst.id, "ApproveInvoice", {"approved": approved})
        if approved:
            inst = eng.correlate_message(
                "PaymentConfirmed", {"paid_at": "2030-01-02"}, correlation={"invoice_no": number}
            )
        total = inst.variables["total"]
        print(f"  invoice {number} total={total} approved={approved} -> {inst.state}")

    inst = eng.start("onboarding", {"name": "Ada Lovelace", "manager": "grace"}, business_key="E1")
    print(
        f"  onboarding E1 -> waiting at {', '.join(inst.waiting_at)} "
        "(the laptop order is an async-before job)"
    )
    eng.run_jobs()
    inst = eng.complete_task(inst.id, "WelcomeCall")
    print(f"  onboarding E1 login={inst.variables['login']} -> {inst.state}")


def _copies(eng: ProcessEngine, handlers: list[ModuleType]) -> None:
    example = next(m for m in handlers if m.__name__.endswith("example_process_handlers"))
    t0 = time.perf_counter()
    inst = eng.start("ExampleProcess", {"files": example.files()}, business_key="COPY-1")
    waiting = len(eng.external_tasks.list(instance_id=inst.id))
    print(f"  ExampleProcess COPY-1 -> {waiting} external copy tasks; a worker pool takes them")
    with eng.worker_pool(example.TOPIC, acquire_wait=0.2) as _pool:
        deadline = time.monotonic() + 30
        while eng.get_instance(inst.id).state != "completed" and time.monotonic() < deadline:
            time.sleep(0.02)
    done = eng.get_instance(inst.id)
    ms = (time.perf_counter() - t0) * 1000
    print(
        f"  ExampleProcess COPY-1 {len(done.variables.get('copies', []))} copies -> {done.state}"
        f" ({ms:.0f} ms)"
    )
