// The four-colour site plan (风险四色图) as an ECharts option: one polygon per area, coloured by its
// risk grade, with a label. Shared by the plant page and the cockpit, which differ only in what
// each area's label and tooltip say.
(function () {
  "use strict";
  const COLOURS = { red: "#d9363e", orange: "#f08c2e", yellow: "#f2c230", blue: "#3d7fd9", none: "#b9c0c8" };
  const GRADES = ["red", "orange", "yellow", "blue"];

  // site: {width, height}; areas: [{polygon, grade, ...}]; gradeName(g) -> legend text;
  // label(a) -> text drawn in the polygon; tooltip(a) -> HTML.
  function option(site, areas, { gradeName, label, tooltip }) {
    return {
      tooltip: { formatter: (p) => (areas[p.dataIndex] ? tooltip(areas[p.dataIndex]) : "") },
      legend: { data: GRADES.map(gradeName), bottom: 0, selectedMode: false },
      grid: { left: 8, right: 8, top: 8, bottom: 40 },
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
                { type: "text", x: cx, y: cy, style: { text: label(a), fill: "#111", align: "center", verticalAlign: "middle", font: "bold 12px sans-serif", lineHeight: 16 } },
              ],
            };
          },
        },
        ...GRADES.map((g) => ({ name: gradeName(g), type: "scatter", data: [], itemStyle: { color: COLOURS[g] } })),
      ],
    };
  }

  // keep the plan's proportions (plus room for the legend) so areas are not distorted
  function fitHeight(el, site, max) {
    el.style.height = Math.round(Math.min(max, el.clientWidth * (site.height / site.width)) + 40) + "px";
  }

  window.hlSitePlan = { COLOURS, GRADES, option, fitHeight };
})();
