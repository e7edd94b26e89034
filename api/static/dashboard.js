// leadstream dashboard: vanilla JavaScript and SVG, no external assets.
// Every chart element carries data-key / data-value with the number the API returned,
// so what is drawn can be checked against the API (tests/dashboard).
"use strict";

const state = { refreshS: 5, watermark: null, options: null, timer: null, seq: 0, insights: false };

async function api(path, params) {
  const url = new URL(path, window.location.origin);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== "" && v !== null && v !== undefined) url.searchParams.set(k, v);
  }
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new Error(`${response.status} ${path}: ${JSON.stringify(body.detail ?? body)}`);
  }
  return response.json();
}

function filters() {
  const out = {};
  for (const [k, v] of new FormData($("#filters"))) if (v) out[k] = v;
  return out;
}

function setStatus(text, error) {
  const node = $("#status");
  node.textContent = text;
  node.classList.toggle("error", Boolean(error));
}


// -- views ---------------------------------------------------------------------------

const KPIS = [
  ["leads", "Leads", fmt0.format, 1], ["mql", "MQL", fmt0.format, 1], ["sql", "SQL", fmt0.format, 1],
  ["won", "Won", fmt0.format, 1], ["revenue", "Revenue", money, 1], ["spend", "Spend", money, 0],
  ["cpl", "Cost per lead", (v) => (v == null ? "–" : fmt2.format(v)), -1],
  ["cpa", "Cost per won deal", money, -1], ["roas", "ROAS", (v) => (v == null ? "–" : fmt2.format(v) + "×"), 1],
  ["mean_score", "Mean score", (v) => (v == null ? "–" : v.toFixed(3)), 1],
];

function renderKpis(k) {
  const cards = KPIS.map(([name, label, show, goodWhenUp]) => {
    const v = k.current[name], c = k.change[name];
    const dir = c == null || c === 0 ? "flat" : (c > 0) === (goodWhenUp > 0) ? "up" : "down";
    const arrow = c == null ? "no previous data" : `${c > 0 ? "▲" : c < 0 ? "▼" : "="} ${pct(Math.abs(c))} vs previous`;
    return h("div", { class: "kpi", id: "kpi-" + name, "data-kpi": name, "data-value": v ?? "" },
      h("div", { class: "name" }, label), h("div", { class: "value" }, show(v)),
      h("div", { class: "change " + (goodWhenUp === 0 ? "flat" : dir) }, arrow));
  });
  $("#kpis").replaceChildren(...cards);
  // Two units, two axes: leads (a count) on the left, spend (money) on the right.
  lines($("#trend"), {
    x: k.daily.map((d) => d.day),
    axes: [{ name: "leads", format: compact.format }, { name: "spend", format: compact.format }],
    series: [
      { name: "leads per day", axis: 0, values: k.daily.map((d) => d.leads) },
      { name: "spend per day", axis: 1, values: k.daily.map((d) => d.spend) },
    ],
  });
}

const STAGE_LABEL = { leads: "Leads", mql: "MQL", sql: "SQL", opportunity: "Opportunity", won: "Won" };

function renderFunnel(f) {
  barsH($("#funnel"), f.stages.map((st) => ({
    key: st.stage, label: STAGE_LABEL[st.stage], value: st.leads,
    text: fmt0.format(st.leads) + (st.rate_from_previous == null ? "" : ` · ${pct(st.rate_from_previous)}`) +
      (st.median_days_from_previous == null ? "" : ` · ${st.median_days_from_previous} d`),
  })));
}

function renderQuality(q) {
  columns($("#histogram"), q.histogram.map((b, i) => ({
    key: String(i), value: b.leads, label: `${b.low.toFixed(2)}–${b.high.toFixed(2)}`,
  })));
  const by = new Map();
  for (const r of q.bands_by_channel) {
    if (!by.has(r.channel)) by.set(r.channel, {});
    by.get(r.channel)[r.band] = r.leads;
  }
  stacked($("#bands"), [...by.entries()].map(([key, parts]) => ({ key, parts })));
}

