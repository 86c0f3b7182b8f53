// Small SVG charts for the bench viewer: line plots with bands, stacked bars, a tooltip.

const SVG = "http://www.w3.org/2000/svg";
const MARGIN = { left: 62, right: 28, top: 30, bottom: 42 }; // right: room for half the last x label

export function svg(tag, attrs = {}, parent = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

// A value as text: `digits` significant digits (whole below a million), below 1e-3 and
// from a million up in exponent form, three significant digits there up to `digits` 4,
// one more for each digit past it (the axes' labels: `tickLabels`); a list or an object (a
// setting of a plan's column added by hand) as JSON, not "[object Object]".
export function format(value, digits = 4) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "object") return JSON.stringify(value);
  if (typeof value !== "number") return String(value);
  if (!Number.isFinite(value)) return Number.isNaN(value) ? "NaN" : value > 0 ? "inf" : "-inf";
  if (Number.isInteger(value) && Math.abs(value) < 1e6) return String(value);
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e6)) return value.toExponential(Math.max(2, digits - 2));
  return Number(value.toPrecision(digits)).toString();
}

// A setting (a hyperparameter, a seed) as a person writes it in a config, the same in the
// table, the legends, the filters, the tooltips and the axis of the hyperparameter plot:
// to `digits` significant digits (ticks: `tickLabels`), below 1e-3
// and from a million up in exponent form unpadded (3e-4, 1e6, not 3.00e-4, 1.00e+6), a whole
// number those lose digits of whole (1234567; no thousands commas, which a width's list
// has: 32,64); text, booleans and none as `format` writes them.
export function formatSetting(value, digits = 6) {
  if (typeof value !== "number" || !Number.isFinite(value)) return format(value);
  const abs = Math.abs(value), rounded = Number(value.toPrecision(digits));
  if (Number.isInteger(value) && rounded !== value) return String(value);
  return abs !== 0 && (abs < 1e-3 || abs >= 1e6) ? rounded.toExponential().replace("e+", "e") : String(rounded);
}

// A count (a module's parameters, steps, cells) whole, its thousands separated, as the text blurb table
// writes it (`phosjax.core`'s `{:,}`): formatCount(1234567) is "1,234,567"; anything else
// as `format` writes it, to `digits` significant digits.
export function formatCount(value, digits = 4) {
  return Number.isInteger(value) ? value.toLocaleString("en-US") : format(value, digits);
}

// A table value: four significant digits, trailing zeros kept so that columns line up;
// from 10,000 up, whole (toPrecision writes 12345.6 as "1.235e+4"), as `format` does.
export function fixed(value) {
  if (typeof value !== "number" || !Number.isFinite(value) || Number.isInteger(value)) return format(value);
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e6)) return value.toExponential(2);
  return abs >= 1e4 ? String(Math.round(value)) : value.toPrecision(4);
}

// A duration as the text blurb table writes it (`phosjax.core`'s `_in_units`): three
// significant digits in µs, ms or s, the first where they are below 1000 (0.9996 ms reads
// 1 ms, not 1000 µs), else in s.
export function formatSeconds(value) {
  if (value === null || value === undefined) return "–";
  const units = [["µs", 1e-6], ["ms", 1e-3], ["s", 1]];
  const [unit, scale] = units.find(([, scale]) => Number((value / scale).toPrecision(3)) < 1000) ?? units.at(-1);
  return `${format(value / scale, 3)} ${unit}`;
}

export function formatBytes(value) {
  if (value === null || value === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(value) >= 1024 && i < units.length - 1) { value /= 1024; i++; }
  return `${format(value, 3)} ${units[i]}`;
}

// Tooltip shared by every chart: a fixed box that follows the mouse.
export function showTooltip(event, html) {
  const tip = document.getElementById("tooltip");
  tip.innerHTML = html;
  // Colours through the CSSOM: the page's CSP refuses inline style attributes.
  for (const swatch of tip.querySelectorAll("[data-color]")) swatch.style.background = swatch.dataset.color;
  tip.hidden = false;
  const pad = 14;
  const { innerWidth, innerHeight } = window;
  const box = tip.getBoundingClientRect();
  let x = event.clientX + pad, y = event.clientY + pad;
  if (x + box.width > innerWidth) x = event.clientX - box.width - pad;
  if (y + box.height > innerHeight) y = event.clientY - box.height - pad;
  tip.style.left = `${Math.max(0, x)}px`;
  tip.style.top = `${Math.max(0, y)}px`;
}

