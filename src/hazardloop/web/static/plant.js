// Draws each site plan as a four-colour risk map: one polygon per area, coloured by its risk grade.
(function () {
  "use strict";
  const COLOURS = { red: "#d9363e", orange: "#f08c2e", yellow: "#f2c230", blue: "#3d7fd9", none: "#b9c0c8" };

  function draw(el) {
    const site = JSON.parse(el.dataset.site);
    const labels = JSON.parse(el.dataset.labels);
    const zh = el.dataset.lang === "zh-CN";
    // keep the plan's proportions so areas are not distorted (plus room for the legend)
    el.style.height = Math.round(Math.min(640, el.clientWidth * (site.height / site.width)) + 40) + "px";
    const chart = echarts.init(el);
    const areas = site.areas.filter((a) => a.polygon && a.polygon.length >= 3);
    if (!areas.length) {
      chart.setOption({ title: { text: labels.empty, left: "center", top: "middle", textStyle: { color: "#888" } } });
      return;
    }
    chart.setOption({
      tooltip: {
        formatter: (p) => {
          const a = areas[p.dataIndex];
          return `<b>${a.code} · ${zh ? a.name_zh : a.name_en || a.name_zh}</b><br>` +
            `${labels[a.grade || "none"]}<br>${labels.sensors}: ${a.sensors}`;
        },
      },
      legend: { data: ["red", "orange", "yellow", "blue"].map((g) => labels[g]), bottom: 0 },
      grid: { left: 8, right: 8, top: 8, bottom: 40, containLabel: false },
      xAxis: { type: "value", min: 0, max: site.width, show: false },
      yAxis: { type: "value", min: 0, max: site.height, show: false, inverse: true },
      series: [
        {
          type: "custom",
          coordinateSystem: "cartesian2d",
          data: areas.map((a, i) => [i]),
          renderItem: (params, api) => {
            const a = areas[params.dataIndex];
            const points = a.polygon.map((p) => api.coord(p));
            const cx = points.reduce((s, p) => s + p[0], 0) / points.length;
            const cy = points.reduce((s, p) => s + p[1], 0) / points.length;
            return {
              type: "group",
              children: [
                { type: "polygon", shape: { points }, style: { fill: COLOURS[a.grade || "none"], opacity: 0.75, stroke: "#333", lineWidth: 1 } },
                { type: "text", x: cx, y: cy, style: { text: a.code, fill: "#111", align: "center", verticalAlign: "middle", font: "bold 13px sans-serif" } },
              ],
            };
          },
        },
        ...["red", "orange", "yellow", "blue"].map((g) => ({
          name: labels[g], type: "scatter", data: [], itemStyle: { color: COLOURS[g] },
        })),
      ],
    });
    chart.on("click", (p) => {
      const link = document.querySelector(`a[data-area="${areas[p.dataIndex].id}"]`);
      if (link) link.click();
    });
    window.addEventListener("resize", () => chart.resize());
    el.dataset.ready = "1";
  }

  document.addEventListener("DOMContentLoaded", () => document.querySelectorAll(".site-plan").forEach(draw));
})();