function roiCells(r) {
  return [
    td(r.key, r.key), td(r.leads, fmt0.format(r.leads)), td(r.won, fmt0.format(r.won)),
    td(r.spend, money(r.spend)), td(r.revenue, money(r.revenue)), td(r.cpl ?? "", r.cpl == null ? "–" : fmt2.format(r.cpl)),
    td(r.cpa ?? "", money(r.cpa)), td(r.roas ?? "", r.roas == null ? "–" : fmt2.format(r.roas) + "×"),
    td(r.roi ?? "", r.roi == null ? "–" : pct(r.roi)),
  ];
}
const ROI_HEAD = ["", "leads", "won", "spend", "revenue", "CPL", "CPA", "ROAS", "ROI"];

function renderRoi(rows) {
  const channel = filters().channel;
  barsH($("#roi-chart"), rows.map((r) => ({
    key: r.key, label: r.key, value: r.revenue, text: `revenue ${money(r.revenue)} · spend ${money(r.spend)}`,
  })), { onClick: drillChannel });
  table($("#roi"), ROI_HEAD.map((c, i) => (i ? c : "channel")), rows.map((r) => ({ key: r.key, cells: roiCells(r) })),
    { onClick: drillChannel, selected: channel });
}

function renderCampaigns(rows) {
  const f = filters();
  $("#campaigns-title").firstChild.textContent = `Campaigns of ${f.channel} `;
  table($("#campaigns"), ROI_HEAD.map((c, i) => (i ? c : "campaign")), rows.map((r) => ({ key: r.key, cells: roiCells(r) })),
    { onClick: drillCampaign, selected: f.campaign_id });
}

function renderLeads(rows) {
  $("#leads-title").textContent = `Leads of ${filters().campaign_id} (best scores first; no personal data)`;
  table($("#leads"), ["lead", "created", "score", "band", "stage", "segment", "why"], rows.map((r) => ({
    key: r.lead_id, cells: [
      td(r.lead_id, r.lead_id), td(r.created_at, r.created_at.slice(0, 16).replace("T", " ")),
      td(r.score ?? "", r.score == null ? "–" : r.score.toFixed(3)), td(r.band, r.band), td(r.stage, r.stage),
      td("", [r.industry, r.country, r.size_bucket, r.seniority].filter(Boolean).join(" · ")),
      h("td", { class: "text" }, r.reasons.slice(0, 3).map((x) => x.text || x.feature).join("; ")),
    ],
  })));
}

function renderCohorts(rows) {
  table($("#cohorts"), ["week", "leads", "MQL", "SQL", "won", "revenue", "MQL rate", "SQL rate", "won rate"],
    rows.map((r) => ({ key: r.week, cells: [
      td(r.week, r.week), td(r.leads, fmt0.format(r.leads)), td(r.mql, fmt0.format(r.mql)), td(r.sql, fmt0.format(r.sql)),
      td(r.won, fmt0.format(r.won)), td(r.revenue, money(r.revenue)), td(r.mql_rate ?? "", pct(r.mql_rate)),
      td(r.sql_rate ?? "", pct(r.sql_rate)), td(r.won_rate ?? "", pct(r.won_rate)),
    ] })));
}

function renderAnomalies(rows) {
  table($("#anomalies"), ["when", "what", "value", "expected", "severity"], rows.slice(0, 100).map((r) => ({
    key: r.anomaly_id, cells: [
      td(r.window_start, r.window_start.slice(0, 16).replace("T", " ")),
      h("td", { class: "text" }, r.description || `${r.kind} ${r.series}`),
      td(r.value, fmt2.format(r.value)), td(r.expected, `${fmt2.format(r.expected_low)}–${fmt2.format(r.expected_high)}`),
      td(r.severity, (r.opportunity ? "opportunity · " : "") + r.severity, "sev-" + r.severity),
    ],
  })));
}