export function hideTooltip() {
  document.getElementById("tooltip").hidden = true;
}

// Empties a chart's box to draw it again (the page read the bench again): the tooltip its
// mouse showed goes too, since no mouse leaves a chart taken away, and its values are old.
function clear(el) {
  el.innerHTML = "";
  hideTooltip();
}

export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

// About `count` round tick values covering [lo, hi], at least two (one tick is no scale:
// a step rounded up past half the span left one, in a short plot asking for 3).
export function ticks(lo, hi, count = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw);
  const first = Math.ceil(lo / step) * step;
  const out = []; // first + k steps, not a running sum: a step below the rounding of lo ends too
  for (let k = 0; first + k * step <= hi + step * 1e-9; k++) out.push(Number((first + k * step).toPrecision(12)));
  return out.length >= 2 || count > 64 ? out : ticks(lo, hi, count * 2);
}

// Round tick values covering [lo, hi] on a log axis: 1, 2 and 5 times each power of ten
// within three decades; past that powers of ten, every k-th one where more than `count`
// would crowd the axis (learning rates from 0.01 to 1e30 labelled 0.001, 1e+5, ...); a
// range holding fewer than two of those (accuracies from 0.57 to 0.89), linear round ones.
export function logTicks(lo, hi, count = 5) {
  const first = Math.floor(Math.log10(lo)), last = Math.ceil(Math.log10(hi));
  const every = Math.max(1, Math.ceil((last - first) / count));
  const steps = last - first > 3 ? [1] : [1, 2, 5];
  const out = [];
  for (let e = Math.floor(first / every) * every; e <= last; e += every) {
    for (const m of steps) {
      const t = m * 10 ** e;
      if (t >= lo && t <= hi) out.push(t);
    }
  }
  return out.length >= 2 ? out : ticks(lo, hi, count);
}

// The labels of an axis's `values`, each `label(value, digits)` with as many significant
// digits as tell them apart (4 at least): accuracies from 0.99901 to 0.99909 read 0.999,
// 0.999, 0.9991, 0.9991 at 4.
export function tickLabels(values, label = format) {
  for (let digits = 4; digits < 16; digits++) {
    const labels = values.map((v) => label(v, digits));
    if (new Set(labels).size === labels.length) return labels;
  }
  return values.map((v) => label(v));
}

function extent(values, pad = 0) {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) if (v !== null && Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  if (lo === Infinity) return [0, 1];
  // Values equal but for rounding (a smoothed flat curve) are one value.
  if (hi - lo <= Math.abs(hi) * 1e-12) { lo -= Math.abs(lo) * 0.1 || 0.5; hi += Math.abs(hi) * 0.1 || 0.5; }
  const span = hi - lo;
  return [lo - span * pad, hi + span * pad];
}

// The extent of the positive values on a log axis, padded by `pad` of its span in decades.
function logExtent(values, pad = 0) {
  const [lo, hi] = extent(values.filter((v) => v > 0).map(Math.log10), pad);
  return [10 ** lo, 10 ** hi];
}

// The attributes that make a chart one image to a screen reader, read out as what it
// shows: its title, then what it draws against what where the title does not say it.
function spoken(title, shows) {
  return { role: "img", "aria-label": !title || title === shows ? shows : `${title}: ${shows}` };
}

