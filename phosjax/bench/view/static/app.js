// The bench viewer page: loads the bench's JSON from this server and draws every section.

import { linePlot, scatterPlot, stackedBars, legendOf, format, formatSetting, fixed, formatBytes, formatCount, formatSeconds, escapeHtml } from "./plot.js";
import { renderBlurb, openModules } from "./blurb.js";
import { drawGraph } from "./graph.js";
import { pollDelay, changedParts } from "./live.js";

const PALETTE = ["#4269d0", "#ef7b2d", "#3ca951", "#d63c5e", "#9b6bd0", "#8c564b", "#e377c2", "#6b7b8c", "#b5b028", "#17becf",
  "#1f3f8f", "#a34d10", "#1e6b32", "#8a1f3b", "#5e3a91"];
const PRIMARY_METRICS = ["accuracy", "loss"];
const MAX_LINES = 80;
const state = {
  info: null, board: null, mode: "cells", sort: null, filters: {}, text: "", hidden: new Set(),
  allMetrics: false, curves: new Map(), configs: new Map(), chosenSort: null,
};
const $ = (id) => document.getElementById(id);

// The JSON the server answers to `url`. It fails with the server's message (a broken file,
// say) or, where no answer came (the viewer stopped, the network down), or one that is no
// JSON (a proxy's error page: the viewer behind it stopped), saying so; any other error is
// the page's own, its message as it is.
async function getJson(url) {
  const response = await fetch(url).catch(() => { throw new Error("the viewer is not answering"); });
  const body = await response.json().catch(() => {
    throw new Error(`${url} answered HTTP ${response.status}, not the viewer's JSON (is something between the page and the viewer, a proxy?)`);
  });
  if (!response.ok) throw new Error(body.error || `${url}: HTTP ${response.status}`);
  return body;
}

function showError(error) {
  $("error").hidden = false;
  $("error").textContent = `Could not load the bench: ${error.message}`;
  console.error(error);
}

// `render` of the panel (section) `id`, called as `render(current, ...args)`: a request of
// it that fails (a broken file) shows its error in that panel alone, in place of its
// contents; the rest of the page works on. A render overtaken by a newer one (the selection
// changed while its requests were in flight) must draw nothing: `current()` turns false.
// The panel is `aria-busy` until its latest render is done.
function panel(id, render) {
  let latest = 0;
  return async (...args) => {
    const turn = ++latest;
    const current = () => turn === latest;
    const section = $(id);
    section.querySelector(".panel-error")?.remove();
    section.classList.remove("failed");
    section.setAttribute("aria-busy", "true");
    try {
      await render(current, ...args);
    } catch (error) {
      console.error(error);
      if (!current()) return;
      section.classList.add("failed");
      section.querySelector(".card-head").after(el("p", { class: "error panel-error" }, `Could not load this panel: ${error.message}`));
    } finally {
      if (current()) section.removeAttribute("aria-busy");
    }
  };
}

// `n` and the noun, plural unless `n` is 1: counted(1, "seed") is "1 seed",
// counted(1500000, "step") "1,500,000 steps".
function counted(n, noun) {
  return `${formatCount(n)} ${n === 1 ? noun : `${noun}s`}`;
}

// `text` in at most `n` characters: a longer one cut in its middle, its start and end kept
// (options that differ in their last key stay apart).
function short(text, n = 36) {
  if (text.length <= n) return text;
  const head = Math.ceil((n - 1) / 2);
  return `${text.slice(0, head)}…${text.slice(text.length - (n - 1 - head))}`;
}

// `short` of each of `texts` (a table column's), as {text: shown}: texts it cuts alike (long
// ones that differ in their middle alone) shown instead around where they first differ.
function shortApart(texts, n = 36) {
  const shown = new Map([...new Set(texts)].map((text) => [text, short(text, n)]));
  const alike = new Map();
  for (const [text, cut] of shown) alike.set(cut, [...(alike.get(cut) || []), text]);
  const differs = (a, b) => { let i = 0; while (i < a.length && a[i] === b[i]) i++; return i; };
  for (const group of [...alike.values()].filter((g) => g.length > 1)) {
    for (const text of group) {
      const at = Math.max(...group.filter((other) => other !== text).map((other) => differs(text, other)));
      const start = Math.max(0, Math.min(at - Math.floor(n / 2), text.length - (n - 2)));
      const end = start + n - 2;
      shown.set(text, `${start > 0 ? "…" : ""}${text.slice(start, end)}${end < text.length ? "…" : ""}`);
    }
  }
  return shown;
}

function el(tag, attrs = {}, text = null) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== null) node.textContent = text;
  return node;
}

// Sets the text of `node`, or puts `nodes` in `box` in place of its contents, unless they
// read the same already: text a user selected there (to copy it) stays selected as the
// page reads the bench again, and a screen reader does not read out an `aria-live` one.
function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function replaceIfChanged(box, ...nodes) {
  if (box.innerHTML !== nodes.map((node) => node.outerHTML).join("")) box.replaceChildren(...nodes);
}

// ---- cells, configs, colours -------------------------------------------------------------

// Whether `rows` differ in `column` (as `valueOf` reads a row: by default its value, whole).
function varying(rows, column, valueOf = (row) => JSON.stringify(row[column])) {
  return new Set(rows.map(valueOf)).size > 1;
}

// The columns that make a configuration: a cell's but for its seed and group.
function configColumns() {
  return ["model", "model_id", "dataset", ...state.board.hparams];
}

// A cell's configuration as a key: its values in `configColumns` but `apart` (the column
// a plot is against: the cells one of its lines goes through), those it has a value in, by
// name: a column a model added later brings (its knob, null for the others) leaves the other
// configurations' keys as they were.
function configKey(row, apart = null) {
  return JSON.stringify(configColumns().filter((c) => c !== apart && hasValue(row, c)).map((c) => [c, row[c]]));
}

function describeColumns() {
  const rows = state.board.rows;
  const descriptive = ["model", "dataset", ...state.board.hparams];
  // Columns that vary within a model tell cells apart; those fixed by the model (its
  // options) only lengthen the labels, so they are filters but not table columns.
  const models = [...new Set(rows.map((r) => r.model))].map((m) => rows.filter((r) => r.model === m));
  state.shownColumns = descriptive.filter((c) => c === "model" || (c === "dataset" && varying(rows, c)) || models.some((m) => varying(m, c)));
  state.constantColumns = rows.length ? descriptive.filter((c) => !varying(rows, c)) : []; // none: no cells to share one
  state.filterColumns = [...descriptive, "seed", "group_id"].filter((c) => varying(rows, c, (r) => filterValue(r, c)));
  state.splits = [...state.board.splits].sort((a, b) => (a === "test" ? -1 : b === "test" ? 1 : a.localeCompare(b)));
  const labelColumns = state.shownColumns.filter((c) => c !== "model");
  for (const row of rows) {
    row.config = configKey(row);
    row.configLabel = labelOf(row, labelColumns);
    row.searchValues = searchValues(row);
    row.searchText = searchText(row);
  }
  const configs = [...new Set(rows.map((r) => r.config))];
  configs.forEach((key, i) => state.configs.set(key, colorOf(i)));
}

// The colour of the i-th configuration: the palette's, then, past its 15, hues spread by the
// golden angle, lightness alternating, so that no two configurations share one.
function colorOf(i) {
  if (i < PALETTE.length) return PALETTE[i];
  const n = i - PALETTE.length;
  return `hsl(${((n * 137.508) % 360).toFixed(2)}, 65%, ${[42, 28, 58][n % 3]}%)`;
}

// Whether `row` has a value in `column` (a model has none for another model's knob).
const hasValue = (row, column) => row[column] !== null && row[column] !== undefined;

// A row's value in `column` as the page shows it (table, labels, filter menus, search,
// tooltips): of its options, only those that differ between its model's cells (api/cells),
// not the whole JSON, wide, its start alike, which tells configurations apart (colours);
// options the same in every cell, the JSON, whole, as their chip shows it.
const shownValue = (row, column) => (column === "options" && !state.constantColumns.includes(column) ? row._options : row[column]);

// A row's entry in the filter menu of `column`: its value as shown, as JSON.
const filterValue = (row, column) => JSON.stringify(shownValue(row, column));

// Whether `row` shows a value in `column` (`–`: none).
const showsValue = (row, column) => shownValue(row, column) !== null && shownValue(row, column) !== undefined;

// A row's options that vary, one by one as `[key, value as shown]`: the table's
// `pool="max", top_k=2` is [["pool", '"max"'], ["top_k", "2"]].
function optionsShown(row) {
  const text = shownValue(row, "options");
  if (typeof text !== "string") return [];
  return jsonItems(text).map((item) => [item.slice(0, item.indexOf("=")), item.slice(item.indexOf("=") + 1)]);
}

// A row's options as their JSON writes them, one by one as `[key, value's JSON]` ([] where
// the bench has none): `{"pool": "max", "eps": NaN}` is [["pool", '"max"'], ["eps", "NaN"]],
// each value kept as text, so that one JSON lacks (Python writes NaN) hides no other.
function optionsOf(row) {
  const text = typeof row.options === "string" ? row.options.trim() : "";
  if (!text.startsWith("{") || text === "{}") return [];
  return jsonItems(text.slice(1, -1)).map((item) => {
    const [, key, value] = item.match(/^\s*("(?:[^"\\]|\\.)*")\s*:\s*(.*)$/s);
    return [JSON.parse(key), value.trim()];
  });
}

// `text` cut at each ", " between JSON values: a ", " within a string, list or dict cuts
// nothing (`note="a, b=c"` is one item).
function jsonItems(text) {
  const items = [];
  let [start, depth, quoted] = [0, 0, false];
  for (let i = 0; i < text.length; i++) {
    if (quoted) {
      if (text[i] === "\\") i++;
      else if (text[i] === '"') quoted = false;
    } else if (text[i] === '"') quoted = true;
    else if ("[{".includes(text[i])) depth++;
    else if ("]}".includes(text[i])) depth--;
    else if (depth === 0 && text.startsWith(", ", i)) {
      items.push(text.slice(start, i));
      start = i + 2;
    }
  }
  return [...items, text.slice(start)];
}

// JSON `text` without the spaces outside its strings: `[3, 3]` is `[3,3]`, as typed in
// the search (which splits at spaces).
const compact = (text) => text.replace(/("(?:[^"\\]|\\.)*")|\s+/g, (_, string) => string ?? "");

// A row's label: its model, then `column=value` for those of `columns` it has a value in.
function labelOf(row, columns) {
  return [row.model, ...columns.filter((c) => showsValue(row, c)).map((c) => `${c}=${formatSetting(shownValue(row, c))}`)].join(" · ");
}

// What a free word of the text search looks in: the model, the cell id and every column as
// `column=value` (`searchValues`); a value both as shown and as written
// (`learning_rate=1e-4`, `learning_rate=0.0001`).
function searchText(row) {
  const words = [...row.searchValues].flatMap(([c, values]) => [...new Set(values.flatMap((v) => [formatSetting(v), String(v)]))].map((v) => `${c}=${v}`));
  return [row.model, row.cell_id, ...words].join("\n").toLowerCase(); // a phrase ("a b") spans none
}

