// leadstream dashboard: DOM helpers, tables and SVG charts (vanilla JavaScript, no
// external assets). Loaded before dashboard.js and attribution.js, which use them.
// Every chart element carries data-key / data-value with the number the API returned,
// so what is drawn can be checked against the API (tests/dashboard).
"use strict";

const SVGNS = "http://www.w3.org/2000/svg";
const fmt0 = new Intl.NumberFormat("en", { maximumFractionDigits: 0 });
const fmt2 = new Intl.NumberFormat("en", { maximumFractionDigits: 2 });
const compact = new Intl.NumberFormat("en", { notation: "compact", maximumFractionDigits: 1 });
const money = (v) => (v == null ? "–" : fmt0.format(v));
const pct = (v) => (v == null ? "–" : (v * 100).toFixed(1) + "%");
const $ = (sel) => document.querySelector(sel);

function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "onclick") node.addEventListener("click", v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function s(tag, attrs, ...children) {
  const node = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === "onclick") node.addEventListener("click", v);
    else node.setAttribute(k, String(v));
  }
  for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

// -- charts --------------------------------------------------------------------------

// Charts are drawn in the pixels of their container, so text stays at its CSS size.
const widthOf = (container) => Math.max(280, Math.round(container.clientWidth || 640));

function barsH(container, rows, opts) {
  // Horizontal bars: rows of {key, label, value, text, cls}; clickable if opts.onClick.
  const o = opts || {};
  const width = widthOf(container);
  const rowH = 24, labelW = Math.min(120, width * 0.3), valueW = Math.min(260, width * 0.4);
  const max = Math.max(1e-9, ...rows.map((r) => r.value));
  const root = s("svg", { viewBox: `0 0 ${width} ${Math.max(rowH, rows.length * rowH)}`, role: "img" });
  rows.forEach((r, i) => {
    const y = i * rowH;
    const w = Math.max(1, ((width - labelW - valueW) * r.value) / max);
    const g = s("g", {
      class: o.onClick ? "clickable" : null, "data-key": r.key, "data-value": r.value,
      onclick: o.onClick ? () => o.onClick(r.key) : null,
    });
    g.append(
      s("text", { x: 0, y: y + 16, class: "label" }, r.label),
      s("rect", { x: labelW, y: y + 4, width: w, height: rowH - 8, class: "bar " + (r.cls || "") }),
      s("text", { x: labelW + w + 6, y: y + 16 }, r.text),
      s("title", {}, `${r.label}: ${r.text}`),
    );
    root.append(g);
  });
  container.replaceChildren(rows.length ? root : h("p", { class: "empty" }, "no data"));
}

function columns(container, rows) {
  // Vertical bars of {key, value, label}: the score histogram.
  const width = widthOf(container), height = 160, pad = 4;
  const max = Math.max(1e-9, ...rows.map((r) => r.value));
  const bw = (width - pad) / Math.max(1, rows.length);
  const root = s("svg", { viewBox: `0 0 ${width} ${height + 20}`, role: "img" });
  root.append(s("line", { x1: pad, y1: height, x2: width, y2: height, class: "axis" }));
  rows.forEach((r, i) => {
    const bh = (height - 10) * (r.value / max);
    const x = pad + i * bw;
    root.append(
      s("rect", { x: x + 1, y: height - bh, width: Math.max(1, bw - 2), height: bh,
                  class: "bar", "data-key": r.key, "data-value": r.value },
        s("title", {}, `${r.label}: ${fmt0.format(r.value)}`)),
    );
    if (i % 5 === 0) root.append(s("text", { x, y: height + 14 }, r.label.split("–")[0]));
  });
  root.append(s("text", { x: width - 20, y: height + 14 }, "1"));
  container.replaceChildren(rows.some((r) => r.value) ? root : h("p", { class: "empty" }, "no scored leads"));
}

function ticks(lo, hi, count) {
  // About `count` round steps (1, 2 or 5 × a power of ten) covering [lo, hi].
  if (!(hi > lo)) hi = lo + 1;
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((x) => x >= raw * (1 - 1e-9));
  const first = Math.floor(lo / step + 1e-9), last = Math.ceil(hi / step - 1e-9);
  const out = [];
  for (let i = first; i <= last; i++) out.push(Number((i * step).toPrecision(12)));
  return out;
}

// "2026-03-02" → "2 Mar", "2026-03-02 10:15" → "2 Mar 10:15" (the API's days are UTC).
function dayLabel(text) {
  const day = new Date(text.slice(0, 10) + "T00:00:00Z");
  if (Number.isNaN(day.getTime())) return text;
  const shown = day.toLocaleDateString("en-GB", { day: "numeric", month: "short", timeZone: "UTC" });
  return text.length > 10 ? `${shown} ${text.slice(11, 16)}` : shown;
}

