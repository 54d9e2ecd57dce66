"use strict";
// The redblue page: reads the JSON API (or, in a shared report, a snapshot of its answers) and
// draws the leaderboard, the teams' equity and drawdown, and forecast against actual per symbol
// and model with the fills. Metric columns come from the API, so new metrics appear by themselves.

const SNAPSHOT = window.REDBLUE_SNAPSHOT || null;
const POLL_SECONDS = Number(document.querySelector('meta[name="redblue-poll"]')?.content || 0);
const NAMED_COLOURS = {
  red: "#d1343f", blue: "#1f6fb2", green: "#2a9d5b", orange: "#e08a1e", purple: "#7b52ab", baseline: "#8a94a3",
};
const PALETTE = ["#2a9d5b", "#e08a1e", "#7b52ab", "#17a2b8", "#c2185b", "#6d4c41", "#3f51b5", "#827717"];
// name: [label, decimals, style]; style "pct" shows a fraction in percent, "signed" adds a plus sign.
const COLUMNS = {
  mae: ["MAE", 4], rmse: ["RMSE", 4], mape: ["MAPE %", 3], rel_mae: ["rel MAE", 3], mase: ["MASE", 3], direction_pct: ["direction %", 2],
  final_equity: ["equity", 2], pnl: ["P&L", 2, "signed"], total_return: ["return %", 2, "signed pct"],
  sharpe: ["Sharpe", 2], max_drawdown: ["max DD %", 2, "pct"], trades: ["trades", 0], commission: ["fees", 2],
};

const state = { run: null, detail: null, board: null, sort: null, desc: false, stamp: null, colours: {} };
const $ = (id) => document.getElementById(id);

