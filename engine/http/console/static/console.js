// The Spillway console's page script: plain ES module, no build step, no framework.
// - times: <time datetime="...Z"> shown in the browser's time zone;
// - diagrams: drawn by the vendored bpmn-js viewer (global BpmnJS), with markers on the
//   activities that hold tokens / incidents and count badges as overlays;
// - live updates: the page polls its own URL (header X-Console-Live, ETag) and swaps every
//   [data-live] region that changed, except one the user is editing;
// - small conveniences: confirmation of destructive forms, "select all" checkboxes.

const served = new Map(); // region id -> the HTML the server sent for it last
const viewers = new Map(); // diagram element id -> {viewer, markers}

function localTimes(root) {
  for (const el of root.querySelectorAll("time[datetime]")) {
    const iso = el.getAttribute("datetime");
    const at = new Date(iso);
    if (Number.isNaN(at.getTime())) continue;
    el.title = iso;
    el.textContent = at.toLocaleString();
  }
}

function badge(kind, count, activity) {
  const el = document.createElement("span");
  el.className = `sw-badge ${kind}`;
  el.textContent = String(count);
  el.title = kind === "waiting" ? `${count} waiting` : `${count} incident(s)`;
  el.dataset.activity = activity;
  return el;
}

function decorate(el) {
  const entry = viewers.get(el.id);
  if (!entry) return;
  const canvas = entry.viewer.get("canvas");
  const overlays = entry.viewer.get("overlays");
  const registry = entry.viewer.get("elementRegistry");
  for (const [id, cls] of entry.markers) canvas.removeMarker(id, cls);
  entry.markers = [];
  overlays.remove({ type: "sw-count" });
  const read = (name, fallback) => {
    try {
      return JSON.parse(el.dataset[name] || fallback);
    } catch {
      return JSON.parse(fallback);
    }
  };
  const mark = (id, cls) => {
    if (!registry.get(id)) return;
    canvas.addMarker(id, cls);
    entry.markers.push([id, cls]);
  };
  for (const id of read("active", "[]")) mark(id, "sw-active");
  for (const id of read("incidents", "[]")) mark(id, "sw-incident");
  for (const [id, c] of Object.entries(read("counts", "{}"))) {
    if (!registry.get(id)) continue;
    if (c.waiting) {
      overlays.add(id, "sw-count", {
        position: { bottom: 10, left: -10 },
        html: badge("waiting", c.waiting, id),
      });
    }
    if (c.incidents) {
      overlays.add(id, "sw-count", {
        position: { bottom: 10, right: 10 },
        html: badge("incident", c.incidents, id),
      });
    }
  }
  el.dataset.decorated = String(Number(el.dataset.decorated || "0") + 1);
}

async function drawDiagram(el) {
  if (typeof window.BpmnJS !== "function") {
    el.querySelector(".canvas").textContent = "The diagram viewer did not load.";
    return;
  }
  const viewer = new window.BpmnJS({ container: el.querySelector(".canvas") });
  try {
    const response = await fetch(el.dataset.xml, { credentials: "same-origin" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    await viewer.importXML(await response.text());
    viewer.get("canvas").zoom("fit-viewport", "auto");
  } catch (err) {
    el.querySelector(".canvas").textContent = `The diagram could not be drawn: ${err.message}`;
    el.dataset.error = String(err.message);
    return;
  }
  viewers.set(el.id, { viewer, markers: [] });
  decorate(el);
  el.dataset.ready = "1";
}

function busy(region) {
  const active = document.activeElement;
  if (active && region.contains(active) && active.matches("input, textarea, select")) return true;
  return region.querySelector("form[data-dirty]") !== null;
}

function wire(root) {
  localTimes(root);
  for (const form of root.querySelectorAll("form")) {
    form.addEventListener("input", () => (form.dataset.dirty = "1"));
    form.addEventListener("change", () => (form.dataset.dirty = "1"));
    if (form.dataset.confirm) {
      form.addEventListener("submit", (event) => {
        if (!window.confirm(form.dataset.confirm)) event.preventDefault();
      });
    }
  }
  for (const box of root.querySelectorAll("input[data-select-all]")) {
    box.addEventListener("change", () => {
      const group = box.closest(".group");
      for (const other of group.querySelectorAll('input[type="checkbox"][name="id"]')) {
        other.checked = box.checked;
      }
    });
  }
}

let etag = null;
let failures = 0;
let lastPollMs = 0; // how long the last poll took: a page slow to build is polled less often

async function poll() {
  const status = document.getElementById("live-status");
  const started = performance.now();
  try {
    const headers = { "X-Console-Live": "1" };
    if (etag) headers["If-None-Match"] = etag;
    const response = await fetch(location.href, {
      headers,
      credentials: "same-origin",
      cache: "no-store",
    });
    failures = 0;
    status?.classList.remove("off");
    if (response.status === 304 || !response.ok) return;
    etag = response.headers.get("etag");
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const region of fresh.querySelectorAll("[data-live]")) {
      const here = document.getElementById(region.id);
      if (!here || served.get(region.id) === region.innerHTML || busy(here)) continue;
      served.set(region.id, region.innerHTML);
      here.innerHTML = region.innerHTML;
      wire(here);
    }
    for (const diagram of fresh.querySelectorAll("[data-diagram]")) {
      const here = document.getElementById(diagram.id);
      if (!here) continue;
      let changed = false;
      for (const name of ["counts", "active", "incidents"]) {
        if (here.dataset[name] !== diagram.dataset[name]) {
          here.dataset[name] = diagram.dataset[name];
          changed = true;
        }
      }
      if (changed) decorate(here);
    }
    document.body.dataset.polls = String(Number(document.body.dataset.polls || "0") + 1);
  } catch {
    failures += 1;
    status?.classList.add("off");
  } finally {
    lastPollMs = performance.now() - started;
  }
}

function schedule() {
  const interval = Number(document.body.dataset.poll || "2000");
  const wait = Math.max(interval, 10 * lastPollMs) * Math.min(2 ** failures, 16);
  setTimeout(async () => {
    if (!document.hidden) await poll();
    schedule();
  }, wait);
}

for (const region of document.querySelectorAll("[data-live]")) {
  served.set(region.id, region.innerHTML);
}
wire(document);
for (const el of document.querySelectorAll("[data-diagram]")) drawDiagram(el);
schedule();