// The frame of a chart: the svg, scales, grid, axes, labels and title. `xPad` widens the x
// range by that part of its span (room for the points of a scatter plot); `wholeX`: the x
// values are whole (steps), the range ends and the ticks too (one step, 5, reads 4 to 6,
// not 4.5, 4.6, ... 5.5; step 0, 0 to 1: no step below 0); `xFormat` and `yFormat` write the axes' tick labels (`tickLabels`).
function frame(el, { xs, ys, xLabel, yLabel, title, logX = false, logY = false, xPad = 0, wholeX = false, height = 300, xFormat = format, yFormat = format }) {
  clear(el);
  const width = Math.max(280, el.clientWidth || 560);
  const root = svg("svg", { width, height, class: "chart", viewBox: `0 0 ${width} ${height}`, ...spoken(title, `${yLabel} against ${xLabel}`) }, el);
  const inner = { w: width - MARGIN.left - MARGIN.right, h: height - MARGIN.top - MARGIN.bottom };
  let [x0, x1] = logX ? logExtent(xs, xPad) : extent(xs, xPad);
  if (wholeX) [x0, x1] = [x0 < 0 && !xs.some((v) => v < 0) ? 0 : Math.floor(x0), Math.ceil(x1)];
  let [y0, y1] = logY ? extent(ys.filter((v) => v > 0)) : extent(ys, 0.04);
  if (logY && y0 <= 0) y0 = y1 / 1000;
  const tx = logX ? (v) => Math.log10(v) : (v) => v;
  const ty = logY ? (v) => Math.log10(v) : (v) => v;
  const sx = (v) => MARGIN.left + ((tx(v) - tx(x0)) / (tx(x1) - tx(x0) || 1)) * inner.w;
  const sy = (v) => MARGIN.top + inner.h - ((ty(v) - ty(y0)) / (ty(y1) - ty(y0) || 1)) * inner.h;
  const grid = svg("g", { class: "grid" }, root);
  const axes = svg("g", { class: "axes" }, root);
  const xCount = Math.max(2, Math.floor(inner.w / 90)), yCount = Math.max(2, Math.floor(inner.h / 50));
  const xTicks = (logX ? logTicks : ticks)(x0, x1, xCount).filter((t) => !wholeX || Number.isInteger(t));
  tickLabels(xTicks, xFormat).forEach((label, i) => {
    const t = xTicks[i];
    svg("line", { x1: sx(t), x2: sx(t), y1: MARGIN.top, y2: MARGIN.top + inner.h }, grid);
    svg("text", { x: sx(t), y: MARGIN.top + inner.h + 16, "text-anchor": "middle" }, axes).textContent = label;
  });
  const yTicks = (logY ? logTicks : ticks)(y0, y1, yCount);
  tickLabels(yTicks, yFormat).forEach((label, i) => {
    const t = yTicks[i];
    svg("line", { x1: MARGIN.left, x2: MARGIN.left + inner.w, y1: sy(t), y2: sy(t) }, grid);
    svg("text", { x: MARGIN.left - 6, y: sy(t) + 4, "text-anchor": "end" }, axes).textContent = label;
  });
  svg("rect", { class: "plot-border", x: MARGIN.left, y: MARGIN.top, width: inner.w, height: inner.h }, root);
  svg("text", { class: "axis-label", x: MARGIN.left + inner.w / 2, y: height - 6, "text-anchor": "middle" }, root).textContent = xLabel;
  svg("text", { class: "axis-label", transform: `translate(14 ${MARGIN.top + inner.h / 2}) rotate(-90)`, "text-anchor": "middle" }, root).textContent = yLabel;
  if (title) svg("text", { class: "chart-title", x: MARGIN.left, y: 18 }, root).textContent = title;
  const clip = `clip-${Math.random().toString(36).slice(2)}`;
  svg("rect", { x: MARGIN.left, y: MARGIN.top, width: inner.w, height: inner.h }, svg("clipPath", { id: clip }, svg("defs", {}, root)));
  const body = svg("g", { "clip-path": `url(#${clip})` }, root);
  return { root, body, sx, sy, inner, x0, x1, y0, y1, logY };
}

