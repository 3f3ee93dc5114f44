"""Coverage figures per process, the terminal summary and the HTML report.

A process's coverage counts its flow nodes and its sequence flows, as camunda-process-test-coverage
does: ``(nodes taken + flows taken) / (nodes + flows)``. The suite's total is the same ratio over
every process. The HTML report draws each diagram with the vendored bpmn-js viewer (copied next
to the report, so it opens from disk with no network), taken elements green, the others red.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from engine.testing.bpmn_graph import ProcessGraph, read_graphs
from engine.testing.coverage import CoverageData, ModelCoverage

#: The viewer files copied beside the report (engine/assets/bpmn-js, see its README).
VIEWER_FILES = (
    "bpmn-navigated-viewer.production.min.js",
    "diagram-js.css",
    "bpmn-js.css",
    "LICENSE",
)
#: How many never-taken ids the terminal lists per kind before "and N more".
MAX_LISTED = 12


@dataclass
class ProcessCoverage:
    """One process of one document, measured."""

    label: str  # the key, with the document when one key has several
    key: str
    name: str | None
    resource: str
    file_name: str  # of its HTML page
    instances: int
    nodes: list[str]  # every flow node, document order
    flows: list[str]  # every sequence flow, document order
    nodes_taken: set[str]
    flows_taken: set[str]
    graph: ProcessGraph
    xml: str

    @property
    def missed_nodes(self) -> list[str]:
        return [n for n in self.nodes if n not in self.nodes_taken]

    @property
    def missed_flows(self) -> list[str]:
        return [f for f in self.flows if f not in self.flows_taken]

    @property
    def taken(self) -> int:
        return len(self.nodes_taken) + len(self.flows_taken)

    @property
    def total(self) -> int:
        return len(self.nodes) + len(self.flows)

    @property
    def percent(self) -> float:
        return percent(self.taken, self.total)


def percent(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 100.0


def summarize(data: CoverageData) -> list[ProcessCoverage]:
    """Every process the data knows, sorted by key then document name."""
    by_key: dict[str, list[ModelCoverage]] = {}
    for model in data.models.values():
        by_key.setdefault(model.key, []).append(model)
    out: list[ProcessCoverage] = []
    for key in sorted(by_key):
        models = sorted(by_key[key], key=lambda m: (data.documents[m.digest][0], m.digest))
        for model in models:
            resource, xml = data.documents[model.digest]
            graph = read_graphs(xml.encode("utf-8"), resource).get(key)
            if graph is None:
                continue
            label, file_name = key, _file_name(key)
            if len(models) > 1:
                label = f"{key} ({resource}, {model.digest[:8]})"
                file_name = _file_name(f"{key}-{model.digest[:8]}")
            nodes = list(graph.nodes)
            flows = list(graph.flows)
            out.append(
                ProcessCoverage(
                    label=label,
                    key=key,
                    name=graph.name,
                    resource=resource,
                    file_name=file_name,
                    instances=model.instances,
                    nodes=nodes,
                    flows=flows,
                    nodes_taken={n for n in model.nodes if n in graph.nodes},
                    flows_taken=graph.flow_ids(model.edges),
                    graph=graph,
                    xml=xml,
                )
            )
    return out


def total_percent(processes: list[ProcessCoverage]) -> float:
    return percent(sum(p.taken for p in processes), sum(p.total for p in processes))


def _file_name(stem: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", stem) + ".html"


# -- terminal ---------------------------------------------------------------------------------


def terminal_lines(processes: list[ProcessCoverage], report: Path | None) -> list[str]:
    taken = sum(p.taken for p in processes)
    total = sum(p.total for p in processes)
    count = f"{len(processes)} process{'es' if len(processes) != 1 else ''}"
    lines = [
        f"{count}: {taken} of {total} flow nodes and sequence flows taken "
        f"({total_percent(processes):.1f}%)"
    ]
    for p in processes:
        nodes, flows = len(p.nodes_taken), len(p.flows_taken)
        lines.append(
            f"{p.label}: nodes {nodes}/{len(p.nodes)} ({percent(nodes, len(p.nodes)):.1f}%), "
            f"flows {flows}/{len(p.flows)} ({percent(flows, len(p.flows)):.1f}%), "
            f"{p.instances} instance{'s' if p.instances != 1 else ''}"
        )
        if p.missed_nodes:
            lines.append(f"  nodes never taken: {_listed(p.missed_nodes)}")
        if p.missed_flows:
            lines.append(f"  flows never taken: {_listed(p.missed_flows)}")
    if report is not None:
        lines.append(f"report: {report}")
    return lines


def _listed(ids: list[str]) -> str:
    shown = ", ".join(ids[:MAX_LISTED])
    return shown + (f" and {len(ids) - MAX_LISTED} more" if len(ids) > MAX_LISTED else "")


# -- HTML -------------------------------------------------------------------------------------


def write_html(processes: list[ProcessCoverage], directory: Path) -> Path:
    """One page per process plus ``index.html``, the viewer in ``assets/``; returns the index."""
    directory.mkdir(parents=True, exist_ok=True)
    assets = directory / "assets"
    assets.mkdir(exist_ok=True)
    viewer = resources.files("engine.assets").joinpath("bpmn-js")
    for name in VIEWER_FILES:
        with resources.as_file(viewer.joinpath(name)) as source:
            shutil.copyfile(source, assets / name)
    for p in processes:
        (directory / p.file_name).write_text(_page(p), encoding="utf-8")
    index = directory / "index.html"
    index.write_text(_index(processes), encoding="utf-8")
    return index


_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #222; }
header, section { padding: 8px 16px; }
h1 { font-size: 20px; margin: 4px 0; }
h2 { font-size: 16px; margin: 12px 0 4px; }
.figures span { margin-right: 16px; }
.legend i { display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px;
  vertical-align: -1px; border: 2px solid; }
.legend .t { background: #c8e6c9; border-color: #2e7d32; }
.legend .m { background: #ffcdd2; border-color: #c62828; }
#canvas { height: 560px; border-top: 1px solid #ddd; border-bottom: 1px solid #ddd; }
#canvas .note { padding: 16px; color: #666; }
.djs-shape.spillway-taken .djs-visual > :first-child {
  stroke: #2e7d32 !important; fill: #c8e6c9 !important; }
.djs-shape.spillway-missed .djs-visual > :first-child {
  stroke: #c62828 !important; fill: #ffcdd2 !important; }
.djs-connection.spillway-taken .djs-visual > path { stroke: #2e7d32 !important;
  stroke-width: 3px !important; }
.djs-connection.spillway-missed .djs-visual > path { stroke: #c62828 !important;
  stroke-dasharray: 6 4; }
table { border-collapse: collapse; }
td, th { padding: 2px 12px 2px 0; text-align: left; }
.bad { color: #c62828; } .ok { color: #2e7d32; }
"""