// The values the search takes for each column a row has a value in, by the column's name in
// lower case: every column, the cell id and those shown as chips or fixed by a model
// (filters only) too, the options as the table shows them (`options=per_example=true`, or
// one of them), and each option shown as a column of its own (`per_example=true`; a string
// with or without its quotes, a list or dict without its spaces too: `kernel=[3,3]`) unless
// a column has its name; so too each option not shown, the same in all its model's cells,
// spelt alike (`pool=max` finds the cells of a model that fixes it, as `width=100` does).
function searchValues(row) {
  const columns = [...configColumns(), "seed", "group_id", "cell_id"].filter((c) => showsValue(row, c));
  const values = new Map(columns.map((c) => [c.toLowerCase(), [shownValue(row, c)]]));
  const options = optionsShown(row);
  if (options.length > 1) values.get("options")?.push(...options.map(([key, text]) => `${key}=${text}`));
  for (const [key, text] of [...options, ...optionsOf(row).filter(([, text]) => text !== "null")]) {
    if (!values.has(key.toLowerCase())) values.set(key.toLowerCase(), [...new Set([text, compact(text), /^".*"$/s.test(text) ? JSON.parse(text) : text])]);
  }
  return values;
}

// A number in `value` (a number, or a string that reads as one, `inf` and `-inf` as the
// table shows them too), else null.
function asNumber(value) {
  if (typeof value === "number") return value;
  if (typeof value !== "string" || !/^\s*[-+]?(\d|\.\d|inf(inity)?\s*$)/i.test(value)) return null;
  const n = Number(value.replace(/inf(inity)?/i, "Infinity"));
  return Number.isNaN(n) ? null : n;
}