// The model table's AUC is the learner's own: each example scored before it is learned.
// The AUC of the scores sales tools received (cold-start ones included) is another number,
// leadstream_published_scores_roc_auc on /metrics; the caption says so.
const AUC_READING = "0.5 is chance, 1.0 ranks every converter first";
const MODEL_HEAD = [
  "model", "role", "version",
  ["scope", "rolling: over the latest labelled leads (the learner's window); overall: since the model started"],
  "examples",
  ["learner's prequential AUC", `test-then-train ROC AUC: each labelled lead scored before the model learns it; ${AUC_READING}`],
  ["log loss", "lower is better"], ["Brier", "lower is better"],
];

function renderModel(m) {
  const rolling = m.metrics.filter((r) => r.scope === "rolling" && r.auc != null).reverse();
  const names = [...new Set(rolling.map((r) => r.model_name))];
  lines($("#model"), {
    x: rolling.filter((r) => r.model_name === names[0]).map((r) => String(r.recorded_at).slice(0, 16).replace("T", " ")),
    axes: [{ name: "AUC", format: (v) => v.toFixed(2), lo: 0.5, hi: 1 }],
    series: names.map((name) => ({
      name: `${name}: learner's rolling (prequential) AUC`, axis: 0,
      values: rolling.filter((r) => r.model_name === name).map((r) => r.auc),
    })),
  });
  const p = m.published || { examples: 0, positives: 0, auc: null };  // an answer cached before it existed
  const published = $("#model-published");
  published.dataset.value = p.auc ?? "";
  published.dataset.examples = p.examples;
  published.textContent = "Published scores' AUC against outcomes: " + (p.auc == null
    ? `not yet (${fmt0.format(p.examples)} labelled leads, ${fmt0.format(p.positives)} converted; it needs both outcomes)`
    : `${p.auc.toFixed(3)} over ${fmt0.format(p.examples)} labelled leads (${fmt0.format(p.positives)} converted)`);
  published.title = AUC_READING;
  const latest = new Map();
  for (const r of m.metrics) if (!latest.has(r.model_name + r.scope)) latest.set(r.model_name + r.scope, r);
  table($("#model-table"), MODEL_HEAD,
    [...latest.values()].map((r) => ({ key: r.model_name + "/" + r.scope, cells: [
      td(r.model_name, r.model_name), td(r.role, r.role), td(r.model_version, r.model_version), td(r.scope, r.scope),
      td(r.examples, fmt0.format(r.examples)), td(r.auc ?? "", r.auc == null ? "–" : r.auc.toFixed(3)),
      td(r.logloss ?? "", r.logloss == null ? "–" : r.logloss.toFixed(3)), td(r.brier ?? "", r.brier == null ? "–" : r.brier.toFixed(3)),
    ] })));
}

function renderInsights(report) {
  const rows = (report.segments || []).slice(0, 15);
  table($("#insights"), ["segment", "leads", "converted", "rate", "lift", "vs base"], rows.map((x) => ({
    key: x.fields.map((f, i) => `${f}=${x.values[i]}`).join(" & "),
    cells: [
      h("td", { class: "text" }, x.fields.map((f, i) => `${f} = ${x.values[i]}`).join(" & ")),
      td(x.leads, fmt0.format(x.leads)), td(x.conversions, fmt0.format(x.conversions)),
      td(x.rate, pct(x.rate)), td(x.lift, fmt2.format(x.lift) + "×"),
      td(x.direction, x.direction, x.direction === "higher" ? "up" : "down"),
    ],
  })));
}

async function loadInsights(f, seq) {
  // On request only: the segment analysis runs statistical tests over every lead.
  $("#insights").replaceChildren(h("caption", { class: "empty" }, "analysing…"));
  try {
    const report = await api("/api/v1/insights", f);
    if (seq === state.seq) renderInsights(report);
  } catch (err) {
    if (seq === state.seq) $("#insights").replaceChildren(h("caption", { class: "empty" }, err.message));
  }
}

function effectText(e, unit, format) {
  const signed = (v) => (v >= 0 ? "+" : "") + format(v);
  return `${signed(e.mean)} ${unit} (80%: ${signed(e.low)} to ${signed(e.high)})`;
}