_SCRIPT = """
(async function () {
  const data = JSON.parse(document.getElementById('coverage').textContent);
  const canvasElement = document.getElementById('canvas');
  const viewer = new BpmnJS({ container: canvasElement });
  try {
    await viewer.importXML(data.xml);
  } catch (err) {
    const message = String(err.message || err);
    canvasElement.innerHTML = /no diagram to display/.test(message)
      ? '<p class="note">This document has no diagram (BPMNDI): see the lists below.</p>'
      : '<p class="note">The diagram cannot be drawn: ' + message.replace(/</g, '&lt;') + '</p>';
    return;
  }
  const canvas = viewer.get('canvas');
  const registry = viewer.get('elementRegistry');
  if (!registry.getAll().some(e => e.type !== 'bpmn:Process' && e.type !== 'label')) {
    canvasElement.innerHTML = '<p class="note">This document has no diagram (BPMNDI): ' +
      'see the lists below.</p>';
    return;
  }
  for (const [ids, marker] of [[data.taken, 'spillway-taken'], [data.missed, 'spillway-missed']]) {
    for (const id of ids) {
      if (registry.get(id)) { canvas.addMarker(id, marker); }
    }
  }
  canvas.zoom('fit-viewport');
  document.body.dataset.rendered = 'true';
})();
"""


