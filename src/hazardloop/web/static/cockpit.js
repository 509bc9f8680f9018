// Draws the 驾驶舱 charts from the embedded cockpit dataset (analytics/metrics.py, the same JSON as
// /api/v1/analytics/cockpit). Every mark with a number navigates to the list behind it (its drill
// href); a chart with nothing to show says so instead of drawing empty axes. When all charts are
// drawn, #cockpit gets data-ready="1" (the browser tests wait for it).
(function () {
  "use strict";
  const { COLOURS, GRADES } = window.hlSitePlan;
  const SERIES_COLOURS = { found: "#0b6bcb", closed: "#2f9e5b", open: "#0b6bcb", overdue: "#d9363e", alarms: "#f08c2e" };

  let data, L, zh;
  const charts = [];

  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  const areaName = (a) => (zh ? a.name_zh : a.name_en || a.name_zh);
  const hint = (drill) => `<br><span style="color:#888">${esc(L["cockpit.click_hint"])}${drill && !drill.exact ? " · " + esc(L["cockpit.inexact"]) : ""}</span>`;
  const go = (drill) => { if (drill && drill.href) window.location.assign(drill.href); };

  function init(id) {
    const el = document.getElementById(id);
    const chart = echarts.init(el);
    charts.push(chart);
    return chart;
  }

  function empty(chart) {
    chart.setOption({ title: { text: L["cockpit.empty"], left: "center", top: "middle", textStyle: { color: "#888", fontSize: 14, fontWeight: "normal" } } });
    chart.getDom().dataset.empty = "1";
  }

  // ------------------------------------------------------------ four-colour site plan (as plant.js)
  let planChart = null;
  function drawPlan() {
    if (planChart) { charts.splice(charts.indexOf(planChart), 1); planChart.dispose(); }
    const chart = planChart = init("chart-plan");
    delete chart.getDom().dataset.empty;
    const wanted = Number(chart.getDom().dataset.site);
    const site = data.sites.find((s) => s.id === wanted) || data.sites[0];
    const areas = data.areas.filter((a) => site && a.site_id === site.id && a.polygon && a.polygon.length >= 3);
    const el = chart.getDom();
    el.dataset.drawnSite = site ? site.id : "";
    el.dataset.areas = areas.map((a) => a.code).join(" ");  // what is drawn, which the browser tests read
    if (!site || !areas.length) return empty(chart);
    hlSitePlan.fitHeight(el, site, 520);
    chart.resize();
    chart.setOption(hlSitePlan.option(site, areas, {
      gradeName: (g) => L["grade." + g],
      label: (a) => `${a.code}\n${L["cockpit.open"]} ${a.open}`,
      tooltip: (a) => `<b>${esc(a.code)} · ${esc(areaName(a))}</b><br>${esc(L["grade." + (a.grade || "none")])}<br>` +
        `${esc(L["cockpit.open"])}: ${a.open}<br>${esc(L["cockpit.overdue"])}: ${a.overdue}<br>` +
        `${esc(L["cockpit.major_open"])}: ${a.major_open}<br>${esc(L["cockpit.active_alarms"])}: ${a.active_alarms}` + hint(a.drill_open),
    }));
    chart.on("click", (p) => { if (p.seriesType === "custom") go(areas[p.dataIndex].drill_open); });
  }

  // ------------------------------------------------------------ area × category heatmap
  function drawHeatmap() {
    const chart = init("chart-heatmap");
    if (!data.heatmap.length) return empty(chart);
    const areaIds = [...new Set(data.heatmap.map((c) => c.area_id))];
    const areas = data.areas.filter((a) => areaIds.includes(a.id));
    const catCodes = data.categories.map((c) => c.code).filter((code) => data.heatmap.some((c) => c.category === code));
    const catName = (code) => { const c = data.categories.find((x) => x.code === code); return c ? (zh ? c.name_zh : c.name_en || c.name_zh) : code; };
    const cells = data.heatmap.map((c) => ({
      value: [catCodes.indexOf(c.category), areas.findIndex((a) => a.id === c.area_id), c.count],
      drill: c.drill,
    }));
    const max = Math.max(...data.heatmap.map((c) => c.count));
    chart.getDom().style.height = Math.max(240, areas.length * 34 + 120) + "px";
    chart.resize();
    chart.setOption({
      tooltip: {
        formatter: (p) => `<b>${esc(areas[p.value[1]].code)} · ${esc(areaName(areas[p.value[1]]))}</b><br>` +
          `${esc(catName(catCodes[p.value[0]]))}: ${p.value[2]} ${esc(L["cockpit.hazards"])}` + hint(p.data.drill),
      },
      grid: { left: 8, right: 16, top: 8, bottom: 70, containLabel: true },
      xAxis: { type: "category", data: catCodes.map(catName), splitArea: { show: true }, axisLabel: { interval: 0, rotate: catCodes.length > 6 ? 30 : 0 } },
      yAxis: { type: "category", data: areas.map((a) => `${a.code} ${areaName(a)}`), splitArea: { show: true } },
      visualMap: { min: 0, max, calculable: true, orient: "horizontal", left: "center", bottom: 0, inRange: { color: ["#eef5ff", "#f2c230", "#d9363e"] } },
      series: [{ name: L["cockpit.hazards"], type: "heatmap", data: cells, label: { show: true }, emphasis: { itemStyle: { borderColor: "#333", borderWidth: 1 } } }],
    });
    chart.on("click", (p) => go(p.data && p.data.drill));
  }

  // ------------------------------------------------------------ weekly trend
  function drawTrend() {
    const chart = init("chart-trend");
    if (!data.weeks.some((w) => w.found || w.closed)) return empty(chart);
    const series = (key, drillKey) => ({
      name: L["cockpit." + key], type: "line", smooth: false, symbolSize: 5, itemStyle: { color: SERIES_COLOURS[key] },
      data: data.weeks.map((w) => ({ value: w[key], drill: w[drillKey] })),
    });
    chart.setOption({
      tooltip: {
        trigger: "axis",
        formatter: (items) => `${esc(L["cockpit.week_of"])} ${esc(data.weeks[items[0].dataIndex].start)}<br>` +
          items.map((i) => `${i.marker}${esc(i.seriesName)}: ${i.value}`).join("<br>") + hint(items[0].data.drill),
      },
      legend: { data: [L["cockpit.found"], L["cockpit.closed"]], top: 0 },
      grid: { left: 8, right: 16, top: 32, bottom: 8, containLabel: true },
      xAxis: { type: "category", data: data.weeks.map((w) => w.start.slice(5)), boundaryGap: false },
      yAxis: { type: "value", minInterval: 1 },
      series: [series("found", "drill_found"), series("closed", "drill_closed")],
    });
    chart.on("click", (p) => go(p.data && p.data.drill));
  }

  // ------------------------------------------------------------ rectification progress
  function drawProgress() {
    const chart = init("chart-progress");
    if (!data.progress.some((s) => s.count)) return empty(chart);
    const groups = [...new Set(data.progress.map((s) => s.group))];
    const states = data.progress.filter((s) => s.count);
    chart.setOption({
      tooltip: { formatter: (p) => `${esc(p.name)}<br>${p.marker}${esc(p.seriesName)}: ${p.value}` + hint(p.data.drill) },
      legend: { type: "scroll", bottom: 0 },
      grid: { left: 8, right: 16, top: 8, bottom: 40, containLabel: true },
      xAxis: { type: "value", minInterval: 1 },
      yAxis: { type: "category", inverse: true, data: groups.map((g) => L["cockpit.group." + g]) },
      series: states.map((s) => ({
        name: L["state." + s.state], type: "bar", stack: "open", barMaxWidth: 28,
        label: { show: true, formatter: (p) => (p.value ? p.value : "") },
        data: groups.map((g) => (g === s.group ? { value: s.count, drill: s.drill } : { value: 0, drill: null })),
      })),
    });
    chart.on("click", (p) => go(p.data && p.data.drill));
  }

  // ------------------------------------------------------------ areas needing attention
  function drawTop() {
    const chart = init("chart-top");
    const byId = Object.fromEntries(data.areas.map((a) => [a.id, a]));
    const areas = data.top_areas.map((id) => byId[id]);
    if (!areas.length) return empty(chart);
    const bar = (key, value, drill) => ({
      name: L["cockpit." + key], type: "bar", barMaxWidth: 14, itemStyle: { color: SERIES_COLOURS[key === "active_alarms" ? "alarms" : key] },
      label: { show: true, position: "right", formatter: (p) => (p.value ? p.value : "") },
      data: areas.map((a) => ({ value: a[value], drill: a[drill] })),
    });
    chart.setOption({
      tooltip: { trigger: "item", formatter: (p) => `<b>${esc(p.name)}</b><br>${p.marker}${esc(p.seriesName)}: ${p.value}` + hint(p.data.drill) },
      legend: { bottom: 0 },
      grid: { left: 8, right: 24, top: 8, bottom: 40, containLabel: true },
      xAxis: { type: "value", minInterval: 1 },
      yAxis: { type: "category", inverse: true, data: areas.map((a) => `${a.code} ${areaName(a)}`) },
      series: [bar("overdue", "overdue", "drill_overdue"), bar("open", "open", "drill_open"), bar("active_alarms", "active_alarms", "drill_alarms")],
    });
    chart.on("click", (p) => go(p.data && p.data.drill));
  }

  document.addEventListener("DOMContentLoaded", () => {
    const root = document.getElementById("cockpit");
    if (!root) return;
    data = JSON.parse(document.getElementById("cockpit-data").textContent);
    L = JSON.parse(document.getElementById("cockpit-labels").textContent);
    zh = root.dataset.lang === "zh-CN";
    [drawPlan, drawHeatmap, drawTrend, drawProgress, drawTop].forEach((draw) => draw());
    // Site selector: redraw the plan in place and keep the choice in the URL (and in the period form).
    const siteSelect = document.getElementById("plan-site");
    if (siteSelect) siteSelect.addEventListener("change", () => {
      document.getElementById("chart-plan").dataset.site = siteSelect.value;
      const kept = document.getElementById("pp-site");
      if (kept) kept.value = siteSelect.value;
      const url = new URL(window.location.href);
      url.searchParams.set("site", siteSelect.value);
      window.history.replaceState(null, "", url);
      drawPlan();
    });
    // Period picker: a preset applies at once; "custom" waits for the dates and the Apply button.
    document.querySelectorAll("#period-form input[name=period]").forEach((radio) => radio.addEventListener("change", () => {
      if (radio.value !== "custom") radio.form.submit();
      else document.getElementById("pp-start").focus();
    }));
    ["pp-start", "pp-end"].forEach((id) => document.getElementById(id).addEventListener("change", () => {
      document.getElementById("pp-custom").checked = true;
    }));
    window.addEventListener("resize", () => charts.forEach((c) => c.resize()));
    root.dataset.ready = "1";
  });
})();