async function api(path) {
  if (SNAPSHOT) {
    if (!(path in SNAPSHOT.responses)) throw new Error(`not in this report: ${path}`);
    return SNAPSHOT.responses[path];
  }
  const response = await fetch(`api/${path}`, { cache: "no-store" });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function column(name) {
  const known = COLUMNS[name];
  if (known) return { label: known[0], decimals: known[1], style: known[2] || "" };
  const pvalue = /p_?value/.test(name);
  return { label: name.replace(/_/g, " "), decimals: pvalue ? 3 : null, style: "" };
}

function fmt(name, value) {
  if (value === null || value === undefined) return "–";
  const { decimals, style } = column(name);
  const shown = style.includes("pct") ? value * 100 : value;
  const digits = decimals === null ? (Math.abs(shown) >= 100 ? 2 : 4) : decimals;
  const text = shown.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  return style.includes("signed") && shown > 0 ? `+${text}` : text;
}

function colourOf(team) {
  if (!(team in state.colours)) {
    const used = Object.keys(state.colours).filter((t) => !(t in NAMED_COLOURS)).length;
    state.colours[team] = NAMED_COLOURS[team] || PALETTE[used % PALETTE.length];
  }
  return state.colours[team];
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

function memberCell(team, text) {
  return el("td", { class: "text" }, el("span", { class: "swatch", style: `background:${colourOf(team)}` }), text);
}

// --- the leaderboard ------------------------------------------------------------------------

function sortedRows() {
  const { rows } = state.board;
  const metric = state.board.metrics.find((m) => m.name === state.sort);
  const sign = state.desc ? -1 : 1;
  const value = (row) => row.values[state.sort];
  const ordered = [...rows].sort((a, b) => {
    const va = value(a), vb = value(b);
    if (va === null || vb === null) return (va === null) - (vb === null) || a.member.localeCompare(b.member);
    return sign * (va - vb) || (a.member < b.member ? -1 : 1);
  });
  let rank = 0, previous;
  return ordered.map((row, i) => {
    const v = value(row);
    if (v !== previous) rank = i + 1;
    previous = v;
    return { row, rank: v === null || !metric ? null : rank };
  });
}

const NARROW = window.matchMedia("(max-width: 640px)");

function drawBoard(changed = new Set()) {
  // On a phone the sorted column comes first, so it is visible without scrolling sideways.
  const metrics = [...state.board.metrics];
  if (NARROW.matches) metrics.sort((a, b) => (b.name === state.sort) - (a.name === state.sort));
  const head = el("tr", {}, el("th", {}, "#"), el("th", { class: "text" }, "team/model"), el("th", {}, "n"));
  for (const m of metrics) {
    const th = el("th", { "data-metric": m.name, title: m.lower_is_better ? "lower is better" : "higher is better" },
      column(m.name).label);
    if (m.name === state.sort) th.className = state.desc ? "sorted desc" : "sorted";
    th.addEventListener("click", () => sortBy(m));
    head.append(th);
  }
  const body = el("tbody");
  for (const { row, rank } of sortedRows()) {
    const tr = el("tr", { "data-member": row.member }, el("td", {}, rank === null ? "–" : String(rank)),
      memberCell(row.team, row.member), el("td", {}, String(row.count)));
    for (const m of metrics) {
      const v = row.values[m.name];
      const td = el("td", { "data-metric": m.name }, fmt(m.name, v));
      if (v !== null) td.dataset.value = String(v);
      else td.classList.add("none");
      if (m.name === state.sort) td.classList.add("sorted");
      tr.append(td);
    }
    if (changed.has(row.member)) tr.className = "flash";
    body.append(tr);
  }
  $("board").replaceChildren(el("thead", {}, head), body);
  $("sorted-by").textContent = column(state.sort).label;
}

function sortBy(metric) {
  if (state.sort === metric.name) state.desc = !state.desc;
  else [state.sort, state.desc] = [metric.name, !metric.lower_is_better];
  drawBoard();
}

// --- charts ---------------------------------------------------------------------------------

const CONFIG = { displayModeBar: false, responsive: true };

function layout(extra = {}) {
  return {
    margin: { l: 56, r: 12, t: 8, b: 36 }, font: { size: 12, family: "system-ui, sans-serif" },
    legend: { orientation: "h", y: -0.15 }, hovermode: "x unified", paper_bgcolor: "#fff", plot_bgcolor: "#fff",
    xaxis: { gridcolor: "#eef1f5" }, yaxis: { gridcolor: "#eef1f5", zerolinecolor: "#dde2ea" }, ...extra,
  };
}

async function drawTeams() {
  const teams = state.detail.arena.teams.map((t) => t.team);
  const details = await Promise.all(teams.map((t) => api(`runs/${state.run}/teams/${t}`)));
  const equity = details.map((d) => ({
    name: d.halted ? `${d.team} (HALTED: ${d.halted})` : d.team, x: d.equity.map((p) => p.date), y: d.equity.map((p) => p.equity), mode: "lines",
    line: { color: colourOf(d.team), width: 2 },
  }));
  const drawdown = details.map((d) => ({
    name: d.team, x: d.equity.map((p) => p.date), y: d.equity.map((p) => -100 * p.drawdown), mode: "lines",
    fill: "tozeroy", fillcolor: `${colourOf(d.team)}1f`, line: { color: colourOf(d.team), width: 1.5 },
  }));
  const cash = state.detail.arena.initial_cash;
  Plotly.react("equity", equity, layout({
    yaxis: { gridcolor: "#eef1f5", tickprefix: "$", separatethousands: true },
    shapes: [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: cash, y1: cash, line: { color: "#aab2bf", dash: "dot" } }],
  }), CONFIG);
  Plotly.react("drawdown", drawdown, layout({ yaxis: { gridcolor: "#eef1f5", ticksuffix: " %" } }), CONFIG);
}

function fillSelectors() {
  const symbols = state.detail.arena.symbols;
  const keep = (select, values, fallback) => {
    const current = select.value;
    select.replaceChildren(...values.map(([value, text]) => el("option", { value }, text)));
    select.value = values.some(([v]) => v === current) ? current : fallback;
  };
  keep($("symbol"), symbols.map((s) => [s.symbol, `${s.symbol} · ${s.name}`]), symbols[0]?.symbol);
  const symbol = $("symbol").value;
  const models = state.detail.models.filter((m) => m.symbols.includes(symbol)).map((m) => `${m.team}/${m.model}`);
  const first = state.detail.arena.teams[0];
  const preferred = first ? `${first.team}/${first.trading_model}` : models[0];
  keep($("model"), models.map((m) => [m, m]), models.includes(preferred) ? preferred : models[0]);
}

let forecastCalls = 0;  // the newest drawForecast: an older one answered later must not paint over it

async function drawForecast() {
  const symbol = $("symbol").value, member = $("model").value;
  if (!symbol || !member) return;
  const call = ++forecastCalls;
  const [team, model] = member.split("/");
  const [prices, series] = await Promise.all([
    api(`runs/${state.run}/symbols/${symbol}`), api(`runs/${state.run}/series/${team}/${model}/${symbol}`),
  ]);
  if (call !== forecastCalls) return;  // the symbol or model changed while this call waited
  const traces = [
    { name: `${symbol} close`, x: prices.closes.map((p) => p.date), y: prices.closes.map((p) => p.close),
      mode: "lines", line: { color: "#2b3340", width: 1.8 } },
    { name: `${member} forecast`, x: series.points.map((p) => p.target), y: series.points.map((p) => p.predicted),
      mode: "lines", line: { color: colourOf(team), width: 1.6, dash: "dash" } },
  ];
  for (const t of state.detail.arena.teams) {
    const trades = prices.trades.filter((f) => f.team === t.team);
    if (!trades.length) continue;
    traces.push({
      name: `${t.team} trades`, x: trades.map((f) => f.date), y: trades.map((f) => f.price), mode: "markers",
      text: trades.map((f) => `${t.team} ${f.side} ${f.quantity} @ ${f.price.toFixed(2)}`), hoverinfo: "text",
      marker: { symbol: trades.map((f) => (f.side === "buy" ? "triangle-up" : "triangle-down")), size: 10,
        color: colourOf(t.team), line: { color: "#fff", width: 1 } },
    });
  }
  const first = series.points[0]?.target, last = prices.closes.at(-1)?.date;
  const xaxis = { gridcolor: "#eef1f5", ...(first && last ? { range: [first, last] } : {}) };
  Plotly.react("forecast", traces, layout({ xaxis, yaxis: { gridcolor: "#eef1f5", tickprefix: "$" } }), CONFIG);
}

// --- tables and facts -------------------------------------------------------------------------

function drawLatest(latest) {
  const head = el("tr", {}, ...["team/model", "symbol", "version", "as of", "for", "forecast", "last close", "change %"]
    .map((t, i) => el("th", { class: i < 5 ? "text" : "" }, t)));
  const rows = latest.forecasts.map((f) => el("tr", {}, memberCell(f.team, `${f.team}/${f.model}`),
    el("td", { class: "text" }, f.symbol), el("td", { class: "text" }, f.model_version),
    el("td", { class: "text" }, f.as_of), el("td", { class: "text" }, f.target),
    el("td", {}, f.predicted_close.toFixed(2)), el("td", {}, f.last_close.toFixed(2)),
    el("td", {}, fmt("total_return", f.predicted_close / f.last_close - 1))));
  $("latest").replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
}

function drawFacts() {
  const d = state.detail;
  const lastBar = Object.values(d.progress.bars).sort().at(-1);
  const facts = [
    ["arena", d.arena.name], ["kind", d.kind],
    ["period", d.start ? `${d.start} – ${d.last_target} (${d.days} trading days)` : null],
    ["symbols", d.arena.symbols.map((s) => s.symbol).join(", ")],
    ["teams", d.arena.teams.map((t) => `${t.team} (trades ${t.trading_model})`).join(", ")],
    ["last bar", lastBar], ["started", d.started_at?.slice(0, 19).replace("T", " ")],
    ["finished", d.finished_at?.slice(0, 19).replace("T", " ")], ["error", d.error],
  ];
  $("facts").replaceChildren(...facts.filter(([, v]) => v).map(([k, v]) => el("span", {}, `${k} `, el("b", {}, v))));
  $("status").textContent = d.status;
  $("status").className = `badge ${d.status}`;
}

// --- loading and live updates -----------------------------------------------------------------

async function loadRun(run) {
  state.run = run;
  state.detail = await api(`runs/${run}`);
  state.colours = {};
  for (const t of state.detail.arena.teams) colourOf(t.team);
  if (!SNAPSHOT) history.replaceState(null, "", `?run=${encodeURIComponent(run)}`);
  fillSelectors();
  await refresh(true);
}

async function refresh(first = false) {
  const board = await api(`runs/${state.run}/leaderboard?by=mase`);
  const before = new Map((state.board?.rows || []).map((r) => [r.member, JSON.stringify(r.values)]));
  const changed = new Set(first ? [] : board.rows.filter((r) => before.get(r.member) !== JSON.stringify(r.values))
    .map((r) => r.member));
  state.board = board;
  state.stamp = board.progress.stamp;
  if (first || !board.metrics.some((m) => m.name === state.sort)) [state.sort, state.desc] = [board.by, !board.lower_is_better];
  if (!first) state.detail = await api(`runs/${state.run}`);
  drawFacts();
  drawBoard(changed);
  const [latest, original] = await Promise.all([api(`runs/${state.run}/forecasts/latest`), api(`runs/${state.run}/original`)]);
  drawLatest(latest);
  $("original").textContent = original.text;
  await Promise.all([drawTeams(), drawForecast()]);
  $("updated").textContent = SNAPSHOT ? `report of ${SNAPSHOT.written_at}` : `updated ${new Date().toLocaleTimeString()}`;
  document.body.dataset.stamp = state.stamp;
}

async function poll() {
  try {
    const progress = await api(`runs/${state.run}/progress`);
    if (progress.stamp !== state.stamp) await refresh();
    $("error").hidden = true;
  } catch (err) {
    showError(err);
  } finally {
    setTimeout(poll, POLL_SECONDS * 1000);
  }
}

function showError(err) {
  $("error").textContent = String(err.message || err);
  $("error").hidden = false;
}

async function main() {
  const runs = await api("runs");
  const wanted = new URLSearchParams(location.search).get("run");
  const select = $("run");
  select.replaceChildren(...runs.map((r) => el("option", { value: r.run },
    `${r.run} · ${r.status}${r.arena ? ` · ${r.arena}` : ""}`)));
  if (!runs.length) throw new Error("no runs yet: run a simulation (make demo) or a season's scorer");
  select.value = runs.some((r) => r.run === wanted) ? wanted : runs[0].run;
  select.addEventListener("change", () => loadRun(select.value).catch(showError));
  $("symbol").addEventListener("change", () => { fillSelectors(); drawForecast().catch(showError); });
  $("model").addEventListener("change", () => drawForecast().catch(showError));
  select.disabled = Boolean(SNAPSHOT);
  $("original-block").open = Boolean(SNAPSHOT);  // a shared report shows the original project's blocks
  await loadRun(select.value);
  document.body.dataset.ready = "1";
  if (!SNAPSHOT && POLL_SECONDS > 0) setTimeout(poll, POLL_SECONDS * 1000);
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", () => main().catch(showError));
else main().catch(showError);