// A probability that never claims certainty, as the report words it.
const chance = (p) => (p > 0.99 ? ">99%" : p < 0.01 ? "<1%" : Math.round(p * 100) + "%");

function renderRecommendations(r) {
  // The API's own sentences; the numbers ride along as data attributes.
  $("#recommend-summary").textContent = r.summary;
  $("#recommend-summary").dataset.period = `${r.period_start}/${r.period_end}`;
  const stage = r.stage.toUpperCase() + "s";
  $("#recommend-moves").replaceChildren(...r.moves.map((m) => h("li", {
    "data-key": `${m.source}>${m.target}`, "data-amount": m.amount,
    // Revenue is null while no cohort is old enough for its won revenue to count.
    "data-conversions": m.conversions.mean, "data-revenue": m.revenue?.mean ?? "",
    "data-confidence": (m.revenue ?? m.conversions).probability_positive,
  }, h("span", { class: "text" }, m.text), h("span", { class: "detail" },
    ` Effect: ${effectText(m.conversions, stage, fmt2.format)}, `
    + (m.revenue ? effectText(m.revenue, r.currency, fmt0.format) : "revenue not estimated yet")
    + ` · confidence ${chance((m.revenue ?? m.conversions).probability_positive)}`))));
  $("#recommend-segments").replaceChildren(...r.segments.map((x) => h("li", {
    "data-key": x.segment, "data-value": x.rate, class: x.direction === "higher" ? "up" : "down",
  }, x.text)));
  if (!r.segments.length) {
    $("#recommend-segments").replaceChildren(h("li", { class: "empty" }, "no lead segment converts clearly better or worse yet"));
  }
  if (!r.moves.length) {
    $("#recommend-moves").replaceChildren(h("li", { class: "empty" }, "not enough data for budget moves yet"));
  }
}

async function loadRecommendations(seq) {
  // Apart from the views: the first computation (posterior draws) takes a moment.
  try {
    const r = await api("/api/v1/recommendations", { period: $("#recommend-period").value });
    if (seq !== state.seq) return;
    renderRecommendations(r);
    document.body.dataset.recommended = String(seq);
  } catch (err) {
    if (seq === state.seq) {
      $("#recommend-summary").textContent = err.message;
      $("#recommend-moves").replaceChildren();
      $("#recommend-segments").replaceChildren();
    }
  }
}

// -- drill-down and filters ------------------------------------------------------------

function setSelect(name, value) {
  const select = document.querySelector(`#filters [name="${name}"]`);
  if (value && ![...select.options].some((o) => o.value === value)) select.append(h("option", { value }, value));
  select.value = value || "";
}

function fillCampaigns() {
  const channel = filters().channel;
  const current = filters().campaign_id;
  const all = state.options ? state.options.channels : {};
  const campaigns = channel ? all[channel] || [] : Object.values(all).flat().sort();
  const select = $('#filters [name="campaign_id"]');
  select.replaceChildren(h("option", { value: "" }, "all"), ...campaigns.map((c) => h("option", { value: c }, c)));
  select.value = campaigns.includes(current) ? current : "";
}

function drillChannel(channel) {
  setSelect("channel", channel);
  fillCampaigns();
  setSelect("campaign_id", "");
  loadAll();
}

function drillCampaign(campaign) {
  setSelect("campaign_id", campaign);
  loadAll();
}

function renderCrumbs() {
  const f = filters();
  const parts = [h("a", { onclick: () => { setSelect("channel", ""); fillCampaigns(); loadAll(); } }, "All channels")];
  if (f.channel) parts.push(" › ", h("a", { onclick: () => drillChannel(f.channel) }, f.channel));
  if (f.campaign_id) parts.push(" › ", h("span", {}, f.campaign_id));
  $("#crumbs").replaceChildren(...parts);
}