function lines(container, chart) {
  // Line chart over chart.x (days or times). Series {name, axis, values[]} share a y axis
  // per unit: chart.axes[0] on the left, chart.axes[1] (if any) on the right, each
  // {name, format, lo, hi} with labelled ticks; a key below names every line and its axis.
  const { x, axes, series } = chart;
  if (!x.length || !series.length) {
    container.replaceChildren(h("p", { class: "empty" }, "no data"));
    return;
  }
  const width = widthOf(container), top = 20, plotH = 150, bottom = 22;
  const left = 52, right = axes.length > 1 ? 52 : 12, plotW = width - left - right;
  const root = s("svg", { viewBox: `0 0 ${width} ${top + plotH + bottom}`, role: "img" });
  const scales = axes.map((axis, a) => {
    const vals = series.filter((ser) => (ser.axis || 0) === a).flatMap((ser) => ser.values).filter((v) => v != null);
    const marks = ticks(Math.min(axis.lo ?? 0, ...vals), Math.max(axis.hi ?? -Infinity, ...vals, 1e-9), 5);
    const lo = marks[0], hi = marks[marks.length - 1];
    const y = (v) => top + plotH - (plotH * (v - lo)) / (hi - lo);
    const side = a === 0 ? "left" : "right";
    const g = s("g", { class: `axis-y ${side}`, "data-axis": axis.name });
    for (const m of marks) {
      if (a === 0) g.append(s("line", { x1: left, x2: left + plotW, y1: y(m), y2: y(m), class: "grid" }));
      g.append(s("text", { x: a === 0 ? left - 6 : left + plotW + 6, y: y(m) + 4, class: "tick",
                           "text-anchor": a === 0 ? "end" : "start", "data-value": m }, axis.format(m)));
    }
    g.append(s("text", { x: a === 0 ? 0 : width, y: 11, class: "axis-title", "text-anchor": a === 0 ? "start" : "end" },
               axis.name));
    root.append(g);
    return y;
  });
  const n = Math.max(1, x.length - 1);
  const xAt = (i) => left + (plotW * i) / n;
  const gx = s("g", { class: "axis-x" }, s("line", { x1: left, x2: left + plotW, y1: top + plotH, y2: top + plotH, class: "axis" }));
  const every = Math.max(1, Math.ceil(x.length / Math.max(2, Math.floor(plotW / 90))));
  x.forEach((label, i) => {
    if (i % every && i !== x.length - 1) return;
    if (i !== x.length - 1 && x.length - 1 - i < every / 2) return;  // would overlap the last label
    const anchor = x.length === 1 ? "start" : i === 0 ? "start" : i === x.length - 1 ? "end" : "middle";
    gx.append(s("text", { x: xAt(i), y: top + plotH + 16, class: "tick", "text-anchor": anchor, "data-key": label },
                dayLabel(label)));
  });
  root.append(gx);
  series.forEach((ser, k) => {
    const y = scales[ser.axis || 0];
    const pts = ser.values.map((v, i) => (v == null ? null : `${xAt(i)},${y(v)}`)).filter(Boolean);
    root.append(s("polyline", { points: pts.join(" "), class: `line series-${k % 5}`,
                                "data-key": ser.name, "data-value": ser.values.reduce((a, b) => a + (b || 0), 0) }));
    if (x.length === 1) root.append(s("circle", { cx: xAt(0), cy: y(ser.values[0] ?? 0), r: 3, class: `dot series-${k % 5}` }));
  });
  // One invisible column per point: hovering shows that day's values.
  x.forEach((label, i) => {
    const text = series.map((ser) => `${ser.name}: ${ser.values[i] == null ? "–" : axes[ser.axis || 0].format(ser.values[i])}`);
    root.append(s("rect", { x: xAt(i) - plotW / n / 2, y: top, width: plotW / n, height: plotH, class: "hover" },
                  s("title", {}, `${label}\n${text.join("\n")}`)));
  });
  const key = h("ul", { class: "key" }, series.map((ser, k) => h("li", { "data-series": ser.name },
    h("span", { class: `swatch series-${k % 5}` }), ser.name,
    axes.length > 1 ? h("span", { class: "axis-note" }, ` (${(ser.axis || 0) ? "right" : "left"} axis)`) : "")));
  container.replaceChildren(root, key);
}
function stacked(container, rows) {
  // Rows of {key, parts: {A, B, C, D}} as 100% stacked horizontal bars.
  const width = widthOf(container);
  const rowH = 24, labelW = Math.min(120, width * 0.3);
  const root = s("svg", { viewBox: `0 0 ${width} ${Math.max(rowH, rows.length * rowH)}`, role: "img" });
  rows.forEach((r, i) => {
    const total = Object.values(r.parts).reduce((a, b) => a + b, 0) || 1;
    let x = labelW;
    root.append(s("text", { x: 0, y: i * rowH + 16, class: "label" }, r.key));
    for (const band of ["A", "B", "C", "D"]) {
      const v = r.parts[band] || 0;
      const w = ((width - labelW) * v) / total;
      root.append(s("rect", { x, y: i * rowH + 4, width: w, height: rowH - 8, class: "band-" + band,
                              "data-key": `${r.key}/${band}`, "data-value": v },
                    s("title", {}, `${r.key} band ${band}: ${fmt0.format(v)} (${pct(v / total)})`)));
      x += w;
    }
  });
  container.replaceChildren(rows.length ? root : h("p", { class: "empty" }, "no data"));
}

function table(node, head, rows, opts) {
  const o = opts || {};
  // A header is its text, or [text, tooltip].
  const thead = h("thead", {}, h("tr", {}, head.map((c) => (Array.isArray(c) ? h("th", { title: c[1] }, c[0]) : h("th", {}, c)))));
  const body = h("tbody", {}, rows.map((r) => h("tr", {
    class: o.onClick ? "clickable" + (o.selected === r.key ? " selected" : "") : null,
    "data-key": r.key, onclick: o.onClick ? () => o.onClick(r.key) : null,
  }, r.cells.map((c) => (c instanceof Node ? c : h("td", {}, c))))));
  node.replaceChildren(thead, body);
  if (!rows.length) node.append(h("tbody", {}, h("tr", {}, h("td", { class: "empty", colspan: head.length }, "nothing in this period"))));
}

const td = (value, text, cls) => h("td", { "data-value": value, class: cls || null }, text);