// A line through the points whose y is `ok`, broken where one is not or its x has no
// place on the axis (0 on a log axis). With `dots`, a point with no neighbour to join (a
// single test evaluation, at the end of a run) is a small ring, not an invisible "M x,y".
function pathOf(xs, ys, sx, sy, ok, dots = false) {
  const drawn = (i) => i >= 0 && i < xs.length && ok(ys[i]) && Number.isFinite(sx(xs[i]));
  let d = "";
  for (let i = 0; i < xs.length; i++) {
    if (!drawn(i)) continue;
    const x = sx(xs[i]), y = sy(ys[i]);
    if (dots && !drawn(i - 1) && !drawn(i + 1)) d += `M${(x - 2).toFixed(1)},${y.toFixed(1)}a2,2 0 1,0 4,0a2,2 0 1,0 -4,0`;
    else d += `${drawn(i - 1) ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`;
  }
  return d;
}

// The values of a series the y axis fits: of one `diverged`, which often soars (to 1e22)
// before its NaN and would flatten every line against the axis, only those up to ten times
// its median (a run healthy until it blew up: its healthy part).
function fitted(s) {
  const values = [...s.y, ...(s.lo || []), ...(s.hi || [])];
  if (!s.diverged) return values;
  const sizes = s.y.filter((v) => v !== null && Number.isFinite(v)).map(Math.abs).sort((a, b) => a - b);
  const median = sizes[Math.floor((sizes.length - 1) / 2)];
  return values.filter((v) => v !== null && Math.abs(v) <= 10 * median);
}

// A line chart. series: [{key, label, color, x: [], y: [], lo?: [], hi?: [], diverged?}].
// The x axis's ticks, and the nearest step's values shown on hovering, write a step as
// `xFormat` does (a count); `wholeX`: the x values are whole (`frame`; steps, not
// seconds); `onHover(key | null)` reports the nearest series.
export function linePlot(el, { series, xLabel = "step", xFormat = formatCount, wholeX = true, yLabel = "", title = "", logY = false, height = 300, yFormat = format, onHover = null }) {
  const xs = series.flatMap((s) => s.x);
  const ys = series.flatMap(fitted);
  const f = frame(el, { xs, ys, xLabel, yLabel, title, logY, wholeX, height, xFormat, yFormat });
  const ok = (v) => v !== null && Number.isFinite(v) && (!logY || v > 0);
  for (const s of series) {
    if (!s.lo) continue;
    const top = pathOf(s.x, s.hi, f.sx, f.sy, ok);
    const idx = s.x.map((_, i) => i).filter((i) => ok(s.lo[i]) && ok(s.hi[i])).reverse();
    const bottom = idx.map((i) => `L${f.sx(s.x[i]).toFixed(1)},${f.sy(s.lo[i]).toFixed(1)}`).join("");
    if (top) svg("path", { class: "band", d: `${top}${bottom}Z`, fill: s.color, "data-key": s.key }, f.body);
  }
  const lines = series.map((s) => svg("path", { class: "curve", d: pathOf(s.x, s.y, f.sx, f.sy, ok, true), stroke: s.color, "data-key": s.key }, f.body));
  const rule = svg("line", { class: "rule", y1: MARGIN.top, y2: MARGIN.top + f.inner.h, visibility: "hidden" }, f.root);
  const dot = svg("circle", { class: "dot", r: 4, visibility: "hidden" }, f.root);
  const overlay = svg("rect", { class: "overlay", x: MARGIN.left, y: MARGIN.top, width: f.inner.w, height: f.inner.h }, f.root);
  const nearestIndex = (arr, v) => {
    let best = 0;
    for (let i = 1; i < arr.length; i++) if (Math.abs(arr[i] - v) < Math.abs(arr[best] - v)) best = i;
    return best;
  };
  overlay.addEventListener("mousemove", (event) => {
    const box = f.root.getBoundingClientRect();
    const mx = event.clientX - box.left, my = event.clientY - box.top;
    const step = f.x0 + ((mx - MARGIN.left) / f.inner.w) * (f.x1 - f.x0);
    const rows = [];
    let near = null, nearDist = Infinity;
    for (const s of series) {
      if (!s.x.length) continue;
      const i = nearestIndex(s.x, step);
      if (!ok(s.y[i])) continue;
      const dist = Math.hypot(f.sx(s.x[i]) - mx, f.sy(s.y[i]) - my);
      if (dist < nearDist) { nearDist = dist; near = { s, i }; }
      rows.push({ s, i });
    }
    if (!near) return;
    rule.setAttribute("x1", f.sx(near.s.x[near.i])); rule.setAttribute("x2", f.sx(near.s.x[near.i]));
    rule.setAttribute("visibility", "visible");
    dot.setAttribute("cx", f.sx(near.s.x[near.i])); dot.setAttribute("cy", f.sy(near.s.y[near.i]));
    dot.setAttribute("fill", near.s.color); dot.setAttribute("visibility", "visible");
    rows.sort((a, b) => b.s.y[b.i] - a.s.y[a.i]);
    // A line that ends before the step shown (a run stopped, or behind) or starts after
    // it gives its value at its own nearest step, which it says.
    const at = near.s.x[near.i];
    const shown = rows.slice(0, 10).map(({ s, i }) => {
      const spread = s.lo ? ` <span class="muted">[${format(s.lo[i])}, ${format(s.hi[i])}]</span>` : "";
      const own = at > s.x.at(-1) || at < s.x[0] ? ` <span class="muted">@ ${xFormat(s.x[i])}</span>` : "";
      const mark = s === near.s ? " class=\"near\"" : "";
      return `<div${mark}><i data-color="${s.color}"></i>${escapeHtml(s.label)} <b>${yFormat(s.y[i])}</b>${own}${spread}</div>`;
    });
    const more = rows.length > 10 ? `<div class="muted">… ${rows.length - 10} more</div>` : "";
    showTooltip(event, `<div class="tip-head">${escapeHtml(xLabel)} ${xFormat(near.s.x[near.i])}</div>${shown.join("")}${more}`);
    if (onHover) onHover(near.s.key);
  });
  overlay.addEventListener("mouseleave", () => {
    rule.setAttribute("visibility", "hidden"); dot.setAttribute("visibility", "hidden");
    hideTooltip();
    if (onHover) onHover(null);
  });
  return { lines };
}

