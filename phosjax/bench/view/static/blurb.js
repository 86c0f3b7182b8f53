// A model's blurb (`phosjax.core.blurb`, as JSON) as a collapsible tree of modules.

import { format, formatCount, formatSeconds, formatSetting, escapeHtml } from "./plot.js";

const COLUMNS = ["module", "type", "params", "output", "FLOPs", "latency"];

function shapeText(outputs) {
  const entries = Object.entries(outputs || {});
  if (!entries.length) return "";
  return entries.map(([key, spec]) => `${key ? key + " " : ""}(${spec.shape.join("×")}) ${spec.dtype}`).join(", ");
}

// A value as text: numbers (those of a list too) as `number` writes them, long arrays
// shortened, objects as JSON.
function value(v, number = format) {
  const each = (item) => value(item, number);
  if (Array.isArray(v)) return v.length > 8 ? `[${v.slice(0, 8).map(each).join(", ")}, …]` : `[${v.map(each).join(", ")}]`;
  if (v && typeof v === "object") return JSON.stringify(v);
  return number(v);
}

// A value as HTML (text such as a note's "x<y" is escaped, never parsed).
const shown = (v) => escapeHtml(value(v));

// A knob's value as HTML, its numbers (a list's too) as the table's knob column writes
// them (`formatSetting`).
const setting = (v) => escapeHtml(value(v, formatSetting));

function infoLines(module) {
  const lines = [];
  for (const [name, knob] of Object.entries(module.knobs || {})) {
    const doc = knob.doc ? ` <span class="muted">${escapeHtml(knob.doc)}</span>` : "";
    lines.push(`<span class="tag knob">knob</span> ${escapeHtml(name)} = <b>${setting(knob.value)}</b> <span class="muted">(default ${setting(knob.default)}${knob.valid ? `, range ${escapeHtml(knob.valid)}` : ""})</span>${doc}`);
  }
  for (const [kind, label] of [["aux_losses", "aux loss"], ["path_weights", "path weight"], ["notes", "note"]]) {
    for (const [name, v] of Object.entries(module[kind] || {})) {
      lines.push(`<span class="tag ${kind}">${label}</span> ${escapeHtml(name)} = <b>${shown(v)}</b>`);
    }
  }
  for (const [collection, vars] of Object.entries(module.variables || {})) {
    const text = Object.entries(vars).map(([name, spec]) => `${escapeHtml(name)} ${spec.shape.length ? `(${escapeHtml(spec.shape.join("×"))})` : "scalar"}`).join(", ");
    lines.push(`<span class="tag var">${escapeHtml(collection)}</span> ${text}`);
  }
  return lines;
}

function moduleNode(module, depth, opened) {
  const node = document.createElement("details");
  node.className = "module";
  node.dataset.path = module.path || "";
  const children = module.children || [];
  const lines = infoLines(module);
  if (!children.length && !lines.length) node.classList.add("leaf");
  node.open = opened.get(node.dataset.path) ?? depth < 2;
  const summary = document.createElement("summary");
  const name = module.path ? module.path.split("/").pop() : "(model)";
  const cells = [name, module.type || "", formatCount(module.params), shapeText(module.outputs),
    module.flops === null ? "–" : format(module.flops, 3),
    formatSeconds(module.latency_s)];
  cells.forEach((text, i) => {
    const span = document.createElement("span");
    span.className = `col col-${i}`;
    span.textContent = text;
    if (i === 0) { span.style.paddingLeft = `${depth * 18}px`; span.title = module.path || "(model)"; }
    summary.appendChild(span);
  });
  node.appendChild(summary);
  if (lines.length) {
    const info = document.createElement("div");
    info.className = "module-info";
    info.style.paddingLeft = `${depth * 18 + 26}px`;
    info.innerHTML = lines.map((l) => `<div>${l}</div>`).join("");
    node.appendChild(info);
  }
  for (const child of children) node.appendChild(moduleNode(child, depth + 1, opened));
  return node;
}

// Which modules of the blurb drawn in `el` are open, by path: `renderBlurb` of the same
// model again opens (and closes) them as they were.
export function openModules(el) {
  return new Map([...el.querySelectorAll("details.module")].map((d) => [d.dataset.path, d.open]));
}

// Draws `blurb` in `el`, each module open as `opened` says (`openModules`), else the
// first two levels.
export function renderBlurb(el, blurb, opened = new Map()) {
  el.innerHTML = "";
  const head = document.createElement("div");
  head.className = "blurb-head";
  for (const [i, label] of COLUMNS.entries()) {
    const span = document.createElement("span");
    span.className = `col col-${i}`;
    span.textContent = label;
    head.appendChild(span);
  }
  el.appendChild(head);
  el.appendChild(moduleNode(blurb.root, 0, opened));
  const foot = document.createElement("p");
  foot.className = "hint";
  foot.textContent = `measured on ${blurb.backend}; click a module to open or close it`;
  el.appendChild(foot);
}
