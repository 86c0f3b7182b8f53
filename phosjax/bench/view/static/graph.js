// A graph model drawn left to right in layers: each node one column after its deepest input.

import { svg, showTooltip, hideTooltip, escapeHtml, formatCount } from "./plot.js";

const NODE = { w: 132, h: 44, gapX: 56, gapY: 16, pad: 16 };
const OP_CLASSES = { Input: "op-input", add: "op-merge", concat: "op-merge", mul: "op-merge" };

// {id: layer}: inputs at 0, every other node one past its deepest input.
export function layers(nodes) {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const depth = new Map();
  const visit = (id, seen = new Set()) => {
    if (depth.has(id)) return depth.get(id);
    if (seen.has(id)) return 0; // a cycle: should not happen in a graph model
    seen.add(id);
    const inputs = (byId.get(id)?.inputs || []).filter((i) => byId.has(i));
    const d = inputs.length ? 1 + Math.max(...inputs.map((i) => visit(i, seen))) : 0;
    depth.set(id, d);
    return d;
  };
  for (const n of nodes) visit(n.id);
  return depth;
}

export function drawGraph(el, graph) {
  el.innerHTML = "";
  const nodes = graph.nodes || [];
  const depth = layers(nodes);
  const columns = [];
  for (const n of nodes) (columns[depth.get(n.id)] ||= []).push(n);
  const pos = new Map();
  columns.forEach((column, c) => {
    if (c > 0) { // order by the mean row of the inputs, to cross fewer edges
      const rowOf = (n) => {
        const rows = (n.inputs || []).map((i) => pos.get(i)?.row).filter((r) => r !== undefined);
        return rows.length ? rows.reduce((a, b) => a + b, 0) / rows.length : 0;
      };
      column.sort((a, b) => rowOf(a) - rowOf(b));
    }
    column.forEach((n, row) => pos.set(n.id, { column: c, row }));
  });
  const tallest = Math.max(1, ...columns.map((c) => c.length));
  const width = NODE.pad * 2 + columns.length * NODE.w + (columns.length - 1) * NODE.gapX;
  const height = NODE.pad * 2 + tallest * NODE.h + (tallest - 1) * NODE.gapY;
  const root = svg("svg", { width, height, class: "graph-svg", viewBox: `0 0 ${width} ${height}` }, el);
  const marker = svg("marker", { id: "arrow", viewBox: "0 0 8 8", refX: 8, refY: 4, markerWidth: 7, markerHeight: 7, orient: "auto" }, svg("defs", {}, root));
  svg("path", { d: "M0,0L8,4L0,8Z", class: "arrow-head" }, marker);
  const xy = new Map();
  for (const [id, p] of pos) {
    const size = columns[p.column].length;
    const offset = ((tallest - size) * (NODE.h + NODE.gapY)) / 2;
    xy.set(id, { x: NODE.pad + p.column * (NODE.w + NODE.gapX), y: NODE.pad + offset + p.row * (NODE.h + NODE.gapY) });
  }
  const edges = graph.edges || [];
  for (const e of edges) {
    const a = xy.get(e.source), b = xy.get(e.target);
    if (!a || !b) continue;
    const x1 = a.x + NODE.w, y1 = a.y + NODE.h / 2, x2 = b.x, y2 = b.y + NODE.h / 2, mid = (x1 + x2) / 2;
    svg("path", { class: "edge", d: `M${x1},${y1}C${mid},${y1} ${mid},${y2} ${x2},${y2}`, "marker-end": "url(#arrow)" }, root);
  }
  const outputs = new Set(graph.outputs || []);
  for (const n of nodes) {
    const { x, y } = xy.get(n.id);
    const cls = outputs.has(n.id) ? "op-output" : OP_CLASSES[n.op] || "op-layer";
    const g = svg("g", { class: `node ${cls}`, transform: `translate(${x} ${y})` }, root);
    svg("rect", { width: NODE.w, height: NODE.h, rx: 7 }, g);
    const name = n.group ? `${n.group}/${n.name}` : n.name;
    svg("text", { class: "node-name", x: NODE.w / 2, y: 18, "text-anchor": "middle" }, g).textContent = clip(name, 18);
    const parts = Object.entries(n.parts || {});  // the arrays of a tuple (or dict) it returns
    const sub = [n.op, n.shape ? `(${n.shape.join("×")})` : "", ...parts.map(([, p]) => `(${p.shape.join("×")})`)].filter(Boolean).join(" ");
    svg("text", { class: "node-op", x: NODE.w / 2, y: 34, "text-anchor": "middle" }, g).textContent = clip(sub, 22);
    g.addEventListener("mousemove", (e) => showTooltip(e, [
      `<div class="tip-head">${escapeHtml(n.id)}</div>`,
      `<div>op <b>${escapeHtml(n.op)}</b></div>`,
      n.shape ? `<div>shape <b>(${escapeHtml(n.shape.join(", "))})</b> ${escapeHtml(n.dtype || "")}</div>` : "",
      ...parts.map(([key, p]) => `<div>shape ${escapeHtml(key)} <b>(${escapeHtml(p.shape.join(", "))})</b> ${escapeHtml(p.dtype)}</div>`),
      n.params !== null && n.params !== undefined ? `<div>params <b>${escapeHtml(formatCount(n.params))}</b></div>` : "",
      (n.inputs || []).length ? `<div>inputs <b>${escapeHtml(n.inputs.join(", "))}</b></div>` : "",
    ].join("")));
    g.addEventListener("mouseleave", hideTooltip);
  }
}

function clip(text, n) {
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}