async function loadAll() {
  const seq = ++state.seq;
  const f = filters();
  renderCrumbs();
  setStatus("loading…");
  const base = { ...f };
  delete base.campaign_id;  // ROI by channel shows every campaign of the channel
  const jobs = {
    kpis: api("/api/v1/kpis", f), funnel: api("/api/v1/funnel", f), quality: api("/api/v1/lead-quality", f),
    roi: api("/api/v1/roi", { ...base, by: "channel" }), cohorts: api("/api/v1/cohorts", f),
    anomalies: api("/api/v1/anomalies", f), model: api("/api/v1/model-health", f),
  };
  loadRecommendations(seq);
  if (f.channel) jobs.campaigns = api(`/api/v1/channels/${encodeURIComponent(f.channel)}/campaigns`, base);
  if (f.campaign_id) jobs.leads = api(`/api/v1/campaigns/${encodeURIComponent(f.campaign_id)}/leads`, { ...f, limit: 50 });
  try {
    const names = Object.keys(jobs);
    const values = await Promise.all(Object.values(jobs));
    if (seq !== state.seq) return;  // a newer load started meanwhile
    const r = Object.fromEntries(names.map((n, i) => [n, values[i]]));
    renderKpis(r.kpis); renderFunnel(r.funnel); renderQuality(r.quality); renderRoi(r.roi);
    renderCohorts(r.cohorts); renderAnomalies(r.anomalies); renderModel(r.model);
    $("#campaigns-panel").hidden = !r.campaigns;
    if (r.campaigns) renderCampaigns(r.campaigns);
    $("#leads-panel").hidden = !r.leads;
    if (r.leads) renderLeads(r.leads);
    document.body.dataset.loaded = String(seq);
    if (state.insights) loadInsights(f, seq);
    setStatus(`updated ${new Date().toLocaleTimeString()} · live every ${state.refreshS} s`);
  } catch (err) {
    if (seq === state.seq) setStatus(err.message, true);
  }
}

async function checkLive() {
  try {
    const { watermark } = await api("/api/v1/watermark");
    if (watermark !== state.watermark) {
      state.watermark = watermark;
      state.options = await api("/api/v1/options");
      await loadAll();
    }
  } catch (err) {
    setStatus(err.message, true);
  }
}

function fillOptions() {
  const o = state.options;
  setSelect("channel", filters().channel);
  const chan = $('#filters [name="channel"]');
  const current = chan.value;
  chan.replaceChildren(h("option", { value: "" }, "all"), ...Object.keys(o.channels).map((c) => h("option", { value: c }, c)));
  chan.value = current;
  for (const [name, values] of Object.entries(o.segments)) {
    const select = document.querySelector(`#filters [name="${name}"]`);
    if (!select) continue;
    select.replaceChildren(h("option", { value: "" }, "all"), ...values.map((v) => h("option", { value: v }, v)));
  }
  fillCampaigns();
}

function defaultDates(days) {
  const o = state.options;
  const end = o.last_day ? new Date(o.last_day + "T00:00:00Z") : new Date();
  const start = new Date(end.getTime() - (days - 1) * 86400000);
  $('#filters [name="end"]').value = end.toISOString().slice(0, 10);
  $('#filters [name="start"]').value = start.toISOString().slice(0, 10);
}

async function main() {
  try {
    const cfg = await api("/api/v1/config");
    state.refreshS = cfg.refresh_s;
    state.watermark = (await api("/api/v1/watermark")).watermark;
    state.options = await api("/api/v1/options");
    fillOptions();
    defaultDates(cfg.default_days);
    $("#filters").addEventListener("change", (e) => {
      if (e.target.name === "channel") fillCampaigns();
      loadAll();
    });
    $("#filters").addEventListener("reset", () => setTimeout(() => {
      defaultDates(cfg.default_days); fillCampaigns(); loadAll();
    }, 0));
    $("#recommend-period").addEventListener("change", () => loadRecommendations(state.seq));
    $("#insights-run").addEventListener("click", () => {
      state.insights = true;
      loadInsights(filters(), state.seq);
    });
    await loadAll();
    state.timer = setInterval(checkLive, state.refreshS * 1000);
  } catch (err) {
    setStatus(err.message, true);
  }
}

document.addEventListener("DOMContentLoaded", main);