// A term of the text search (a word, in lower case): `column<op>value`, `op` one of `=`,
// `!=`, `<`, `<=`, `>`, `>=` (`{column, op, value}`), else a free word (`{word}`; so is
// `=value`, as ever); a value (or a word) in double quotes is taken without them.
function parseTerm(word) {
  const match = word.match(/^([^<>!="]*)(<=|>=|!=|<|>|=)(.*)$/s);
  if (!match || (match[1] === "" && match[2] === "=")) return { word: unquoted(word, /^"(.*)"$/s) };
  const [, column, op, value] = match;
  return { column, op, value: unquoted(value, /^"(.*?)"?$/s) };
}

// `text` without the quotes `pattern` finds around it (a value's closing one may be yet to come).
const unquoted = (text, pattern) => text.match(pattern)?.[1] ?? text;

// Whether `a` and `b` are the same number, to float32's precision (`lr=1e-4` is 0.0001;
// an infinity is no other number).
const sameNumber = (a, b) => a === b || (Number.isFinite(a - b) && Math.abs(a - b) <= 1e-7 * Math.max(Math.abs(a), Math.abs(b)));

// Whether one of `values` (a row's in a column; none: it has no value there) is `wanted`
// whole (as shown, in the table too, or as written; numbers as numbers: `seed=1` is not
// 10); `wanted` "" for any value. `!=` matches the rows `=` does not (a NaN or no value too).
function equalsAny(values, wanted) {
  return values.length > 0 && (wanted === "" || values.some((value) => {
    if ([formatSetting(value), format(value), fixed(value), String(value)].some((v) => v.toLowerCase() === wanted)) return true;
    const [a, b] = [asNumber(wanted), asNumber(value)];
    return a !== null && b !== null && sameNumber(a, b);
  }));
}

// Whether `value` is `op` (`<`, `<=`, `>`, `>=`) `wanted`: equal where `=` finds it (as
// shown too: 0.91988, shown 0.9199, is <= 0.9199), else numbers as numbers (a NaN is
// neither less nor more), text in the table's natural order (`25,50` < `100`).
function comparesTo(value, op, wanted) {
  const [a, b] = [asNumber(value), asNumber(wanted)];
  if (Number.isNaN(a) || /^[-+]?nan$/i.test(String(value))) return false;
  const order = equalsAny([value], wanted) ? 0 : a !== null && b !== null ? a - b : format(value).toLowerCase().localeCompare(wanted, undefined, { numeric: true });
  return { "<": order < 0, "<=": order <= 0, ">": order > 0, ">=": order >= 0 }[op];
}

// Whether `values` (a row's in a column) match the term `{op, value}`.
function matchesValues(values, { op, value }) {
  if (op === "=") return equalsAny(values, value);
  if (op === "!=") return !equalsAny(values, value);
  return values.some((v) => comparesTo(v, op, value));
}

// Whether `row` matches `term` (`parseTerm`): a column's term by its `searchValues` there
// (a column it lacks: no value), a free word when it is part of the row's `searchText`.
function matchesTerm(row, term) {
  if (term.word !== undefined) return row.searchText.includes(term.word);
  return matchesValues(row.searchValues.get(term.column) ?? [], term);
}

// The text search as typed now: its terms (`searchTerms`) and the result columns they may
// name (`resultColumns`), worked out once for the table drawn and the search box marked.
function currentSearch() {
  const results = resultColumns();
  return { results, terms: searchTerms(results) };
}

// The terms of the text search (`parseTerm`, each with its `text` as typed and its `flaw`):
// its words, split at spaces but those in double quotes (`name="a b"` is one); `results`:
// the result columns (`resultColumns`).
function searchTerms(results) {
  const columns = searchColumns();
  return (state.text.match(/(?:[^\s"]+|"[^"]*"?)+/g) ?? []).map((text) => {
    const term = parseTerm(text.toLowerCase());
    return { ...term, text, flaw: flaw(term, results, columns) };
  });
}

// The columns the text search knows, by name in lower case: each a cell has or its model
// could (`searchValues`), and the results', `split:metric` and the metric alone, those no
// cell has a value in yet too; null while the bench has written no results (a name that
// is none of the cells' may be a metric to come).
function searchColumns() {
  const metrics = state.board.metrics;
  if (!metrics.length) return null;
  const splits = new Set(["train", "test", ...state.splits]);
  const names = [...configColumns(), "seed", "group_id", ...metrics, ...[...splits].flatMap((s) => metrics.map((m) => `${s}:${m}`))];
  return new Set([...names.map((name) => name.toLowerCase()), ...state.board.rows.flatMap((row) => [...row.searchValues.keys()])]);
}

// The one of `names` nearest `name`: the fewest letters to change, add or drop for its
// length (`ed` is nearer `seed` than `lr`).
function nearest(name, names) {
  const distance = (b) => {
    let above = [...Array(b.length + 1).keys()];
    for (let i = 1; i <= name.length; i++) {
      const row = [i];
      for (let j = 1; j <= b.length; j++) row.push(Math.min(above[j] + 1, row[j - 1] + 1, above[j - 1] + (name[i - 1] === b[j - 1] ? 0 : 1)));
      above = row;
    }
    return above[b.length];
  };
  const distances = [...names].map((n) => [distance(n) / Math.max(name.length, n.length), n]);
  return distances.reduce((best, d) => (d[0] < best[0] ? d : best))[1];
}

// What the text search takes, for its box's tooltip.
const SEARCH_FORMS = 'words in any column; column=value, column!=value, column<value, <=, >, >= (a number, or text on a column of text); "a b" for a value with spaces';

// Why the text search leaves out `term` (`parseTerm`), else null: an operator without a
// column (`>0.5`), a column it does not know (`acuracy>0.9`; `columns`: `searchColumns`),
// a comparison without a value (`accuracy>`), with text on a column of numbers
// (`accuracy>abc`; `results`: the result columns, all numbers) or with a number on a
// column of text without digits (`model<5`; a `loss` option, not the result, `loss<0.4`).
function flaw(term, results, columns) {
  if (term.word !== undefined) return null;
  if (term.column === "") return `no column before ${term.op}`;
  if (columns && !columns.has(term.column)) return `no column ${term.column}; nearest: ${nearest(term.column, columns)}`;
  if (!["<", "<=", ">", ">="].includes(term.op)) return null;
  if (term.value === "") return `no value after ${term.op}`;
  const values = state.board.rows.flatMap((row) => row.searchValues.get(term.column) ?? []);
  if (asNumber(term.value) !== null) {
    const text = values.length > 0 && !values.some((value) => /\d|^[-+]?nan$/i.test(format(value)));
    return text ? `the cells' ${term.column} holds text, ${term.value} is a number` : null;
  }
  const numbers = results.has(term.column) || (values.length > 0 && values.every((value) => asNumber(value) !== null));
  return numbers ? `${term.column} holds numbers, ${term.value} is not one` : null;
}

// Marks the search box invalid while a term of it is left out (`flaw`), its tooltip saying
// which and why, and what the search takes.
function markSearch(terms) {
  const box = $("filters").querySelector("input[type=search]");
  const flawed = terms.filter((term) => term.flaw);
  box?.classList.toggle("invalid", flawed.length > 0);
  box?.setAttribute("aria-invalid", String(flawed.length > 0));
  box?.setAttribute("title", `${flawed.map((term) => `left out: ${term.text} (${term.flaw})\n`).join("")}${SEARCH_FORMS}`);
}

// The result columns the text search takes, by name in lower case: `split:metric` for each
// the bench records (`train:loss`), and a metric alone for its first split's, the table's
// first (`accuracy`: `test:accuracy` where there is one); a column of the cells of that name wins.
function resultColumns() {
  const columns = new Map();
  for (const m of metricColumns(true)) {
    const metric = m.metric.toLowerCase();
    for (const name of [`${m.split.toLowerCase()}:${metric}`, metric]) if (!columns.has(name)) columns.set(name, m);
  }
  for (const row of state.board.rows) for (const column of row.searchValues.keys()) columns.delete(column);
  return columns;
}

// Whether `row` passes the filter menus and each of `terms` (of its cell's columns).
function passes(row, terms) {
  for (const [column, value] of Object.entries(state.filters)) {
    if (value !== "" && filterValue(row, column) !== value) return false;
  }
  return terms.every((term) => matchesTerm(row, term));
}

// The table's (split, metric) columns (every metric when `all`): those a cell of the bench
// has a value in (a train-only metric such as grad_norm gets no empty test column).
function metricColumns(all = state.allMetrics) {
  const metrics = state.board.metrics;
  const chosen = all ? metrics : PRIMARY_METRICS.filter((m) => metrics.includes(m));
  const recorded = (split, metric) => state.board.rows.some((r) => (r._final?.[split]?.[metric] ?? null) !== null);
  return state.splits.flatMap((split) => chosen.filter((m) => recorded(split, m)).map((metric) => ({ key: `${split}:${metric}`, split, metric })));
}

// The server sends NaN and infinities as "nan", "inf", "-inf" (a diverged run), a value of
// a cell frozen since it diverged as "diverged", and null for nothing recorded; the page
// keeps them apart as NaN / ±Infinity (a frozen cell's as NaN) and null.
const NONFINITE = { nan: NaN, inf: Infinity, "-inf": -Infinity, diverged: NaN };
function number(value) {
  return typeof value === "string" && value in NONFINITE ? NONFINITE[value] : value;
}

const present = (values) => values.filter((v) => v !== null && v !== undefined);
const nonfinite = (v) => typeof v === "number" && !Number.isFinite(v);

// The mean of the values present; NaN when one is NaN or infinite (a diverged seed must
// not vanish from the mean), null when none is.
function mean(values) {
  const ok = present(values);
  if (ok.some(nonfinite)) return NaN;
  return ok.length ? ok.reduce((a, b) => a + b, 0) / ok.length : null;
}

function std(values) {
  const ok = present(values);
  if (ok.length < 2 || ok.some(nonfinite)) return null;
  const m = mean(ok);
  return Math.sqrt(ok.reduce((a, v) => a + (v - m) ** 2, 0) / (ok.length - 1));
}

// Whether the values of a row, as the server sends them, are a diverged cell's: one is
// "diverged" (its row says so); in rows that do not record it (`recorded` false: written
// before they did) a NaN or infinity is the one sign. A NaN of a live cell (NaN test
// inputs) is no divergence, as the summary counts them.
function divergedMarks(marks, recorded) {
  const values = Object.values(marks);
  return values.includes("diverged") || (!recorded && values.some((v) => typeof v === "string" && v in NONFINITE));
}

// "diverged (k/n)" when k of the n seeds with a value diverged (`diverged`: of each seed)
// and have a NaN or infinite one.
function divergedNote(values, diverged) {
  const bad = values.filter((v, i) => nonfinite(v) && diverged[i]).length;
  return bad ? `diverged (${bad}/${present(values).length})` : null;
}

// The step the seeds `members` of a configuration are compared at on `split`: where the
// seeds shown (a filter may leave out some) stopped at different steps (one crashed), the
// last all of them reached; null where they stopped at one (each at its own last).
function sharedStep(members, split) {
  const ends = new Set(members.map((m) => m._common?.[split]?.end).filter((end) => end !== undefined));
  return ends.size > 1 ? Math.min(...ends) : null;
}

// A cell's values on `split` at `step` (`sharedStep`: from the server's `common`), or its last.
const seedsFinal = (row, split, step) => (step === null ? row._final?.[split] : row._common?.[split]?.at.get(step));
// Whether a cell's values on `split` at `step` (as `seedsFinal`) are a diverged cell's (`divergedMarks`).
const seedDiverged = (row, split, step) => (step === null ? row._diverged?.[split] : row._common?.[split]?.diverged.get(step)) ?? false;
// Whether the series `s` of the cell `row` diverged: a NaN or infinite value, on a split its
// cell's rows say it diverged on (`seedDiverged`), as the table counts it.
const seriesDiverged = (s, row) => s.y.some(nonfinite) && seedDiverged(row, s.split, null);

// The table's rows (`modeRows`) that pass the filter menus and the text search (`search`:
// `currentSearch`), whose terms on a result column (`resultColumns`) take each row's value
// as the table shows it: a cell's, or a configuration's mean over the seeds shown.
function tableRows(search) {
  const results = search.results;
  const terms = search.terms.filter((term) => !term.flaw);
  const onResults = terms.filter((term) => results.has(term.column));
  const cells = state.board.rows.filter((row) => passes(row, terms.filter((term) => !onResults.includes(term))));
  const matches = (r) => onResults.every((term) => {
    const { split, metric } = results.get(term.column);
    return matchesValues(present([r.value(split, metric)]), term);
  });
  return modeRows(cells).filter(matches);
}

// Table rows of `cells` for the current mode: cells as they are, or configs averaged over their seeds.
function modeRows(cells) {
  if (state.mode === "cells") {
    return cells.map((row) => ({
      key: row.cell_id, row, color: state.configs.get(row.config), cells: [row],
      value: (split, metric) => row._final?.[split]?.[metric] ?? null, spread: () => null, note: () => null, at: () => null,
      diverged: (split, metric) => nonfinite(row._final?.[split]?.[metric]) && seedDiverged(row, split, null),
    }));
  }
  const groups = new Map();
  for (const row of cells) (groups.get(row.config) || groups.set(row.config, []).get(row.config)).push(row);
  return [...groups.entries()].map(([key, members]) => {
    // The seeds shown stopped at different steps: compared at the last all reached.
    const values = (split, metric) => members.map((m) => seedsFinal(m, split, sharedStep(members, split))?.[metric] ?? null);
    return {
      key, row: members[0], color: state.configs.get(key), cells: members,
      value: (split, metric) => mean(values(split, metric)), spread: (split, metric) => std(values(split, metric)),
      note: (split, metric) => divergedNote(values(split, metric), members.map((m) => seedDiverged(m, split, sharedStep(members, split)))),
      diverged(split, metric) { return this.note(split, metric) !== null; },
      at: (split) => sharedStep(members, split),
    };
  });
}

// ---- leaderboard -----------------------------------------------------------------------------

// The filter row: the text search, a menu per column that varies, a chip per column that
// does not. Drawn again when the page reads the bench again, it keeps its search box and
// menus (and so the focus, where a user is typing, and a menu's open list of values).
function renderFilters() {
  const box = $("filters");
  let search = box.querySelector("input[type=search]");
  if (!search) {
    search = el("input", { type: "search", placeholder: "filter: words in any column", "aria-label": "filter text" });
    search.addEventListener("input", () => { state.text = search.value; renderAll(); });
  }
  search.value = state.text;
  const chips = state.constantColumns.map((column) => {
    const value = formatSetting(state.board.rows[0]?.[column]);
    return el("span", { class: "chip", title: `${column} = ${value}` }, `${column} = ${short(value)}`);
  });
  const kept = [...box.children].filter((node) => !node.matches(".chip"));
  const menus = [search, ...state.filterColumns.map(filterMenu)];
  if (menus.length !== kept.length || menus.some((node, i) => node !== kept[i])) box.replaceChildren(...menus);
  const shown = [...box.querySelectorAll(".chip")];
  const same = (a, b) => a.textContent === b.textContent && a.title === b.title;
  if (chips.length !== shown.length || chips.some((chip, i) => !same(chip, shown[i]))) {
    shown.forEach((chip) => chip.remove());
    box.append(...chips);
  }
}

// The filter menu of `column` (its label), the one shown where there is one, filled with
// the values its cells take as the table shows them (`filterValue`), whole: shortened, two
// alike at their start read alike (the menu is narrow, its list not).
function filterMenu(column) {
  const values = [...new Set(state.board.rows.map((r) => filterValue(r, column)))].sort((a, b) => compare(JSON.parse(a), JSON.parse(b)));
  let select = [...$("filters").querySelectorAll("select")].find((s) => s.dataset.column === column);
  if (!select) {
    select = el("select", { "data-column": column, "aria-label": column });
    select.addEventListener("change", () => { state.filters[column] = select.value; renderAll(); });
    el("label", { class: "filter" }, `${column} `).appendChild(select);
  }
  fillSelect(select, [["", "all"], ...values.map((v) => [v, formatSetting(JSON.parse(v))])], state.filters[column] || "");
  return select.parentElement;
}

function tableColumns() {
  const columns = [{ key: "_show", label: "", sortable: false }];
  for (const c of state.shownColumns) columns.push({ key: c, label: c, get: (r) => shownValue(r.row, c) });
  if (state.mode === "cells") {
    columns.push({ key: "seed", label: "seed", get: (r) => r.row.seed });
  } else {
    columns.push({ key: "_seeds", label: "seeds", get: (r) => r.cells.length });
  }
  columns.push({ key: "_steps", label: "steps done", get: (r) => mean(r.cells.map((c) => c._done)), numeric: true });
  for (const m of metricColumns()) {
    columns.push({ key: m.key, label: `${m.split} ${m.metric}`, get: (r) => r.value(m.split, m.metric), metric: m, numeric: true });
  }
  if (state.mode === "cells") columns.push({ key: "cell_id", label: "cell", get: (r) => r.row.cell_id, muted: true });
  return columns;
}

// Columns the table can be sorted by: its own, and every hyperparameter that varies
// (those fixed by a model are filters, not table columns), the seed and the group.
function sortColumns(columns) {
  const extra = state.filterColumns.filter((c) => !columns.some((col) => col.key === c));
  return [...columns.filter((c) => c.sortable !== false), ...extra.map((c) => ({ key: c, label: c, get: (r) => r.row[c] }))];
}

function renderSortBy(sortable) {
  const select = $("sort-by");
  fillSelect(select, sortable.map((c) => [c.key, c.label]), state.sort.key);
  $("sort-dir").textContent = state.sort.dir > 0 ? "↑" : "↓";
  $("sort-dir").setAttribute("aria-label", `${state.sort.dir > 0 ? "ascending" : "descending"}: reverse the order`); // read out, not an arrow
}

// The order a column is first sorted in: lowest first for a loss, its regularizer part, an
// aux loss or a time in seconds (best first, as `defaultSort` sorts the loss), largest first
// for any other number (an accuracy, a path weight, the steps done), text in natural order.
function firstDirection(column) {
  if (column?.metric && /^(loss|task_loss|regularizer)$|^aux\/|_s$/.test(column.metric.metric)) return 1;
  return column?.numeric ? -1 : 1;
}

function defaultSort() {
  const metrics = state.board.metrics;
  const split = state.splits[0];
  if (metrics.includes("accuracy")) return { key: `${split}:accuracy`, dir: -1 };
  if (metrics.includes("loss")) return { key: `${split}:loss`, dir: 1 };
  return { key: "model", dir: 1 };
}

// Where a value sorts whatever the direction: numbers and text first, then NaN or
// infinite values (a diverged run), then missing ones.
function rank(value) {
  if (value === null || value === undefined) return 2;
  return nonfinite(value) ? 1 : 0;
}

// Numbers by value, text in natural order (widths "25,50" before "100"), a list or an object
// (a plan's column added by hand) by its JSON, not as "[object Object]", missing values last.
function compare(a, b) {
  if (a === b) return 0;
  if (a === null || a === undefined) return 1;
  if (b === null || b === undefined) return -1;
  if (typeof a === "number" && typeof b === "number") return a - b;
  const text = (value) => (typeof value === "object" ? JSON.stringify(value) : String(value));
  return text(a).localeCompare(text(b), undefined, { numeric: true });
}

// `tableRows` in the table's order: by the sort column (`renderBoard` picks it). The plots
// draw the first rows in this order, so a new order redraws them too (`renderAll`).
function sortedRows(search = currentSearch()) {
  const rows = tableRows(search);
  const column = sortColumns(tableColumns()).find((c) => c.key === state.sort?.key);
  if (column) {
    rows.sort((a, b) => {
      const x = column.get(a), y = column.get(b);
      return rank(x) - rank(y) || (rank(x) ? 0 : state.sort.dir * compare(x, y));
    });
  }
  return rows;
}

// Sorts the table by `sort` (`{key, dir}`), the user's choice: it stays while the column
// does (a table without it sorts by its default, `defaultSort`, and by it again once back).
function chooseSort(sort) {
  state.chosenSort = sort;
  renderAll();
}

function renderBoard() {
  const table = $("board");
  table.innerHTML = "";
  const columns = tableColumns();
  const sortable = sortColumns(columns);
  const chosen = state.chosenSort;
  state.sort = chosen && sortable.some((c) => c.key === chosen.key) ? chosen : defaultSort();
  renderSortBy(sortable);
  const search = currentSearch();
  const rows = sortedRows(search);
  markSearch(search.terms);
  const head = el("tr");
  for (const column of columns) {
    const th = el("th", { class: column.numeric ? "num" : "" });
    if (column.key === "_show") {
      const all = el("input", { type: "checkbox", title: "show all in the plots" });
      all.checked = rows.every((r) => !state.hidden.has(r.key));
      all.addEventListener("change", () => {
        for (const r of rows) (all.checked ? state.hidden.delete(r.key) : state.hidden.add(r.key));
        renderAll();
      });
      th.appendChild(all);
    } else {
      th.textContent = column.label;
      th.classList.add("sortable");
      // Reached by Tab and sorted by Enter or Space too, as a button is (a keyboard user's).
      th.tabIndex = 0;
      th.dataset.sort = column.key;
      const sorted = state.sort.key === column.key;
      th.setAttribute("aria-sort", sorted ? (state.sort.dir > 0 ? "ascending" : "descending") : "none");
      if (sorted) th.classList.add(state.sort.dir > 0 ? "asc" : "desc");
      const sort = () => chooseSort(sorted ? { key: column.key, dir: -state.sort.dir } : { key: column.key, dir: firstDirection(column) });
      th.addEventListener("click", sort);
      th.addEventListener("keydown", (event) => {
        if (event.key !== "Enter" && event.key !== " ") return;
        event.preventDefault(); // Space: no scrolling
        sort();
      });
    }
    head.appendChild(th);
  }
  const thead = el("thead");
  thead.appendChild(head);
  table.appendChild(thead);
  const body = el("tbody");
  const plain = columns.filter((c) => c.key !== "_show" && c.key !== "_steps" && !c.metric);
  const cuts = new Map(plain.map((c) => [c.key, shortApart(rows.map((r) => formatSetting(c.get(r))))]));
  for (const r of rows) {
    const tr = el("tr", { class: "board-row", "data-key": r.key });
    if (state.hidden.has(r.key)) tr.classList.add("hidden-row");
    for (const column of columns) {
      const td = el("td", { class: column.numeric ? "num" : column.muted ? "muted mono" : "" });
      if (column.key === "_show") {
        const box = el("input", { type: "checkbox", title: "show in the plots" });
        box.checked = !state.hidden.has(r.key);
        box.addEventListener("change", () => { (box.checked ? state.hidden.delete(r.key) : state.hidden.add(r.key)); renderAll(); });
        const swatch = el("i", { class: "swatch" });
        swatch.style.background = r.color;
        td.append(box, swatch);
      } else if (column.metric) {
        const note = r.note(column.metric.split, column.metric.metric);
        td.textContent = note ?? fixed(column.get(r));
        if (r.diverged(column.metric.split, column.metric.metric)) td.classList.add("diverged");
        const spread = r.spread(column.metric.split, column.metric.metric);
        if (spread !== null) td.appendChild(el("span", { class: "spread" }, ` ± ${format(spread, 2)}`));
        const at = r.at(column.metric.split);
        if (at !== null) {
          const ends = r.cells.map((c) => c._done);
          const title = `at step ${formatCount(at)}, the last all its seeds reached (they stopped at ${formatCount(Math.min(...ends))} to ${formatCount(Math.max(...ends))})`;
          td.appendChild(el("span", { class: "at-step", title }, ` @ ${formatCount(at)}`));
        }
      } else if (column.key === "_steps") {
        const ends = r.cells.map((c) => c._done), total = r.row._steps;
        const [first, last] = [Math.min(...ends), Math.max(...ends)]; // seeds at different steps: both
        const done = first === last ? formatCount(first) : `${formatCount(first)}–${formatCount(last)}`;
        td.textContent = `${done} / ${formatCount(total)}`; // total null: not started
        const unfinished = r.cells.filter((c) => !c._finished);
        if (unfinished.length && unfinished.every((c) => c._stopped)) {
          td.classList.add("stopped");
          td.title = STOPPED;
        } else if (unfinished.some((c) => c._steps !== null)) td.classList.add("running"); // not: not started
      } else {
        const text = formatSetting(column.get(r));
        td.textContent = cuts.get(column.key).get(text);
        if (td.textContent !== text) td.title = text;
      }
      tr.appendChild(td);
    }
    tr.addEventListener("mouseenter", () => highlight(r.key));
    tr.addEventListener("mouseleave", () => highlight(focusedRow())); // back to the focused row's
    tr.addEventListener("focusin", () => highlight(r.key)); // a keyboard user on its tick box
    tr.addEventListener("focusout", () => highlight(null));
    body.appendChild(tr);
  }
  table.appendChild(body);
  if (!rows.length) {
    const tr = el("tr");
    const why = state.board.rows.length ? "No cell matches the filters." : "No cells planned yet.";
    tr.appendChild(el("td", { colspan: columns.length, class: "empty" }, why));
    body.appendChild(tr);
  }
}

// The key of the row whose tick box has the focus, or null.
function focusedRow() {
  const row = document.activeElement?.closest("#board tr.board-row");
  return row ? row.dataset.key : null;
}

function highlight(key) {
  for (const node of document.querySelectorAll(".curve, .band, .point, .diverged-mark")) {
    node.classList.toggle("dim", key !== null && node.dataset.key !== key);
    node.classList.toggle("lit", key !== null && node.dataset.key === key);
  }
  for (const tr of document.querySelectorAll(".board-row")) tr.classList.toggle("lit", tr.dataset.key === key);
}

// ---- curves ----------------------------------------------------------------------------------

// `state.curves` holds the curves asked for so far: for each pair of column and cell
// (`pairKey`), the request that fetches them, a promise of its `seriesByPair`. A request
// that fails is forgotten, so that the next render asks again.
const pairKey = (column, cellId) => JSON.stringify([column, cellId]);

// A response of api/results by pair of column and cell: that cell's series of the column,
// one per split it logged (none before it has), its values as numbers.
function seriesByPair(data) {
  const pairs = new Map();
  for (const s of data.series) {
    for (const column of data.columns) {
      const key = pairKey(column, s.cell_id);
      const series = { cell_id: s.cell_id, split: s.split, step: s.step, y: s.values[column].map(number) };
      (pairs.get(key) || pairs.set(key, []).get(key)).push(series);
    }
  }
  return pairs;
}

// `ids` in runs short enough for one request line each (a server bounds its length; this
// one at 64 KiB): at most `limit` characters of ids, encoded, per run.
function batches(ids, limit = 8000) {
  const runs = [];
  let length = 0;
  for (const id of ids) {
    const size = encodeURIComponent(id).length + 1;
    if (!runs.length || length + size > limit) { runs.push([]); length = 0; }
    runs.at(-1).push(id);
    length += size;
  }
  return runs;
}

// The series of `columns` of the cells `ids` (those the plots draw), `{column: [series]}`.
// Only the cells with a column not asked for before are fetched
// (`api/results?columns=...&cells=...`): a new order or filter fetches the lines it newly
// draws, and going back fetches nothing.
async function seriesOf(columns, ids) {
  const missing = ids.filter((id) => columns.some((c) => !state.curves.has(pairKey(c, id))));
  for (const cells of batches(missing)) {
    const list = (names) => names.map(encodeURIComponent).join(",");
    const request = getJson(`api/results?columns=${list(columns)}&cells=${list(cells)}`).then(seriesByPair);
    const keys = columns.flatMap((c) => cells.map((id) => pairKey(c, id))).filter((k) => !state.curves.has(k));
    for (const key of keys) state.curves.set(key, request);
    request.catch(() => keys.forEach((key) => state.curves.get(key) === request && state.curves.delete(key)));
  }
  const pair = async (key) => (await state.curves.get(key)).get(key) ?? [];
  const series = (column) => Promise.all(ids.map((id) => pair(pairKey(column, id))));
  return Object.fromEntries(await Promise.all(columns.map(async (c) => [c, (await series(c)).flat()])));
}

// The cells of the rows the plots draw: the first `MAX_LINES` rows shown, in the table's order.
function drawnCells() {
  return visibleRows().slice(0, MAX_LINES).flatMap((r) => r.cells.map((c) => c.cell_id));
}

// Exponential moving average (TensorBoard's smoothing), debiased; nulls are skipped.
function smooth(values, weight) {
  if (!weight) return values;
  let acc = 0, norm = 0;
  return values.map((v) => {
    if (v === null || !Number.isFinite(v)) return v;
    acc = weight * acc + (1 - weight) * v;
    norm = weight * norm + (1 - weight);
    return acc / norm;
  });
}

// Plot series for one metric and split: one line per visible cell, or per config with a band.
function plotSeries(raw, split, weight = 0) {
  const visible = visibleRows().slice(0, MAX_LINES);
  const bySplit = new Map(raw.filter((s) => s.split === split).map((s) => [s.cell_id, s]));
  const out = [];
  for (const r of visible) {
    const members = r.cells.map((c) => bySplit.get(c.cell_id)).filter((s) => s && s.y.some((v) => v !== null));
    if (!members.length) continue;
    if (state.mode === "cells") {
      const s = members[0];
      const diverged = seriesDiverged(s, r.row);
      const label = `${r.row.configLabel} · seed ${r.row.seed}${diverged ? " (diverged)" : ""}`;
      out.push({ key: r.key, label, color: r.color, x: s.step, y: smooth(s.y, weight), diverged });
      continue;
    }
    const steps = [...new Set(members.flatMap((s) => s.step))].sort((a, b) => a - b);
    const at = members.map((s) => { const y = smooth(s.y, weight); return new Map(s.step.map((step, i) => [step, y[i]])); });
    const column = (step) => at.map((m) => m.get(step)).filter((v) => v !== null && v !== undefined);
    const y = steps.map((step) => mean(column(step)));
    const lo = members.length > 1 ? steps.map((step) => Math.min(...column(step))) : null;
    const hi = members.length > 1 ? steps.map((step) => Math.max(...column(step))) : null;
    const diverged = members.filter((s) => seriesDiverged(s, r.cells.find((c) => c.cell_id === s.cell_id))).length;
    const seeds = diverged ? `${counted(members.length, "seed")}, ${diverged} diverged` : counted(members.length, "seed");
    out.push({ key: r.key, label: `${r.row.configLabel} (${seeds})`, color: r.color, x: steps, y, lo, hi, diverged: diverged > 0 });
  }
  return out;
}

// How many of each config's cells among ``rows`` diverged (`seriesDiverged` in any split).
function divergedByConfig(raw, rows) {
  const cells = new Map(rows.flatMap((r) => r.cells).map((c) => [c.cell_id, c]));
  const bad = new Set(raw.filter((s) => cells.has(s.cell_id) && seriesDiverged(s, cells.get(s.cell_id))).map((s) => s.cell_id));
  const counts = new Map();
  for (const r of rows) {
    const count = r.cells.filter((c) => bad.has(c.cell_id)).length;
    counts.set(r.row.config, (counts.get(r.row.config) || 0) + count);
  }
  return counts;
}

// The rows (cells or configs) shown in the plots, in the table's order.
function visibleRows() {
  return sortedRows().filter((r) => !state.hidden.has(r.key));
}

// A note when the plots leave lines out (at most MAX_LINES are drawn), else null.
function lineCapNote() {
  const count = visibleRows().length;
  return count > MAX_LINES ? `showing ${MAX_LINES} of ${count} lines: filter or hide rows to see the others` : null;
}

// Lays out one box per plot that has lines first, so that each chart is drawn at its final
// width; says `empty` when none has (a metric not recorded on a split, rows filtered out).
function drawPlots(parent, plots, empty) {
  const drawn = plots.filter((plot) => plot.series.length);
  if (!drawn.length) { parent.replaceChildren(el("p", { class: "hint" }, empty)); return; }
  const boxes = drawn.map(() => el("div", { class: "plot-box" }));
  parent.replaceChildren(...boxes);
  drawn.forEach((plot, i) => linePlot(boxes[i], plot));
}

const renderCurves = panel("curves", async (current) => {
  const metric = $("curve-metric").value;
  const box = $("curve-plots");
  if (!metric) { box.textContent = "No results yet."; return; }
  const { [metric]: raw } = await seriesOf([metric], drawnCells());
  if (!current()) return;
  const logY = $("log-y").checked;
  const weight = Number($("smoothing").value);
  const plots = state.splits.map((split) => ({ series: plotSeries(raw, split, weight), title: split, yLabel: metric, logY, onHover: highlight }));
  drawPlots(box, plots, `No ${metric} to draw for the rows shown (ticked and matching the filters).`);
  $("legend").replaceChildren(linesLegend(plots, raw));
});

// The legend of `plots`' lines: one entry per config with a line (its seeds share its
// colour), counting its diverged seeds in the series `raw`, and the note of the line cap.
function linesLegend(plots, raw) {
  const lines = new Set(plots.flatMap((plot) => plot.series.map((s) => s.key)));
  const plotted = visibleRows().slice(0, MAX_LINES).filter((r) => lines.has(r.key));
  const diverged = divergedByConfig(raw, plotted);
  const shown = new Map();
  for (const r of plotted) {
    const count = diverged.get(r.row.config);
    const label = count ? `${r.row.configLabel} (${count} diverged)` : r.row.configLabel;
    shown.set(r.row.config, { key: state.mode === "configs" ? r.key : undefined, color: r.color, label });
  }
  const note = state.mode === "configs" ? "line: mean over seeds · band: min–max" : "one line per seed";
  const legend = legendOf([...shown.values(), { label: note, color: null }]);
  const cap = lineCapNote();
  if (cap) legend.prepend(el("p", { class: "line-cap" }, cap));
  return legend;
}

const renderAux = panel("aux", async (current) => {
  const box = $("aux-plots");
  const columns = state.board.metrics.filter((m) => m.startsWith("aux/") || m.startsWith("path_weight/"));
  $("aux-legend").replaceChildren();
  if (!columns.length) { box.innerHTML = `<p class="hint">No aux losses or path weights were recorded.</p>`; return; }
  const data = await seriesOf(columns, drawnCells());
  if (!current()) return;
  const split = $("aux-split").value;
  const plots = columns.map((column) => {
    const [kind, ...rest] = column.split("/");
    return { series: plotSeries(data[column], split), title: rest.join("/"), yLabel: kind.replace("_", " "), height: 240, onHover: highlight };
  });
  drawPlots(box, plots, `No aux losses or path weights to draw on the ${split} split for the rows shown (ticked and matching the filters).`);
  if (plots.some((plot) => plot.series.length)) $("aux-legend").replaceChildren(linesLegend(plots, Object.values(data).flat()));
});

// ---- hyperparameters -----------------------------------------------------------------------

// The hyperparameters a result can be plotted against: those that vary in the bench and
// whose values are numbers (learning_rate, weight_decay, knob/..., reg/...).
function numericHparams() {
  const rows = state.board.rows;
  const numeric = (c) => rows.every((r) => r[c] === null || typeof r[c] === "number");
  return state.board.hparams.filter((c) => varying(rows, c) && numeric(c));
}

// What the hyperparameter plot is against at first, of `xs`: learning_rate when it varies,
// else the first that varies within a model (a grid axis: a knob, a regularizer's
// strength), not one each model fixes (its depth), which says nothing of the grid.
function firstHparam(xs) {
  return xs.includes("learning_rate") ? "learning_rate" : (xs.find((c) => state.shownColumns.includes(c)) ?? xs[0]);
}

// A log x axis suits values that are all positive and span more than a factor of 20.
function logSuits(column) {
  const xs = state.board.rows.map((r) => r[column]).filter((v) => typeof v === "number");
  return xs.length > 0 && xs.every((v) => v > 0) && Math.max(...xs) / Math.min(...xs) > 20;
}

function groupLabel(row, column) {
  return labelOf(row, state.shownColumns.filter((c) => c !== "model" && c !== column));
}

// A point's tooltip: its cell's model, the hyperparameters that vary in the bench, its seed
// and its value.
function cellDetail(row, label, value) {
  const columns = state.filterColumns.filter((c) => c !== "model" && c !== "group_id" && showsValue(row, c));
  const lines = columns.map((c) => `<div>${escapeHtml(c)} = ${escapeHtml(formatSetting(shownValue(row, c)))}</div>`);
  const head = `<div class="tip-head">${escapeHtml(row.model)} · cell ${escapeHtml(row.cell_id)}</div>`;
  return `${head}${lines.join("")}<div>${escapeHtml(label)} <b>${format(value)}</b></div>`;
}

// Per group of cells alike but for `column`, a line through the mean over seeds at each x
// (broken where a seed diverged, as the curves' means), coloured as its first configuration
// (its points too: within a group, x tells the configurations apart).
function trendLines(cells, column) {
  const groups = new Map();
  for (const c of cells) {
    const group = configKey(c.row, column);
    (groups.get(group) || groups.set(group, []).get(group)).push(c);
  }
  return [...groups.entries()].map(([key, members]) => {
    const x = [...new Set(members.map((c) => c.x))].sort((a, b) => a - b);
    const y = x.map((v) => mean(members.filter((c) => c.x === v).map((c) => c.y)));
    const first = [...state.configs.keys()].find((k) => members.some((c) => c.row.config === k));
    return { key, color: state.configs.get(first), label: groupLabel(members[0].row, column), x, y };
  });
}

// A final result against a hyperparameter: one point per cell of the rows shown, a mean line
// per group, values that diverged marked on the top edge.
function renderHparams() {
  const box = $("hp-plot");
  const column = $("hp-x").value, key = $("hp-metric").value;
  const hint = (text) => { box.replaceChildren(el("p", { class: "hint" }, text)); $("hp-legend").replaceChildren(); };
  if (!column) return hint("No numeric hyperparameter varies in this bench: there is nothing to plot a result against.");
  if (!key) return hint("No results yet.");
  const [split, metric] = [key.slice(0, key.indexOf(":")), key.slice(key.indexOf(":") + 1)];
  const label = `${split} ${metric}`;
  // As the table's mean over seeds: the seeds shown of a configuration that stopped at
  // different steps compared at one (`seedsFinal`), those at the same step each at its last.
  const shown = visibleRows().flatMap((r) => r.cells.map((row) => ({ r, row })));
  const seeds = new Map();
  for (const { row } of shown) (seeds.get(row.config) || seeds.set(row.config, []).get(row.config)).push(row);
  const steps = new Map([...seeds].map(([config, members]) => [config, sharedStep(members, split)]));
  const cells = shown.map(({ r, row }) => ({ r, row, x: row[column], y: seedsFinal(row, split, steps.get(row.config))?.[metric] ?? null }))
    .filter((c) => typeof c.x === "number" && c.y !== null);
  if (!cells.length) return hint(`No ${label} to plot for the rows shown (ticked and matching the filters).`);
  const step = (row) => steps.get(row.config);
  const at = (row) => (step(row) !== null ? ` at step ${formatCount(step(row))}, the last all its seeds reached` : "");
  const lines = trendLines(cells, column);
  const lineColor = new Map(lines.map((l) => [l.key, l.color]));
  const item = (c) => ({ key: c.r.key, color: lineColor.get(configKey(c.row, column)), x: c.x, y: c.y, detail: cellDetail(c.row, `${label}${at(c.row)}`, c.y), data: { cell: c.row.cell_id } });
  // A NaN or inf is marked where its cell diverged (as the table counts it), else not drawn.
  const diverged = (c) => nonfinite(c.y) && seedDiverged(c.row, split, step(c.row));
  const points = cells.filter((c) => !nonfinite(c.y)).map(item);
  const marks = cells.filter(diverged).map(item);
  const [logX, logY] = [$("hp-log-x").checked, $("hp-log-y").checked];
  box.replaceChildren();
  scatterPlot(box, {
    points, marks, lines, xLabel: column, xFormat: formatSetting, yLabel: label, title: `${label} against ${column}`, logX, logY, onHover: highlight,
  });
  // A log axis has no place for a value ≤ 0 (a weight decay of 0): those cells are not drawn,
  // nor are the NaNs of cells that did not diverge.
  const placed = (c) => (!logX || c.x > 0) && (nonfinite(c.y) ? diverged(c) : !logY || c.y > 0);
  const off = cells.filter((c) => !placed(c)).length;
  const live = cells.some((c) => nonfinite(c.y) && !diverged(c)) && `${label} NaN or inf of a cell that did not diverge`;
  const where = [logX && `${column} ≤ 0 on the log x axis`, logY && `${label} ≤ 0 on the log y axis`, live].filter(Boolean);
  const notes = [`${counted(points.filter(placed).length, "cell")} plotted`];
  if (off) notes.push(`${off} not: ${where.join(" or ")}`);
  if (marks.length) notes.push(`${marks.length} diverged (NaN or inf): red × on the top edge`);
  const entries = lines.map((l) => ({ label: `${l.label}: mean over seeds`, color: l.color }));
  $("hp-legend").replaceChildren(legendOf([...entries, { label: notes.join(" · "), color: null }]));
}

// ---- models, profile, run ------------------------------------------------------------------

// A blurb is of its model as initialized, each knob at its default; the knob values the
// bench's cells of model `id` train with (grid.knobs), noted above it, else null.
function knobNote(id) {
  const rows = state.board.rows.filter((r) => r.model_id === id);
  const knobs = state.board.hparams.filter((c) => c.startsWith("knob/") && rows.some((r) => hasValue(r, c)));
  if (!knobs.length) return null;
  const values = (c) => [...new Set(rows.filter((r) => hasValue(r, c)).map((r) => r[c]))].sort(compare).map((v) => formatSetting(v));
  const sets = knobs.map((c) => `${c.slice("knob/".length)}: ${values(c).join(", ")}`);
  return el("p", { class: "hint knob-note" }, `This blurb is of the model as initialized: each knob shows its default, while the bench's cells set ${sets.join("; ")} (the ${knobs.join(", ")} ${knobs.length === 1 ? "column" : "columns"}).`);
}

const renderModel = panel("models", async (current) => {
  const id = $("model-select").value;
  const model = state.info.models.find((m) => m.model_id === id);
  if (!model) { $("blurb").textContent = "No models in this bench yet."; return; }
  const file = (kind, has) => (has ? getJson(`api/${kind}/${encodeURIComponent(id)}`) : null);
  const [blurb, graph] = await Promise.all([file("blurb", model.has_blurb), file("graph", model.has_graph)]);
  if (!current()) return;
  const opened = $("blurb").dataset.model === id ? openModules($("blurb")) : undefined; // drawn again
  if (blurb) renderBlurb($("blurb"), blurb, opened);
  else $("blurb").innerHTML = `<p class="hint">No blurb was written for ${escapeHtml(id)}.</p>`;
  $("blurb").dataset.model = id;
  const note = blurb && knobNote(id);
  if (note) $("blurb").prepend(note);
  if (graph) drawGraph($("graph"), graph);
  else $("graph").replaceChildren();
  $("graph").hidden = !graph;
});

const PHASE_COLORS = { init: "#6b7b8c", compile: "#ef7b2d", step: "#4269d0", eval: "#3ca951" };
// The group_id of a run's own rows (phosjax.bench._layout.BENCH; a process's: "(bench).p0of2").
const BENCH_GROUP = "(bench)";
// A run's own phases, one after another (phosjax.bench._layout.BENCH_PHASES).
const RUN_PHASES = ["start", "plan", "data", "write", "blurbs", "train", "results"];
const PHASE_UNITS = { compile: "compiled program", step: "step", eval: "evaluation" };

// A phase row's tooltip: its total, what one occurrence took, the memory of the group's
// largest program (XLA's analysis, per device) and the process's peak device memory.
function phaseDetail(r) {
  const total = r.total_s ?? r.seconds;
  const lines = [`<div><b>${format(total)} s</b> in all</div>`];
  const unit = PHASE_UNITS[r.phase];
  if (unit && r.count) {
    const each = r.phase === "compile" ? total / r.count : r.seconds;
    const kind = r.phase === "step" ? " (steady state, all the group's cells at once)" : "";
    lines.push(`<div>${counted(r.count, unit)}: ${format(1e3 * each, 3)} ms each${kind}</div>`);
  }
  const peak = r.peak_bytes === undefined || r.peak_bytes === null ? "not reported by this backend" : formatBytes(r.peak_bytes);
  if (typeof r.program_bytes === "number") lines.push(`<div class="muted">largest program: ${formatBytes(r.program_bytes)} per device</div>`);
  lines.push(`<div class="muted">peak device memory: ${peak} (the fullest device)</div>`);
  return lines.join("");
}

// Why a profile box is empty: the files of `profile/<kind>.parquet` read (`files` of
// api/profile; a process's own, `<kind>.p<i>of<n>.parquet`, where several shared the bench)
// hold no `what`, or none was written.
function unwritten(read, kind, what) {
  if (read.length) return `${read.join(", ")} ${read.length === 1 ? "has" : "have"} no ${what}.`;
  return `neither profile/${kind}.parquet nor a process's profile/${kind}.p<i>of<n>.parquet was written.`;
}

const renderProfile = panel("profile", async (current) => {
  if (!state.info.has_profile) { $("phases").innerHTML = `<p class="hint">No profile recorded.</p>`; return; }
  const { phases, memory, files } = await getJson("api/profile");
  if (!current()) return;
  if (phases && phases.rows.length) {
    const groupColumn = phases.columns.includes("group_id") ? "group_id" : phases.columns[0];
    const groups = new Map();
    for (const row of phases.rows) (groups.get(row[groupColumn]) || groups.set(row[groupColumn], []).get(row[groupColumn])).push(row);
    // A run's phases in the order it went through them (a run from Python has no start:
    // another's comes later in the file); the groups' as written.
    const rank = (phase) => (RUN_PHASES.includes(phase) ? RUN_PHASES.indexOf(phase) : RUN_PHASES.length);
    const byRank = (a, b) => rank(a) - rank(b);
    const names = [...new Set(phases.rows.map((r) => r.phase))].sort(byRank);
    // Other phases (a run's own: start, plan...) in colours no group phase has.
    const free = PALETTE.filter((c) => !Object.values(PHASE_COLORS).includes(c));
    const others = names.filter((n) => !(n in PHASE_COLORS));
    const color = (name) => PHASE_COLORS[name] || free[others.indexOf(name) % free.length];
    const rows = [...groups.entries()].map(([label, list]) => ({
      label: String(label),
      segments: list.slice().sort((a, b) => byRank(a.phase, b.phase)).map((r) => ({
        name: r.phase, value: r.total_s ?? r.seconds ?? 0, color: color(r.phase), detail: phaseDetail(r),
      })),
    }));
    // The runs' own bars ("(bench)", "(bench).p0of2": their wall time, whose train holds
    // every group's) on a scale of their own: on the groups' they would squeeze those.
    const charts = [
      [rows.filter((r) => r.label.startsWith(BENCH_GROUP)), "seconds per phase of each run (its train: the groups' below)"],
      [rows.filter((r) => !r.label.startsWith(BENCH_GROUP)), "seconds per phase, per group (hover for each step, evaluation, compile)"],
    ].filter(([shown]) => shown.length);
    const boxes = charts.map(() => el("div"));
    $("phases").replaceChildren(...boxes);
    charts.forEach(([shown, title], i) => {
      const drawn = names.filter((n) => shown.some((r) => r.segments.some((s) => s.name === n)));
      stackedBars(boxes[i], { rows: shown, title, legend: drawn.map((n) => ({ label: n, color: color(n) })) });
    });
  } else {
    $("phases").replaceChildren(el("p", { class: "hint" }, `No phase timings: ${unwritten(files.phases, "phases", "rows")}`));
  }
  if (memory && memory.rows.length) {
    const xColumn = ["time_s", "elapsed_s", "seconds", "time", "t"].find((c) => memory.columns.includes(c)) || memory.columns[0];
    const numeric = memory.columns.filter((c) => c !== xColumn && memory.rows.some((r) => typeof r[c] === "number"));
    const yColumns = numeric.some((c) => c.includes("bytes")) ? numeric.filter((c) => c.includes("bytes")) : numeric;
    // Each run (a resumed bench has several) samples from its own start: place them on one clock.
    const runs = memory.columns.includes("run_started") ? memory.rows.map((r) => r.run_started).filter((v) => v !== null) : [];
    const first = runs.length ? Math.min(...runs) : null;
    const bytes = yColumns.every((c) => c.includes("bytes"));
    const scale = bytes ? 2 ** -20 : 1;
    // Processes that shared a bench each sampled their own memory (a `process` column): one
    // series per process and column, each in its own time order. A point at x NaN between
    // two runs breaks the line: no process ran between a run and its resumption.
    const processes = [...new Set(memory.rows.map((r) => r.process ?? null))];
    const all = processes.flatMap((p, j) => {
      const rows = memory.rows.filter((r) => (r.process ?? null) === p)
        .flatMap((r, i, own) => (i && r.run_started !== own[i - 1].run_started ? [null, r] : [r]));
      const at = (r) => (first === null || r.run_started === null ? r[xColumn] : r.run_started - first + r[xColumn]);
      const x = rows.map((r) => (r === null ? NaN : at(r)));
      return yColumns.map((c, i) => ({
        key: p === null ? `mem:${c}` : `mem:${c}:${p}`, column: c, label: p === null ? c : `${c} (process ${p})`,
        color: colorOf(i * processes.length + j + 2), x, y: rows.map((r) => (r === null || r[c] === null ? null : r[c] * scale)),
      }));
    });
    const series = all.filter((s) => s.y.some((v) => v !== null));
    const unreported = memory.columns.filter((c) => c.includes("bytes") && !series.some((s) => s.column === c));
    const missing = unreported.map((c) => ({ label: `${c}: not reported by this backend`, color: null }));
    const xLabel = first === null ? xColumn : "seconds since the bench first ran";
    linePlot($("memory"), { series, title: "memory over time", xLabel, xFormat: format, wholeX: false, yLabel: bytes ? "MiB" : "" });
    $("memory").appendChild(legendOf([...series, ...missing]));
  } else {
    $("memory").replaceChildren(el("p", { class: "hint" }, `No memory figures: ${unwritten(files.memory, "memory", "samples")}`));
  }
});

// Rows [key, value] of a two-column table; a third item gives the row's attributes.
function keyValueTable(entries) {
  const table = el("table", { class: "kv" });
  for (const [k, v, attrs] of entries) {
    const tr = el("tr", attrs);
    tr.append(el("th", {}, k), el("td", {}, typeof v === "object" && v !== null ? JSON.stringify(v) : format(v)));
    table.appendChild(tr);
  }
  return table;
}

// An env.json value as short text: packages as name==version, devices as kind × count,
// each earlier run's environment (a resumed bench's that differed) on a line of its own.
function envValue(key, value) {
  if (key === "earlier" && Array.isArray(value)) {
    const text = (k, v) => { const shown = envValue(k, v); return typeof shown === "object" && shown !== null ? JSON.stringify(shown) : format(shown); };
    return value.map((env) => Object.entries(env).map(([k, v]) => `${k} ${text(k, v)}`).join("; ")).join("\n");
  }
  if (key === "packages" && value && typeof value === "object") {
    return Object.entries(value).map(([name, version]) => (version === null ? `${name} (not installed)` : `${name}==${version}`)).join(", ");
  }
  if (key === "devices" && Array.isArray(value)) {
    const counts = new Map();
    for (const d of value) counts.set(d.kind ?? d.platform, (counts.get(d.kind ?? d.platform) || 0) + 1);
    return [...counts].map(([kind, n]) => `${kind} × ${n}`).join(", ");
  }
  return value;
}

function renderRun() {
  const { info, board } = state;
  setText($("config"), info.config_error ? `Could not read the config: ${info.config_error}` : info.config || "(no config.yaml)");
  $("config").classList.toggle("error", Boolean(info.config_error));
  replaceIfChanged($("env"), info.env_error ? el("p", { class: "error" }, `Could not read the environment: ${info.env_error}`)
    : keyValueTable(Object.entries(info.env || {}).map(([k, v]) => [k, envValue(k, v)])));
  const line = (id, cells, done, steps, shown, strategy, diverged) => [
    id, [counted(cells, "cell"), `${formatCount(done)} / ${counted(steps, "step")}`, shown, strategy, diverged && `${formatCount(diverged)} diverged`]
      .filter(Boolean).join(" · "),
    shown === "stopped" ? { class: "stopped", title: STOPPED } : {},
  ];
  const states = groupStates(info.status, board.rows);
  const groups = [
    ...Object.entries(info.status?.groups || {}).map(([id, g]) => line(
      id, (g.cells || []).length, g.steps_done, g.steps, g.finished ? "finished" : g.stopped ? "stopped" : "running", g.strategy, g.diverged)),
    ...[...unstartedGroups(info.status, board.rows)].map(([id, cells]) => line(id, cells.length, 0, null, states.get(id))),
  ];
  replaceIfChanged($("groups"), groups.length ? keyValueTable(groups) : el("p", { class: "hint" }, "No group has started."));
}

const renderMorph = panel("morph", async () => {
  if (!state.info.has_morph) return;
  $("morph").hidden = false;
  $("nav-morph").hidden = false;
  const { files, errors } = await getJson("api/morph");
  const box = $("morph-files");
  box.innerHTML = "";
  // Each file by name; one that cannot be read says why where it would be, the others shown.
  for (const name of [...Object.keys(files), ...Object.keys(errors)].sort()) {
    box.appendChild(el("h3", {}, name));
    if (name in errors) {
      box.appendChild(el("p", { class: "error" }, errors[name]));
      continue;
    }
    const content = files[name];
    if (content?.attrs) box.appendChild(keyValueTable(metadataEntries(content.attrs)));
    if (content && content.columns && content.rows) {
      const table = el("table", { class: "board" });
      const head = el("tr");
      for (const c of content.columns) head.appendChild(el("th", {}, c));
      table.appendChild(head);
      // Long values (a model config) cut as the results table cuts them (`shortApart`),
      // whole on hover.
      const cuts = new Map(content.columns.map((c) => [c, shortApart(content.rows.map((row) => format(row[c])), 40)]));
      for (const row of content.rows) {
        const tr = el("tr");
        for (const c of content.columns) {
          const text = format(row[c]), shown = cuts.get(c).get(text);
          tr.appendChild(el("td", shown === text ? {} : { title: text }, shown));
        }
        table.appendChild(tr);
      }
      box.appendChild(table);
    } else {
      box.appendChild(el("pre", {}, JSON.stringify(content, null, 2)));
    }
  }
});

// A table's metadata (pandas `attrs`) as rows of a key-value table, an object's fields
// each a row (iterations.parquet's `morph_config`: the run's strength, cost, steps, ...).
function metadataEntries(attrs) {
  return Object.entries(attrs).flatMap(([key, value]) => (value && typeof value === "object" && !Array.isArray(value)
    ? Object.entries(value).map(([k, v]) => [`${key}.${k}`, v]) : [[key, value]]));
}

// What the page says of a group the run writing it is known to have left unfinished.
const STOPPED = "stopped: the run training it ended before it finished (killed, out of memory, "
  + "a reboot); run `python -m phosjax.bench.new --dir DIR` on this bench again to continue it";

// What the page says of the cells the status files count as diverged.
const DIVERGED = "diverged: a non-finite loss, gradient or optimizer state; the cell's state is frozen "
  + "as it was before that step (its rows from there on say `diverged`)";

// How many cells the status files count as diverged (`diverged` of each group; none in a
// status written before phosjax recorded it).
const divergedCells = (status) => Object.values(status?.groups || {}).reduce((n, g) => n + (g.diverged || 0), 0);

// The group id of a status key (`<group_id>`, or `<group_id>.p<i>of<n>` for a process's share).
const groupIdOf = (key) => key.replace(/\.p\d+of\d+$/, "");

// The leaderboard's cells of each group not started yet (in no status file) by its id.
function unstartedGroups(status, rows) {
  const started = new Set(Object.keys(status?.groups || {}).map(groupIdOf));
  const groups = new Map();
  for (const r of rows) if (!started.has(r.group_id)) groups.set(r.group_id, [...(groups.get(r.group_id) || []), r]);
  return groups;
}

// Each group's state by its id: "finished" when every process's share of it (status key
// `<group_id>.p<i>of<n>`) is, "stopped" when every unfinished share is, else "running"; a
// group not started yet is "stopped" when its cells are (every run is gone), else "not started".
function groupStates(status, rows) {
  const shares = new Map();
  for (const [key, group] of Object.entries(status?.groups || {})) {
    shares.set(groupIdOf(key), [...(shares.get(groupIdOf(key)) || []), group]);
  }
  const states = new Map([...shares].map(([id, list]) => {
    const unfinished = list.filter((g) => !g.finished);
    return [id, !unfinished.length ? "finished" : unfinished.every((g) => g.stopped) ? "stopped" : "running"];
  }));
  for (const [id, cells] of unstartedGroups(status, rows)) states.set(id, cells.every((c) => c._stopped) ? "stopped" : "not started");
  return states;
}

// The panels of a bench, which a morph run's directory (`python -m phosjax.morph`) lacks.
const BENCH_PANELS = ["leaderboard", "curves", "hparams", "aux", "models", "profile", "run"];

// A morph run's directory: its Morph panel alone, not the bench's panels, empty.
function showMorphRunAlone() {
  for (const id of BENCH_PANELS) $(id).hidden = document.querySelector(`nav a[href="#${id}"]`).hidden = true;
  $("summary").replaceChildren(el("span", { class: "chip" }, "a morph run (python -m phosjax.morph): no bench"));
}

function renderSummary() {
  const { info, board } = state;
  $("bench-name").textContent = info.name;
  document.title = `${info.name} · phosjax bench`;
  if (!info.marker) return showMorphRunAlone();
  const states = groupStates(info.status, board.rows); // not started too
  const count = (state) => [...states.values()].filter((g) => g === state).length;
  const stopped = count("stopped");
  const diverged = divergedCells(info.status);
  const chips = [
    info.format_error ? el("span", { class: "chip format" }, info.format_error) : null,
    counted(board.rows.length, "cell"),
    counted(info.models.length, "model"),
    `${formatCount(count("finished"))} / ${counted(states.size, "group")} finished`,
    stopped ? el("span", { class: "chip stopped", title: STOPPED }, `${counted(stopped, "group")} stopped`) : null,
    diverged ? el("span", { class: "chip diverged", title: DIVERGED }, `${counted(diverged, "cell")} diverged`) : null,
    info.marker?.created ? `created ${createdAt(info.marker.created)}` : null,
    info.marker?.config_hash ? `config ${String(info.marker.config_hash).slice(0, 10)}` : null,
  ].filter(Boolean);
  replaceIfChanged($("summary"), ...chips.map((c) => (typeof c === "string" ? el("span", { class: "chip" }, c) : c)));
}

// An ISO time to the second, with its zone: "2026-01-01 00:00:00 UTC" (phosjax writes UTC),
// else its offset ("... +02:00"), if any; a `created` that is no text (another tool's
// bench.json), as given.
function createdAt(iso) {
  if (typeof iso !== "string") return JSON.stringify(iso);
  const zone = iso.slice(19).replace(/^\.\d+/, "");
  return `${iso.replace("T", " ").slice(0, 19)} ${["+00:00", "Z"].includes(zone) ? "UTC" : zone}`.trim();
}

// A model's entry in the Models menu, `model (model_id)`; where the bench has the model
// under several ids (one per input shape: a data set each), the data sets of its cells too.
function modelLabel({ model, model_id }) {
  const ids = new Set(state.info.models.filter((m) => m.model === model).map((m) => m.model_id));
  const datasets = [...new Set(state.board.rows.filter((r) => r.model_id === model_id).map((r) => r.dataset))];
  return ids.size > 1 && datasets.length ? `${model} on ${datasets.join(", ")} (${model_id})` : `${model} (${model_id})`;
}

// The menus whose choice the page's address keeps, by query parameter (see `main`).
const ADDRESS_MENUS = [["metric", "curve-metric"], ["model", "model-select"], ["smoothing", "smoothing"], ["split", "aux-split"], ["x", "hp-x"], ["y", "hp-metric"]];

// The query parameter of the leaderboard's filter menu of a column: `f.<column>`, its
// value the menu's, as JSON (`f.model="mlp"`, `f.lr=0.01`).
const FILTER = "f.";

// Puts the page's state in its address, each choice that differs from the page's default
// (`state.defaults`, the table's `defaultSort`), so that a reload or a copied link shows
// the same: the menus, mode, metrics, log scales (the curves' `log=y`; the hyperparameter
// plot's `hp-log-x`, `hp-log-y`: `on`, or `off` for an x axis log by default), sort
// (`sort=<key>`, with `order=desc` descending: a key may start with `-`), text search
// (`q=`), filter menus and the rows unticked for the plots (`uncheckedInAddress`).
function rememberInAddress() {
  const params = new URLSearchParams();
  if (state.mode === "configs") params.set("mode", "configs");
  if (state.allMetrics) params.set("metrics", "all");
  if ($("log-y").checked) params.set("log", "y");
  for (const [name, id] of ADDRESS_MENUS) if ($(id).value !== state.defaults[name]) params.set(name, $(id).value);
  if ($("hp-log-x").checked !== logSuits($("hp-x").value)) params.set("hp-log-x", $("hp-log-x").checked ? "on" : "off");
  if ($("hp-log-y").checked) params.set("hp-log-y", "on");
  const first = defaultSort();
  if (state.sort && (state.sort.key !== first.key || state.sort.dir !== first.dir)) {
    params.set("sort", state.sort.key);
    if (state.sort.dir < 0) params.set("order", "desc");
  }
  if (state.text) params.set("q", state.text);
  for (const [column, value] of Object.entries(state.filters)) if (value !== "") params.set(`${FILTER}${column}`, value);
  for (const [name, key] of uncheckedInAddress()) params.append(name, key);
  const query = params.toString();
  history.replaceState(null, "", `${location.pathname}${query ? `?${query}` : ""}${location.hash}`);
}

// The keys of the rows of the table in `mode` (`cells`: cell ids; `configs`: the
// configurations' keys).
const modeKeys = (mode) => [...new Set(state.board.rows.map((row) => (mode === "configs" ? row.config : row.cell_id)))];

// The rows unticked for the plots as the address keeps them, `[name, key]` pairs, those of
// each mode apart (its rows are unticked apart): `hide=<key>` each (a cell id, or a
// configuration's key), or, where fewer of a mode's rows are left ticked, `show.<mode>=<key>`
// each of those (an empty `show.<mode>=` for none), every other row of the mode unticked:
// an address with most rows of a large bench unticked, in either mode, stays short enough
// to load (the server takes a request line of up to 64 KiB; a configuration's key is long).
function uncheckedInAddress() {
  return ["cells", "configs"].flatMap((mode) => {
    const keys = modeKeys(mode);
    const [hidden, shown] = [keys.filter((key) => state.hidden.has(key)), keys.filter((key) => !state.hidden.has(key))];
    if (hidden.length <= shown.length) return hidden.map((key) => ["hide", key]);
    return (shown.length ? shown : [""]).map((key) => [`show.${mode}`, key]);
  });
}

// The page's state as its address `params` says (see `rememberInAddress`; its menus:
// `fillMenus`); a value the bench does not have (a filter value no cell takes) leaves the
// default.
function restoreFromAddress(params) {
  if (params.get("mode") === "configs") state.mode = "configs";
  state.allMetrics = $("all-metrics").checked = params.get("metrics") === "all";
  $("log-y").checked = params.get("log") === "y";
  for (const id of ["hp-log-x", "hp-log-y"]) if (["on", "off"].includes(params.get(id))) $(id).checked = params.get(id) === "on";
  const sort = params.get("sort"); // a column the table lacks: its default (`renderBoard`)
  // An address written before `order=` sorted descending by `sort=-<key>`: read so where
  // the table has no column `-<key>`.
  const older = sort?.startsWith("-") && !params.has("order") && !sortColumns(tableColumns()).some((c) => c.key === sort);
  if (sort) state.chosenSort = older ? { key: sort.slice(1), dir: -1 } : { key: sort, dir: params.get("order") === "desc" ? -1 : 1 };
  state.text = params.get("q") ?? "";
  const keys = new Set(state.board.rows.flatMap((r) => [r.cell_id, r.config]));
  state.hidden = new Set(params.getAll("hide").filter((key) => keys.has(key)));
  for (const mode of ["cells", "configs"]) {
    const shown = new Set(params.getAll(`show.${mode}`));
    if (params.has(`show.${mode}`)) for (const key of modeKeys(mode)) if (!shown.has(key)) state.hidden.add(key);
  }
  for (const [name, value] of params) {
    const column = name.slice(FILTER.length);
    const filter = name.startsWith(FILTER) && state.filterColumns.includes(column) ? filterFromAddress(column, value) : null;
    if (filter !== null) state.filters[column] = filter;
  }
}

// The filter of `column` an address's `value` asks for: the value itself where a cell takes
// it; for an address written while the options menu held their whole JSON, the value shown
// that picks the very same cells; else null.
function filterFromAddress(column, value) {
  const rows = state.board.rows;
  if (rows.some((r) => filterValue(r, column) === value)) return value;
  const shown = [...new Set(rows.filter((r) => JSON.stringify(r[column]) === value).map((r) => filterValue(r, column)))];
  if (shown.length !== 1) return null;
  const same = (r) => (JSON.stringify(r[column]) === value) === (filterValue(r, column) === shown[0]);
  return rows.every(same) ? shown[0] : null;
}

// Fills the menu `select` with `options` (`[value, label]` pairs), unless it holds them
// already (the page reading the bench again: a menu's open list stays open), then picks
// `selected`, if given.
function fillSelect(select, options, selected) {
  const held = [...select.options].map((o) => [o.value, o.textContent]);
  if (JSON.stringify(held) !== JSON.stringify(options.map(([value, label]) => [String(value), label]))) {
    select.replaceChildren(...options.map(([value, label]) => el("option", { value }, label)));
  }
  if (selected !== undefined) select.value = selected;
}

async function renderAll() {
  await keepingFocus(async () => {
    renderBoard(); // a sort the table lacks goes back to its default first
    rememberInAddress();
    renderHparams();
    await Promise.all([renderCurves(), renderAux()]);
  });
}

// A selector that finds the control with the focus once it is drawn anew: by its id, its
// filter menu's column or its row's key (the tick boxes); null for none.
function focusedSelector() {
  const node = document.activeElement;
  if (!node || node === document.body) return null;
  if (node.id) return `#${CSS.escape(node.id)}`;
  if (node.matches("#filters select")) return `#filters select[data-column="${CSS.escape(node.dataset.column)}"]`;
  const row = node.closest("#board tr.board-row");
  if (row && node.matches("input")) return `#board tr.board-row[data-key="${CSS.escape(row.dataset.key)}"] input`;
  if (node.matches("#board th[data-sort]")) return `#board th[data-sort="${CSS.escape(node.dataset.sort)}"]`;
  return node.matches("#board thead input") ? "#board thead input" : null;
}

// Calls `draw` (which may draw the control with the focus anew: the page reading the
// bench again, a row ticked), then gives the focus back to that control, drawn anew,
// unless the user has put it elsewhere meanwhile: a keyboard user stays where they were.
async function keepingFocus(draw) {
  const selector = focusedSelector();
  try {
    await draw();
  } finally {
    const lost = !document.activeElement || document.activeElement === document.body;
    if (selector && lost) document.querySelector(selector)?.focus({ preventScroll: true });
  }
}

// Reads the bench (api/bench, api/cells) into `state`: its rows as the page keeps them.
async function loadBench() {
  const [info, board] = await Promise.all([getJson("api/bench"), getJson("api/cells")]);
  const numbered = (values) => Object.fromEntries(Object.entries(values).map(([metric, v]) => [metric, number(v)]));
  const numbers = (final) => Object.fromEntries(Object.entries(final).map(([split, values]) => [split, numbered(values)]));
  const diverged = (marks, recorded) => Object.fromEntries(Object.entries(marks).map(([split, values]) => [split, divergedMarks(values, recorded)]));
  board.rows = board.rows.map(({ cell, options_that_vary: options, progress, final, common, records_diverged: recorded }) => ({
    ...cell, _options: options, _done: progress.steps_done, _steps: progress.steps, _finished: progress.finished, _stopped: progress.stopped,
    _final: numbers(final), _diverged: diverged(final, recorded),
    // Its seeds stopped at different steps: its values at each step one of them stopped at.
    _common: common && Object.fromEntries(Object.entries(common).map(([split, { at }]) => {
      const steps = Object.entries(at).map(([step, final]) => [Number(step), final]);
      const values = new Map(steps.map(([step, final]) => [step, numbered(final)]));
      const frozen = new Map(steps.map(([step, final]) => [step, divergedMarks(final, recorded)]));
      return [split, { at: values, diverged: frozen, end: Math.max(...values.keys()) }];
    })),
  }));
  [state.info, state.board] = [info, board];
  describeColumns();
}

// Fills the menus of the bench's metrics, splits, models and hyperparameters, each at its
// default (`state.defaults`), then at `wanted(name)` where it has that option: the
// address's choice as the page loads, the choice made when it reads the bench again.
function fillMenus(wanted) {
  const metrics = state.board.metrics;
  fillSelect($("curve-metric"), metrics.map((m) => [m, m]), metrics.includes("loss") ? "loss" : metrics[0]);
  fillSelect($("aux-split"), state.splits.map((s) => [s, s]), state.splits.includes("train") ? "train" : state.splits[0]);
  fillSelect($("model-select"), state.info.models.map((m) => [m.model_id, modelLabel(m)]));
  const xs = numericHparams();
  fillSelect($("hp-x"), xs.map((c) => [c, c]), firstHparam(xs));
  const finals = metricColumns(true);
  fillSelect($("hp-metric"), finals.map((m) => [m.key, `${m.split} ${m.metric}`]), finals.some((m) => m.key === "test:accuracy") ? "test:accuracy" : finals[0]?.key);
  $("smoothing").value = "0";
  state.defaults = Object.fromEntries(ADDRESS_MENUS.map(([name, id]) => [name, $(id).value]));
  for (const [name, id] of ADDRESS_MENUS) {
    if ([...$(id).options].some((o) => o.value === wanted(name))) $(id).value = wanted(name);
  }
}

// ---- live updates ----------------------------------------------------------------------------

// While the page is shown (not in a hidden tab) and not paused, it asks api/version, a
// digest of the bench's files (`live.version`: its answer); when that changed (a running
// bench wrote rows, its status, its profile), it reads the bench again and redraws the
// panels in place, the choices made kept (`refresh`). It asks again `pollDelay(cost)` seconds later, `cost` what the last
// reading of the bench took (3 s for a small bench, longer for a large one).
const live = { version: null, updated: null, paused: false, failed: null, polling: false, timer: null, cost: 0 };

// Seconds since `start` (a `performance.now()`).
const since = (start) => (performance.now() - start) / 1000;

// "live · updated 12:00:00" (the last time the page read the bench), "paused · ...", or
// what failed. The text is written only when it changes (`setText`): a screen reader
// reads it out (aria-live) whenever it is written, unchanged or not.
function showLive() {
  const time = live.updated.toLocaleTimeString("en-GB", { hour12: false });
  const mode = live.paused ? "paused" : live.failed ? `not updating (${live.failed})` : "live";
  setText($("live-state"), `${mode} · updated ${time}`);
  $("live-state").title = `asks the bench every ${format(pollDelay(live.cost), 2)} s (reading it took ${formatSeconds(live.cost)})`;
  $("live-state").classList.toggle("failed", !live.paused && Boolean(live.failed));
  $("live-toggle").textContent = live.paused ? "resume" : "pause";
}

// Reads the bench again and redraws every panel in place: the menus, filters, text search,
// sort, mode, rows unticked and the page's scroll stay; the curves are asked for again. A
// menu left at its default takes the bench's new default (test accuracy once the first
// test rows come, where train accuracy was all there was). The Models panel is drawn
// again only where the model shown changed (another, or its blurb or graph written), its
// modules open as they were. The control with the focus keeps it (`poll`). The curves,
// profile and morph files are asked for again only where their files `changed` (a Set of
// the parts of api/version).
async function refresh(changed) {
  const shown = () => JSON.stringify(state.info.models.find((m) => m.model_id === $("model-select").value) ?? null);
  const model = shown();
  await loadBench();
  // The menus as they are now: one picked while the bench was read stays picked.
  const menus = ADDRESS_MENUS.map(([name, id]) => [name, $(id).value]);
  const chosen = Object.fromEntries(menus.filter(([name, value]) => value !== state.defaults[name]));
  const x = $("hp-x").value;
  if (changed.has("results")) state.curves = new Map();
  renderSummary();
  fillMenus((name) => chosen[name]);
  if ($("hp-x").value !== x) $("hp-log-x").checked = logSuits($("hp-x").value); // as when chosen
  renderFilters();
  renderRun();
  const modelChanged = shown() !== model; // another model, or its blurb or graph written
  const again = (part, render) => (changed.has(part) ? render() : null);
  await Promise.all([renderAll(), again("profile", renderProfile), again("morph", renderMorph), modelChanged ? renderModel() : null]);
}

// One look at api/version (none while paused, hidden or already looking), then the next.
async function poll() {
  clearTimeout(live.timer);
  if (live.paused || document.hidden || live.polling) return;
  live.polling = true;
  try {
    const version = await getJson("api/version");
    if (version.version !== live.version?.version) {
      const start = performance.now();
      await keepingFocus(() => refresh(changedParts(live.version, version)));
      [live.version, live.updated, live.cost] = [version, new Date(), since(start)];
    }
    live.failed = null;
  } catch (error) {
    console.error(error);
    live.failed = error.message;
  } finally {
    live.polling = false;
  }
  showLive();
  if (!live.paused && !document.hidden) live.timer = setTimeout(poll, pollDelay(live.cost) * 1000);
}

// Follows the bench from its `version` on (the answer of api/version; null where it
// failed), which the page read in `cost` seconds. The indicator and its pause button show
// from then on: a page that could not load the bench follows nothing.
function startLive(version, cost) {
  [live.version, live.updated, live.cost] = [version, new Date(), cost];
  $("live").hidden = false;
  $("live-toggle").addEventListener("click", () => { live.paused = !live.paused; showLive(); poll(); });
  document.addEventListener("visibilitychange", poll);
  showLive();
  live.timer = setTimeout(poll, pollDelay(cost) * 1000);
}

// Seconds between two looks at api/version while the page waits for the bench to start.
const WAITING = 1;

// Until the viewer's directory holds a bench (api/version's answer `version` has `waiting`:
// the viewer started before the bench, or the folder holds files no bench writes), says
// why in place of the panels and asks again every `WAITING` seconds; then the first answer
// of the bench's. A look that fails (the viewer restarted) is said and asked again. As
// the live updates, it asks nothing while the tab is hidden, and again once it shows.
async function untilTheBenchStarts(version) {
  let failed = null;
  const shown = (resolve) => document.addEventListener("visibilitychange", resolve, { once: true });
  while (version.waiting) {
    document.body.classList.add("waiting");
    $("waiting").hidden = false;
    const why = `${version.waiting[0].toUpperCase()}${version.waiting.slice(1)}`.replace(/\.$/, "");
    setText($("waiting"), failed ? `${why} (${failed}; asking again).` : `${why}.`);
    await new Promise((resolve) => setTimeout(resolve, WAITING * 1000));
    while (document.hidden) await new Promise(shown);
    try {
      [version, failed] = [await getJson("api/version"), null];
    } catch (error) {
      console.error(error);
      failed = error.message;
    }
  }
  document.body.classList.remove("waiting");
  $("waiting").hidden = true;
  return version;
}

async function main() {
  // Asked before the reads, so that a change during them is seen; failing, the page loads
  // all the same, and its header says why it cannot follow the bench.
  let version = null;
  try {
    version = await untilTheBenchStarts(await getJson("api/version"));
  } catch (error) {
    console.error(error);
    live.failed = error.message;
  }
  const start = performance.now();
  await loadBench();
  renderSummary();
  const params = new URLSearchParams(location.search);
  fillMenus((name) => params.get(name));
  $("hp-log-x").checked = logSuits($("hp-x").value);
  restoreFromAddress(params);
  renderFilters();
  for (const id of [...ADDRESS_MENUS.map(([, menu]) => menu), "log-y", "hp-log-x", "hp-log-y"]) $(id).addEventListener("change", rememberInAddress);
  const modeButtons = document.querySelectorAll(".segmented button[data-mode]");
  const showMode = () => {
    for (const b of modeButtons) {
      b.classList.toggle("on", b.dataset.mode === state.mode);
      b.setAttribute("aria-pressed", String(b.dataset.mode === state.mode)); // the one chosen, read out
    }
  };
  showMode();
  for (const button of modeButtons) {
    button.addEventListener("click", () => { state.mode = button.dataset.mode; showMode(); renderAll(); });
  }
  $("all-metrics").addEventListener("change", (e) => { state.allMetrics = e.target.checked; renderAll(); });
  $("sort-by").addEventListener("change", () => {
    const key = $("sort-by").value;
    chooseSort({ key, dir: firstDirection(tableColumns().find((c) => c.key === key)) });
  });
  $("sort-dir").addEventListener("click", () => chooseSort({ ...state.sort, dir: -state.sort.dir }));
  $("curve-metric").addEventListener("change", renderCurves);
  $("log-y").addEventListener("change", renderCurves);
  $("smoothing").addEventListener("change", renderCurves);
  $("aux-split").addEventListener("change", renderAux);
  $("hp-x").addEventListener("change", () => { $("hp-log-x").checked = logSuits($("hp-x").value); rememberInAddress(); renderHparams(); });
  for (const id of ["hp-metric", "hp-log-x", "hp-log-y"]) $(id).addEventListener("change", renderHparams);
  $("model-select").addEventListener("change", renderModel);
  $("expand-all").addEventListener("click", () => document.querySelectorAll("#blurb details").forEach((d) => { d.open = true; }));
  $("collapse-all").addEventListener("click", () => document.querySelectorAll("#blurb details").forEach((d) => { d.open = false; }));
  let timer = null;
  window.addEventListener("resize", () => { clearTimeout(timer); timer = setTimeout(() => { renderAll(); renderProfile(); }, 150); });
  renderRun();
  await Promise.all([renderAll(), renderModel(), renderProfile(), renderMorph()]);
  startLive(version, since(start));
  document.body.dataset.ready = "true";
}

main().catch(showError);