// Points with lines through them, on a linear or log x axis.
// points: [{key, color, x, y, detail, data?}] (`data` become data-* attributes); lines:
// [{key, color, x: [], y: []}], broken where y is not a number; marks: [{key, x, detail,
// data?}], values that are not finite, drawn as red crosses on the top edge. Hovering a
// point or mark shows its `detail` (HTML); `onHover(key | null)` reports its key; `xFormat`
// writes the x axis's tick labels.
export function scatterPlot(el, { points, lines = [], marks = [], xLabel = "", yLabel = "", title = "", logX = false, logY = false, height = 300, xFormat = format, onHover = null }) {
  const xs = [...points, ...marks].map((p) => p.x);
  const ys = [...points.map((p) => p.y), ...lines.flatMap((l) => l.y)];
  const f = frame(el, { xs, ys, xLabel, yLabel, title, logX, logY, xPad: 0.05, height, xFormat });
  const ok = (v) => v !== null && Number.isFinite(v) && (!logY || v > 0);
  const onX = (p) => Number.isFinite(p.x) && (!logX || p.x > 0);
  for (const l of lines) svg("path", { class: "trend", d: pathOf(l.x, l.y, f.sx, f.sy, ok), stroke: l.color, "data-key": l.key }, f.body);
  const hoverable = (node, item) => {
    for (const [k, v] of Object.entries(item.data || {})) node.dataset[k] = v;
    node.addEventListener("mousemove", (event) => { showTooltip(event, item.detail); if (onHover) onHover(item.key); });
    node.addEventListener("mouseleave", () => { hideTooltip(); if (onHover) onHover(null); });
  };
  // Points are drawn unclipped, so that one on the plot's edge is whole.
  for (const p of points.filter((q) => onX(q) && ok(q.y))) {
    hoverable(svg("circle", { class: "point", cx: f.sx(p.x).toFixed(1), cy: f.sy(p.y).toFixed(1), r: 4, fill: p.color, "data-key": p.key }, f.root), p);
  }
  for (const m of marks.filter(onX)) {
    const x = f.sx(m.x), y = MARGIN.top + 6;
    const d = `M${x - 4},${y - 4}L${x + 4},${y + 4}M${x + 4},${y - 4}L${x - 4},${y + 4}`;
    hoverable(svg("path", { class: "diverged-mark", d, "data-key": m.key }, f.root), m);
  }
}

