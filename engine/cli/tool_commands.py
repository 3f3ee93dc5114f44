"""Sub-commands around the engine: ``conformance``, ``bridge``, ``demo``."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.bridge import cli as bridge_cli
from engine.cli.args import UsageError, positive_int
from engine.cli.output import progress
from engine.engine import ProcessEngine


def cmd_bridge(eng: ProcessEngine, args: argparse.Namespace) -> None:
    bridge_cli.run(eng, args)


def cmd_conformance(args: argparse.Namespace) -> None:
    from engine.cli import conformance

    folder = Path(args.dir)
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder")
    with progress("conformance") as bar:

        def step(total: int, name: str) -> None:
            bar.total(total)
            bar.advance(1, name)

        results = conformance.run(folder, step)
    if not results:
        raise UsageError(f"{folder} holds no .bpmn file (nor .bpmn20.xml)")
    print(conformance.render(results, args.format))


def cmd_demo(eng: ProcessEngine, args: argparse.Namespace) -> None:
    from engine.cli.demo import run_demo

    run_demo(eng, args)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "conformance",
        help="deploy and run every BPMN file of a folder (.bpmn, .bpmn20.xml); print a report",
    )
    p.add_argument("dir")
    p.add_argument("--format", choices=["text", "markdown"], default="text")
    p.set_defaults(standalone=cmd_conformance)

    p = sub.add_parser("bridge", help="publish external tasks to RabbitMQ, apply the results")
    bridge_cli.add_arguments(p)
    p.set_defaults(fn=cmd_bridge)

    p = sub.add_parser("demo", help="deploy the examples in processes/ and run them")
    p.add_argument("--orders", type=positive_int, default=8)
    p.set_defaults(fn=cmd_demo)
