// The loop dashboard: polls /dashboard/series.json and redraws with plotly.js (served by the worker).
// In a demo report the series are embedded in the page (#embedded-series) and nothing is fetched.
"use strict";

(function () {
  const REFRESH_MS = 2000;
  const TOKEN_KEY = "labelloop.operator.token";
  const COLORS = ["#2f6fed", "#f79009", "#12b76a", "#7a5af8", "#ee46bc", "#0ba5ec"];
  const LAG_COLORS = ["#475467", "#98a2b3", "#1d2939", "#667085", "#344054", "#d0d5dd"];
  const ALERT_COLOR = "#d92d20";
  const embedded = document.getElementById("embedded-series");
  const report = embedded !== null;
  const $ = (id) => document.getElementById(id);
  let lastOk = 0;
  let drawn = false;

  const layoutBase = {
    margin: { l: 48, r: 12, t: 8, b: 28 },
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "rgba(0,0,0,0)",
    font: { family: "system-ui, sans-serif", size: 11, color: "#1d2330" },
    xaxis: { type: "date", gridcolor: "#eaecf0", linecolor: "#d0d5dd", tickformat: "%H:%M:%S", hoverformat: "%H:%M:%S" },
    yaxis: { gridcolor: "#eaecf0", zeroline: false, rangemode: "tozero" },
    legend: { orientation: "h", y: 1.12, x: 0, font: { size: 10 } },
    showlegend: true,
    hovermode: "x unified",
  };
  const config = { displaylogo: false, responsive: true, displayModeBar: false };

  function text(id, value) { $(id).textContent = value; }
  function fmt(value, digits) { return value === null || value === undefined ? "–" : Number(value).toFixed(digits); }
  function last(values) {
    for (let i = values.length - 1; i >= 0; i -= 1) { if (values[i] !== null && values[i] !== undefined) return values[i]; }
    return null;
  }

  function alertShapes(series) {
    return series.alerts.map((alert) => ({
      type: "line", xref: "x", yref: "paper", x0: alert.t, x1: alert.t, y0: 0, y1: 1,
      line: { color: ALERT_COLOR, width: 1.5, dash: "dash" },
    }));
  }
  function alertNotes(series) {
    return series.alerts.map((alert) => ({
      // Vertical, beside its line and inside the plot: clear of the legend above it.
      x: alert.t, xref: "x", y: 1, yref: "paper", yanchor: "top", xanchor: "right", textangle: -90,
      showarrow: false, text: "drift: " + alert.signal.replace("_", " "), font: { size: 9, color: ALERT_COLOR },
    }));
  }

  function draw(id, traces, series, extra) {
    const layout = Object.assign({}, layoutBase, extra || {});
    layout.xaxis = Object.assign({}, layoutBase.xaxis, (extra || {}).xaxis || {});
    layout.yaxis = Object.assign({}, layoutBase.yaxis, (extra || {}).yaxis || {});
    layout.shapes = alertShapes(series);
    layout.annotations = alertNotes(series);
    if (traces.length === 0) {
      layout.annotations = layout.annotations.concat([{ text: "no data yet", showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5, font: { color: "#667085" } }]);
    }
    Plotly.react($(id), traces, layout, config);
  }

  function line(name, x, y, color, options) {
    return Object.assign({ type: "scatter", mode: "lines", name: name, x: x, y: y, line: { color: color, width: 2 }, connectgaps: false }, options || {});
  }
  function band(name, x, lower, upper, color) {
    // The upper bound, then the lower bound filled up to it: one shaded interval.
    return [
      { type: "scatter", mode: "lines", x: x, y: upper, line: { width: 0 }, hoverinfo: "skip", showlegend: false, legendgroup: name },
      { type: "scatter", mode: "lines", x: x, y: lower, line: { width: 0 }, fill: "tonexty", fillcolor: color + "33", hoverinfo: "skip", name: name + " interval", legendgroup: name },
    ];
  }

  function render(series) {
    const t = series.t;
    const pools = Object.keys(series.pools);
    const rate = [], backlog = [], workers = [];
    pools.forEach((name, i) => {
      const pool = series.pools[name];
      const color = COLORS[i % COLORS.length];
      rate.push(line(name + " queue rate", t, pool.queue_rate_per_min, color));
      rate.push(line(name + " capacity", t, pool.capacity_per_min, color, { line: { color: color, width: 2, dash: "dot" } }));
      backlog.push(line(name, t, pool.backlog, color));
      workers.push(line(name, t, pool.workers, color, { line: { color: color, width: 2, shape: "hv" } }));
    });
    if (series.target_backlog.some((v) => v !== null)) {
      backlog.push(line("target", t, series.target_backlog, "#98a2b3", { line: { color: "#98a2b3", width: 1.5, dash: "dash" } }));
    }
    draw("chart-rate", rate, series);
    draw("chart-backlog", backlog, series);
    draw("chart-workers", workers, series);
    draw("chart-share", [line("share of decisions reviewed by humans", t, series.human_share, COLORS[0])], series,
      { yaxis: { tickformat: ".0%", rangemode: "tozero" } });

    const estimates = [];
    let colorIndex = 0;
    Object.entries(series.precision).forEach(([task, bounds]) => {
      const color = COLORS[colorIndex++ % COLORS.length];
      estimates.push(...band("precision " + task, t, bounds.lower, bounds.upper, color));
      estimates.push(line("auto-accept precision (" + task + ")", t, bounds.estimate, color));
    });
    draw("chart-estimates", estimates, series, { yaxis: { tickformat: ".0%", range: [0, 1.02] } });
    const recall = [];
    Object.entries(series.recall).forEach(([name, bounds]) => {
      const color = COLORS[(colorIndex++ + 1) % COLORS.length];
      const [task, klass] = name.split("/");
      recall.push(...band(klass + " (" + task + ")", t, bounds.lower, bounds.upper, color));
      recall.push(line(klass + " (" + task + ")", t, bounds.estimate, color));
    });
    draw("chart-recall", recall, series, { yaxis: { tickformat: ".0%", range: [0, 1.02] } });

    const accuracy = [];
    Object.entries(series.online_accuracy).forEach(([task, windows], i) => {
      const color = COLORS[(i + 2) % COLORS.length];
      accuracy.push(line("prequential (" + task + ")", t, windows.prequential, color));
      accuracy.push(line("rolling (" + task + ")", t, windows.rolling, color, { line: { color: color, width: 1.5, dash: "dot" } }));
    });
    draw("chart-accuracy", accuracy, series, { yaxis: { tickformat: ".0%", range: [0, 1.02] } });

    const dlq = [{ type: "bar", name: "DLQ records / min", x: t, y: series.dlq_per_min, marker: { color: ALERT_COLOR } }];
    // The total lag, and the three topics that lagged most (a legend of every topic hides the plot).
    const lags = Object.entries(series.consumer_lag);
    const peak = (values) => Math.max(0, ...values.filter((v) => v !== null));
    if (lags.length) {
      const totalLag = t.map((_, i) => lags.reduce((sum, [, values]) => sum + (values[i] || 0), 0));
      dlq.push(line("lag, all topics", t, totalLag, LAG_COLORS[0], { yaxis: "y2", line: { color: LAG_COLORS[0], width: 2 } }));
      lags.filter(([, values]) => peak(values) > 0).sort((a, b) => peak(b[1]) - peak(a[1])).slice(0, 3).forEach(([topic, values], i) => {
        const color = LAG_COLORS[(i + 1) % LAG_COLORS.length];
        dlq.push(line("lag " + topic, t, values, color, { yaxis: "y2", line: { color: color, width: 1, dash: "dot" } }));
      });
    }
    draw("chart-dlq", dlq, series, {
      yaxis: { title: { text: "DLQ / min", font: { size: 10 } }, rangemode: "tozero", gridcolor: "#eaecf0" },
      yaxis2: { title: { text: "lag (records)", font: { size: 10 } }, overlaying: "y", side: "right", rangemode: "tozero", showgrid: false },
      bargap: 0,
      margin: { l: 48, r: 52, t: 8, b: 28 },
    });

    const ttl = [];
    const SOURCE_COLORS = { model: "#98a2b3", crowd: COLORS[1], expert: COLORS[3] };
    Object.entries(series.time_to_label_s || {}).forEach(([source, quantiles]) => {
      const color = SOURCE_COLORS[source] || COLORS[0];
      ttl.push(line(source + " p95", t, quantiles.p95, color));
      ttl.push(line(source + " p50", t, quantiles.p50, color, { line: { color: color, width: 1.5, dash: "dot" } }));
    });
    draw("chart-ttl", ttl, series, {
      yaxis: {
        type: "log", gridcolor: "#eaecf0",
        tickvals: [0.01, 0.1, 1, 10, 60, 600, 3600, 14400],
        ticktext: ["10 ms", "0.1 s", "1 s", "10 s", "1 min", "10 min", "1 h", "4 h"],
      },
    });

    renderTiles(series);
    renderAlerts(series);
    renderPools(series);
    text("share-window", "over " + series.window_s + " s windows");
    const expert = $("expert-link");
    if (series.expert_page) { expert.href = series.expert_page; expert.hidden = false; }
    drawn = true;
    document.body.dataset.drawn = String(t.length);
  }

  function renderTiles(series) {
    const totals = series.totals;
    text("tile-predictions", Math.round(totals.predictions).toLocaleString());
    text("tile-predictions-rate", last(series.predictions_per_min) === null ? "" : fmt(last(series.predictions_per_min), 0) + " / min now");
    const decided = totals.accepted + totals.reviewed;
    text("tile-share", decided > 0 ? (100 * totals.reviewed / decided).toFixed(1) + " %" : "–");
    text("tile-share-sub", last(series.human_share) === null ? "" : (100 * last(series.human_share)).toFixed(0) + " % in the last window");
    const crowd = Object.entries(series.pools).find(([, pool]) => pool.tier === "crowd");
    if (crowd) {
      text("tile-backlog", fmt(last(crowd[1].backlog), 0));
      text("tile-backlog-sub", "target " + fmt(last(series.target_backlog), 0) + " · " + fmt(last(crowd[1].workers), 0) + " workers");
    }
    const precision = Object.values(series.precision)[0];
    if (precision) {
      text("tile-precision", fmt(last(precision.estimate), 3));
      text("tile-precision-sub", "[" + fmt(last(precision.lower), 3) + ", " + fmt(last(precision.upper), 3) + "] · n = " + fmt(last(precision.n), 0));
    }
    const online = Object.values(series.online_accuracy)[0];
    if (online) {
      text("tile-accuracy", fmt(last(online.prequential), 3));
      text("tile-accuracy-sub", "rolling " + fmt(last(online.rolling), 3));
    }
    text("tile-alerts", String(series.alerts.length));
    $("tile-alerts").parentElement.classList.toggle("alarm", series.alerts.length > 0);
    text("tile-alerts-sub", series.alerts.length ? series.alerts[series.alerts.length - 1].signal.replace("_", " ") : "");
    text("tile-dlq", Math.round(totals.dlq).toLocaleString());
    text("tile-dlq-sub", last(series.dlq_per_min) === null ? "" : fmt(last(series.dlq_per_min), 1) + " / min now");
  }

  function renderAlerts(series) {
    const list = $("alerts");
    list.replaceChildren();
    if (series.alerts.length === 0) {
      const item = document.createElement("li");
      item.className = "muted";
      item.textContent = report ? "none in this run" : "none yet";
      list.append(item);
      return;
    }
    series.alerts.slice().reverse().forEach((alert) => {
      const item = document.createElement("li");
      const when = document.createElement("span");
      when.className = "when";
      when.textContent = new Date(alert.t).toLocaleTimeString();
      item.append(when, document.createTextNode(alert.signal + " (" + alert.detector + "): " + alert.message));
      list.append(item);
    });
  }

  // -- pool controls (the operator API, behind the operator token) -----------------------------

  let control = {};
  function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }
  function showTokenState() {
    text("token-state", token() ? "token set for this tab" : "no token: commands will be refused");
  }

  function renderPools(series) {
    const body = document.querySelector("#pools tbody");
    const names = Object.keys(series.pools);
    if (body.dataset.pools !== names.join(",")) {
      body.replaceChildren();
      names.forEach((name) => body.append(poolRow(name)));
      body.dataset.pools = names.join(",");
    }
    names.forEach((name) => {
      const pool = series.pools[name];
      const row = body.querySelector('tr[data-pool="' + CSS.escape(name) + '"]');
      const cells = row.querySelectorAll("td");
      cells[1].textContent = pool.tier;
      cells[2].textContent = last(pool.active) === 0 ? "paused" : "active";
      cells[3].textContent = fmt(last(pool.workers), 0);
      cells[4].textContent = fmt(last(pool.backlog), 0);
      cells[5].textContent = fmt(last(pool.queue_rate_per_min), 1);
      cells[6].textContent = fmt(last(pool.capacity_per_min), 1);
      cells[7].textContent = control[name] || (token() ? "…" : "(token needed)");
    });
  }

  function poolRow(name) {
    const row = document.createElement("tr");
    row.dataset.pool = name;
    for (let i = 0; i < 8; i += 1) {
      const cell = document.createElement("td");
      if (i >= 3 && i <= 6) cell.className = "num";
      row.append(cell);
    }
    row.firstChild.textContent = name;
    const act = document.createElement("td");
    act.className = "act";
    const workers = document.createElement("input");
    workers.type = "number"; workers.min = "0"; workers.value = "10"; workers.className = "scale-workers";
    workers.setAttribute("aria-label", "workers for " + name);
    act.append(workers);
    [["scale", "scale"], ["pause", "pause"], ["resume", "resume"], ["release", "release to autoscaler"]].forEach(([action, label]) => {
      const button = document.createElement("button");
      button.type = "button"; button.textContent = label; button.dataset.action = action;
      button.addEventListener("click", () => command(name, action, action === "scale" ? { workers: Number(workers.value) } : {}));
      act.append(button);
    });
    row.append(act);
    return row;
  }

  async function command(pool, action, fields) {
    const result = $("command-result");
    const headers = { "Content-Type": "application/json" };
    if (token()) headers.Authorization = "Bearer " + token();
    const body = Object.assign({ operator: "dashboard", reason: "from the dashboard" }, fields);
    let response;
    try {
      response = await fetch("/operator/pools/" + encodeURIComponent(pool) + "/" + action, { method: "POST", headers: headers, body: JSON.stringify(body) });
    } catch (error) {
      result.className = "small refused";
      result.textContent = action + " " + pool + ": the worker did not answer (" + error + ")";
      return;
    }
    const answer = await response.json().catch(() => ({}));
    if (response.status === 202) {
      result.className = "small ok";
      result.textContent = "sent: " + action + " " + pool + (fields.workers !== undefined ? " to " + fields.workers : "") + " (HTTP 202, on the commands topic)";
      refreshControl();
    } else {
      result.className = "small refused";
      result.textContent = "refused: " + action + " " + pool + " (HTTP " + response.status + "): " + (answer.error || response.statusText);
    }
  }

  async function refreshControl() {
    if (!token()) { control = {}; return; }
    try {
      const response = await fetch("/operator/pools", { headers: { Authorization: "Bearer " + token() } });
      if (!response.ok) { control = {}; text("token-state", "token refused (HTTP " + response.status + ")"); return; }
      const answer = await response.json();
      control = {};
      answer.pools.forEach((row) => { control[row.pool] = row.control; });
      showTokenState();
    } catch (error) { control = {}; }
  }

  // -- refresh ---------------------------------------------------------------------------------

  async function refresh() {
    try {
      const response = await fetch("/dashboard/series.json", { cache: "no-store" });
      if (!response.ok) throw new Error("HTTP " + response.status);
      render(await response.json());
      lastOk = Date.now();
    } catch (error) {
      // keep the last drawing; the freshness pill says the data is old
    }
    const age = (Date.now() - lastOk) / 1000;
    const pill = $("freshness");
    pill.className = "pill " + (lastOk === 0 ? "down" : age < 3 * REFRESH_MS / 1000 ? "live" : "stale");
    pill.textContent = lastOk === 0 ? "no data" : age < 3 * REFRESH_MS / 1000 ? "live · every " + REFRESH_MS / 1000 + " s" : "stale · " + age.toFixed(0) + " s old";
  }

  if (report) {
    document.body.classList.add("report");
    render(JSON.parse(embedded.textContent));
    return;
  }
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("token-input").value.trim();
    if (value) sessionStorage.setItem(TOKEN_KEY, value); else sessionStorage.removeItem(TOKEN_KEY);
    $("token-input").value = "";
    showTokenState();
    refreshControl();
  });
  $("token-forget").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); control = {}; showTokenState(); });
  showTokenState();
  refresh();
  refreshControl();
  setInterval(refresh, REFRESH_MS);
  setInterval(refreshControl, 5 * REFRESH_MS);
})();