// Horizontal stacked bars. rows: [{label, segments: [{name, value, color, detail}]}].
export function stackedBars(el, { rows, xLabel = "seconds", title = "", legend = [] }) {
  const rowHeight = 26;
  const height = MARGIN.top + MARGIN.bottom + rows.length * rowHeight + 8;
  const totals = rows.map((r) => r.segments.reduce((a, s) => a + s.value, 0));
  clear(el);
  const width = Math.max(280, el.clientWidth || 560);
  const labelWidth = Math.min(160, 12 + 7 * Math.max(...rows.map((r) => r.label.length), 4));
  const root = svg("svg", { width, height, class: "chart", viewBox: `0 0 ${width} ${height}`, ...spoken(title, xLabel) }, el);
  const left = labelWidth, innerW = width - left - MARGIN.right - 48; // room for the totals
  const max = Math.max(...totals, 1e-9);
  const sx = (v) => left + (v / max) * innerW;
  const axes = svg("g", { class: "axes" }, root), grid = svg("g", { class: "grid" }, root);
  const bottom = MARGIN.top + rows.length * rowHeight;
  for (const t of ticks(0, max, Math.max(2, Math.floor(innerW / 90)))) {
    svg("line", { x1: sx(t), x2: sx(t), y1: MARGIN.top, y2: bottom }, grid);
    svg("text", { x: sx(t), y: bottom + 16, "text-anchor": "middle" }, axes).textContent = format(t);
  }
  svg("text", { class: "axis-label", x: left + innerW / 2, y: height - 8, "text-anchor": "middle" }, root).textContent = xLabel;
  if (title) svg("text", { class: "chart-title", x: 8, y: 18 }, root).textContent = title;
  rows.forEach((row, r) => {
    const y = MARGIN.top + r * rowHeight + 4;
    const label = svg("text", { class: "bar-label", x: left - 8, y: y + rowHeight / 2 + 1, "text-anchor": "end" }, root);
    let fits = row.label.length; // characters, fewer until the label fits its margin
    do label.textContent = clipMiddle(row.label, fits--);
    while (fits > 4 && label.getComputedTextLength() > left - 12);
    if (label.textContent !== row.label) svg("title", {}, label).textContent = row.label;
    let acc = 0;
    for (const seg of row.segments) {
      const bar = svg("rect", { class: "bar", x: sx(acc), y, width: Math.max(0, sx(acc + seg.value) - sx(acc)), height: rowHeight - 8, fill: seg.color }, root);
      bar.addEventListener("mousemove", (e) => showTooltip(e, `<div class="tip-head">${escapeHtml(row.label)} · ${escapeHtml(seg.name)}</div>${seg.detail}`));
      bar.addEventListener("mouseleave", hideTooltip);
      acc += seg.value;
    }
    svg("text", { class: "bar-total", x: sx(acc) + 4, y: y + rowHeight / 2 + 1 }, root).textContent = `${format(acc, 3)} s`;
  });
  if (legend.length) el.appendChild(legendOf(legend));
}

// `text` in at most `n` characters: a long one keeps its start and its end (a group id's
// model and hash), joined by "…".
function clipMiddle(text, n) {
  if (text.length <= n) return text;
  const head = Math.ceil((n - 1) / 2);
  return `${text.slice(0, head)}…${text.slice(text.length - (n - 1 - head))}`;
}

export function legendOf(entries) {
  const box = document.createElement("div");
  box.className = "legend";
  for (const { label, color, key } of entries) {
    const item = document.createElement("span");
    item.className = "legend-item";
    if (key) item.dataset.key = key;
    if (color) { // an entry without a colour is a note
      const swatch = document.createElement("i");
      swatch.style.background = color;
      item.appendChild(swatch);
    } else {
      item.classList.add("muted");
    }
    item.appendChild(document.createTextNode(label));
    box.appendChild(item);
  }
  return box;
}
