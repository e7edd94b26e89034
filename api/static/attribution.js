// leadstream dashboard: the attribution panel (one model, or two side by side, by channel;
// click a channel for its campaigns). Uses the helpers of charts.js and dashboard.js, loaded before it.
// Each cell carries data-value with the number the API returned (tests/attribution).
"use strict";

const attr = { seq: 0, channel: null };
const ATTR_MODELS = [
  ["data_driven", "data-driven"], ["markov", "Markov chain"], ["first_touch", "first touch"],
  ["last_touch", "last touch"], ["last_non_direct", "last non-direct"], ["linear", "linear"],
  ["time_decay", "time decay"], ["position_based", "position-based 40/20/40"],
];

function attrCells(r, interval) {
  const cells = [
    td(r.share, pct(r.share), "share"), td(r.sql, fmt2.format(r.sql), "sql"),
    td(r.won, fmt2.format(r.won), "won"), td(r.revenue, money(r.revenue), "revenue"),
    td(r.cost_per_won ?? "", money(r.cost_per_won), "cpw"), td(r.roi ?? "", r.roi == null ? "–" : pct(r.roi), "roi"),
  ];
  if (interval !== undefined) {
    cells.push(td(interval ? interval.share : "", interval ? `${pct(interval.low)} – ${pct(interval.high)}` : "–", "interval"));
  }
  return cells;
}

function attrRows(body, rowsOf) {
  const a = new Map(rowsOf(body.model).map((r) => [r.key, r]));
  const b = body.compare ? new Map(rowsOf(body.compare).map((r) => [r.key, r])) : null;
  const keys = [...new Set([...a.keys(), ...(b ? b.keys() : [])])];
  const blank = (key) => ({ key, share: 0, sql: 0, won: 0, revenue: 0, cost_per_won: null, roi: null });
  const withIntervals = (view) => view.interval_level != null;
  const intervals = (view) => new Map((view.intervals.sql || []).map((i) => [i.channel, i]));
  const ia = withIntervals(body.model) ? intervals(body.model) : null;
  const ib = body.compare && withIntervals(body.compare) ? intervals(body.compare) : null;
  return keys.map((key) => {
    const ra = a.get(key) || blank(key);
    const cells = [td(key, key), ...attrCells(ra, ia ? ia.get(key) || null : undefined)];
    if (b) {
      const rb = b.get(key) || blank(key);
      cells.push(...attrCells(rb, ib ? ib.get(key) || null : undefined));
      cells.push(td(rb.share - ra.share, (rb.share - ra.share >= 0 ? "+" : "") + pct(rb.share - ra.share), "change"));
    }
    return { key, cells };
  });
}

function attrHead(body, first) {
  const one = (view) => {
    const cols = ["revenue share", "SQLs", "won", "revenue", "cost per won", "ROI"].map((c) => `${view.name}: ${c}`);
    if (view.interval_level != null) cols.push(`${view.name}: SQL share, ${Math.round(view.interval_level * 100)}% interval`);
    return cols;
  };
  return [first, ...one(body.model), ...(body.compare ? [...one(body.compare), "share change"] : [])];
}

function renderAttribution(body) {
  table($("#attr-table"), attrHead(body, "channel"), attrRows(body, (v) => v.channels),
    { onClick: drillAttribution, selected: attr.channel });
  const moves = body.moves.filter((m) => Math.abs(m.change) >= 0.005).slice(0, 3);
  $("#attr-moves").textContent = !body.compare ? "" : moves.length
    ? `Largest moves in revenue share from ${body.model.name} to ${body.compare.name}: ` +
      moves.map((m) => `${m.channel} ${pct(m.share_a)} → ${pct(m.share_b)}`).join("; ") + "."
    : `${body.model.name} and ${body.compare.name} agree within half a point on every channel.`;
  $("#attr-campaigns-wrap").hidden = !attr.channel;
  if (attr.channel) {
    $("#attr-campaigns-title").textContent = `Campaigns of ${attr.channel}`;
    table($("#attr-campaigns"), attrHead(body, "campaign"), attrRows(body, (v) => v.campaigns));
  }
}

async function loadAttribution() {
  const seq = ++attr.seq;
  const f = filters();
  const params = { start: f.start, end: f.end, model: $("#attr-model").value, compare: $("#attr-compare").value };
  if (attr.channel) params.channel = attr.channel;
  try {
    const body = await api("/api/v1/attribution", params);
    if (seq !== attr.seq) return;
    renderAttribution(body);
    $("#attribution-panel").dataset.loaded = String(seq);
  } catch (err) {
    if (seq === attr.seq) setStatus(err.message, true);
  }
}

function drillAttribution(channel) {
  attr.channel = attr.channel === channel ? null : channel;
  loadAttribution();
}

function setupAttribution() {
  const options = (extra) => [...extra, ...ATTR_MODELS.map(([v, label]) => h("option", { value: v }, label))];
  $("#attr-model").replaceChildren(...options([]));
  $("#attr-compare").replaceChildren(...options([h("option", { value: "" }, "nothing")]));
  $("#attr-model").addEventListener("change", loadAttribution);
  $("#attr-compare").addEventListener("change", loadAttribution);
  // the dashboard marks each completed load on <body>: follow its range and live updates
  new MutationObserver(loadAttribution).observe(document.body, { attributes: true, attributeFilter: ["data-loaded"] });
}

document.addEventListener("DOMContentLoaded", setupAttribution);