def _page(p: ProcessCoverage) -> str:
    taken = sorted(p.nodes_taken | p.flows_taken)
    missed = p.missed_nodes + p.missed_flows
    payload = json.dumps({"xml": p.xml, "taken": taken, "missed": missed})
    payload = payload.replace("</", "<\\/")
    title = html.escape(p.label)
    name = f" &ndash; {html.escape(p.name)}" if p.name else ""
    nodes_rows = "".join(
        f"<tr><td><code>{html.escape(n)}</code></td><td>{html.escape(p.graph.nodes[n].type)}"
        f"</td><td>{html.escape(p.graph.nodes[n].name or '')}</td></tr>"
        for n in p.missed_nodes
    )
    flow_rows = "".join(
        f"<tr><td><code>{html.escape(f)}</code></td><td>{html.escape(p.graph.flows[f].source)}"
        f" &rarr; {html.escape(p.graph.flows[f].target)}</td></tr>"
        for f in p.missed_flows
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Coverage: {title}</title>
<link rel="stylesheet" href="assets/diagram-js.css">
<link rel="stylesheet" href="assets/bpmn-js.css">
<style>{_STYLE}</style></head>
<body>
<header>
<h1>{title}{name}</h1>
<div class="figures"><span>{html.escape(p.resource)}</span>
<span>{p.instances} instance{"s" if p.instances != 1 else ""}</span>
<span>flow nodes {len(p.nodes_taken)}/{len(p.nodes)}
({percent(len(p.nodes_taken), len(p.nodes)):.1f}%)</span>
<span>sequence flows {len(p.flows_taken)}/{len(p.flows)}
({percent(len(p.flows_taken), len(p.flows)):.1f}%)</span>
<span><b>total {p.percent:.1f}%</b></span></div>
<div class="legend"><i class="t"></i>taken <i class="m"></i>never taken
&nbsp; <a href="index.html">all processes</a></div>
</header>
<div id="canvas"></div>
<section>
<h2>Flow nodes never taken ({len(p.missed_nodes)})</h2>
<table>{nodes_rows or "<tr><td>none</td></tr>"}</table>
<h2>Sequence flows never taken ({len(p.missed_flows)})</h2>
<table>{flow_rows or "<tr><td>none</td></tr>"}</table>
</section>
<script type="application/json" id="coverage">{payload}</script>
<script src="assets/bpmn-navigated-viewer.production.min.js"></script>
<script>{_SCRIPT}</script>
</body></html>
"""


def _index(processes: list[ProcessCoverage]) -> str:
    rows = "".join(
        f'<tr><td><a href="{html.escape(p.file_name)}">{html.escape(p.label)}</a></td>'
        f"<td>{html.escape(p.resource)}</td><td>{p.instances}</td>"
        f"<td>{len(p.nodes_taken)}/{len(p.nodes)}</td><td>{len(p.flows_taken)}/{len(p.flows)}</td>"
        f'<td class="{"ok" if p.taken == p.total else "bad"}">{p.percent:.1f}%</td></tr>'
        for p in processes
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Spillway process coverage</title>
<style>{_STYLE}</style></head>
<body><header><h1>Process coverage: {total_percent(processes):.1f}%</h1></header>
<section><table>
<tr><th>process</th><th>file</th><th>instances</th><th>flow nodes</th><th>sequence flows</th>
<th>total</th></tr>{rows}</table></section></body></html>
"""
