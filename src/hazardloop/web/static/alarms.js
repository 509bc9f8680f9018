// 报警台: (1) hlAlarmsIdle() tells the 5 s HTMX poll of the console table (templates/alarms/_table.html)
// to wait while someone is typing in it or has a verdict form open, so a refresh never eats their
// input; (2) draws the sensor chart of one alarm from its embedded data (alarm_pages.chart_data):
// the readings as a line, the alarm period as a marked area, the limits as lines, the reason as title.
// When drawn, #alarm-chart gets data-ready="1" (for browser tests).
(function () {
  "use strict";

  window.hlAlarmsIdle = function () {
    const table = document.getElementById("alarm-table");
    if (!table) return false;
    return !table.querySelector("details[open]") && !table.contains(document.activeElement);
  };

  const LIMIT_COLOURS = { HH: "#d9363e", H: "#f08c2e", L: "#f08c2e", LL: "#d9363e" };
  // Times read in plant time (Beijing), as every time on the page does, whatever the viewer's own zone.
  const PLANT_CLOCK = new Intl.DateTimeFormat("zh-CN", { timeZone: "Asia/Shanghai", hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  const PLANT_STAMP = new Intl.DateTimeFormat("sv-SE", { timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });

  function drawChart() {
    const el = document.getElementById("alarm-chart");
    const dataEl = document.getElementById("alarm-chart-data");
    if (!el || !dataEl || typeof echarts === "undefined") return;
    const data = JSON.parse(dataEl.textContent);
    const L = JSON.parse(document.getElementById("alarm-chart-labels").textContent);
    const chart = echarts.init(el);
    const unit = data.unit ? " " + data.unit : "";
    const limits = Object.entries(data.limits || {}).map(([name, value]) => ({
      name: L["limit." + name] || name,
      yAxis: value,
      lineStyle: { color: LIMIT_COLOURS[name] || "#888", type: "dashed" },
      label: { formatter: (L["limit." + name] || name) + " " + value, position: "insideEndTop" },
    }));
    chart.setOption({
      title: { text: data.title, subtext: data.tag + unit, left: "center", textStyle: { fontSize: 14 } },
      tooltip: {
        trigger: "axis",
        valueFormatter: (v) => (v == null ? "—" : Number(v).toPrecision(4) + unit),
        axisPointer: { label: { formatter: (p) => PLANT_STAMP.format(p.value) } },
      },
      // the legend names the line; the limits are labelled on their own lines, the alarm period on its area
      legend: { data: [L["alarm.chart.value"] || data.tag], top: 40, right: 24 },
      grid: { left: 56, right: 24, top: 64, bottom: 56 },
      xAxis: { type: "time", min: data.start, max: data.end, axisLabel: { formatter: (v) => PLANT_CLOCK.format(v) } },
      yAxis: { type: "value", scale: true, name: data.unit || "" },
      dataZoom: [{ type: "inside" }, { type: "slider", height: 18, bottom: 8 }],
      series: [
        {
          name: L["alarm.chart.value"] || data.tag,
          type: "line",
          showSymbol: false,
          sampling: "lttb",
          data: data.points,
          lineStyle: { width: 1.5, color: "#0b6bcb" },
          markArea: {
            silent: true,
            itemStyle: { color: "rgba(217, 54, 62, 0.12)" },
            label: { color: "#a1262d", position: "insideTopLeft" },
            data: [[{ name: L["alarm.chart.period"], xAxis: data.period[0] }, { xAxis: data.period[1] }]],
          },
          markLine: limits.length ? { silent: true, symbol: "none", data: limits } : undefined,
        },
      ],
    });
    window.addEventListener("resize", () => chart.resize());
    el.dataset.ready = "1";
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", drawChart);
  else drawChart();
})();
