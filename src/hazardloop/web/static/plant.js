// Draws each site plan as a four-colour risk map: one polygon per area, coloured by its risk grade.
(function () {
  "use strict";

  function draw(el) {
    const site = JSON.parse(el.dataset.site);
    const labels = JSON.parse(el.dataset.labels);
    const zh = el.dataset.lang === "zh-CN";
    hlSitePlan.fitHeight(el, site, 640);
    const chart = echarts.init(el);
    const areas = site.areas.filter((a) => a.polygon && a.polygon.length >= 3);
    if (!areas.length) {
      chart.setOption({ title: { text: labels.empty, left: "center", top: "middle", textStyle: { color: "#888" } } });
      return;
    }
    chart.setOption(hlSitePlan.option(site, areas, {
      gradeName: (g) => labels[g],
      label: (a) => a.code,
      tooltip: (a) => `<b>${a.code} · ${zh ? a.name_zh : a.name_en || a.name_zh}</b><br>` +
        `${labels[a.grade || "none"]}<br>${labels.sensors}: ${a.sensors}`,
    }));
    chart.on("click", (p) => {
      const link = document.querySelector(`a[data-area="${areas[p.dataIndex].id}"]`);
      if (link) link.click();
    });
    window.addEventListener("resize", () => chart.resize());
    el.dataset.ready = "1";
  }

  document.addEventListener("DOMContentLoaded", () => document.querySelectorAll(".site-plan").forEach(draw));
})();
