/* Análises: the heatmap on the BPMN diagram (bpmn-js overlays and markers) and the ECharts
   charts, drawn from the JSON the page embeds — the same figures as its tables. Each chart
   exports a PNG (ECharts getDataURL) and each table a CSV. */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("analytics-data").textContent);
  var W = data.words;
  var charts = {};

  function human(seconds) {
    if (seconds === null || seconds === undefined) { return "—"; }
    if (seconds >= 86400) { return (seconds / 86400).toFixed(1) + " d"; }
    if (seconds >= 3600) { return (seconds / 3600).toFixed(1) + " h"; }
    return Math.round(seconds / 60) + " min";
  }

  function metric(f, mode) {
    if (mode === "duration") { return f.median; }
    if (mode === "overdue") { return f.overdue; }
    return f.completed + f.active;
  }

  function label(f, mode) {
    if (mode === "duration") { return human(f.median); }
    if (mode === "overdue") { return f.overdue === null ? "—" : Math.round(f.overdue * 100) + "%"; }
    return String(f.completed) + (f.active ? " · " + f.active + "▶" : "");
  }

  function describe(f) {
    return f.name + ": " + f.completed + " " + W.completed + ", " + f.active + " " + W.active +
      ", " + W.median + " " + human(f.median) + ", " + W.p90 + " " + human(f.p90) + ", " +
      (f.overdue === null ? "—" : Math.round(f.overdue * 100) + "%") + " " + W.overdue + ", " +
      f.loops + " " + W.loops;
  }

  function heatmap() {
    var box = document.getElementById("heatmap");
    if (!box || !window.BpmnJS) { return; }
    var viewer = new window.BpmnJS({ container: box });
    var hover = document.getElementById("heat-hover");
    viewer.importXML(data.xml).then(function () {
      var canvas = viewer.get("canvas");
      var registry = viewer.get("elementRegistry");
      var overlays = viewer.get("overlays");
      var ids = Object.keys(data.figures).filter(function (id) { return registry.get(id); });
      function paint(mode) {
        overlays.remove({ type: "heat" });
        var values = ids.map(function (id) { return metric(data.figures[id], mode); })
          .filter(function (v) { return v !== null && v !== undefined; });
        var max = Math.max.apply(null, values.concat([0]));
        ids.forEach(function (id) {
          var f = data.figures[id];
          var v = metric(f, mode);
          for (var i = 0; i < 5; i++) { canvas.removeMarker(id, "app-heat-" + i); }
          if (v === null || v === undefined) { return; }
          var level = max > 0 ? Math.min(4, Math.floor((v / max) * 4.999)) : 0;
          canvas.addMarker(id, "app-heat-" + level);
          var badge = document.createElement("div");
          badge.className = "app-heat-badge app-heat-badge-" + level;
          badge.textContent = label(f, mode);
          badge.title = describe(f);
          badge.setAttribute("data-element", id);
          overlays.add(id, "heat", { position: { bottom: -4, right: 8 }, html: badge });
        });
        box.setAttribute("data-mode", mode);
        box.setAttribute("data-painted", String(ids.length));
      }
      viewer.get("eventBus").on("element.hover", function (e) {
        var f = data.figures[e.element.id];
        if (f) { hover.textContent = describe(f); }
      });
      document.querySelectorAll("[data-mode]").forEach(function (button) {
        if (button.tagName !== "A") { return; }
        button.addEventListener("click", function (ev) {
          ev.preventDefault();
          var mode = button.getAttribute("data-mode");
          document.querySelectorAll("a[data-mode]").forEach(function (b) {
            var on = b === button;
            if (on) { b.setAttribute("aria-current", "true"); } else { b.removeAttribute("aria-current"); }
            b.classList.toggle("primary", on);
            b.classList.toggle("secondary", !on);
          });
          paint(mode);
        });
      });
      canvas.zoom("fit-viewport");
      paint(data.mode);
      box.setAttribute("data-ready", "1");
    }).catch(function () {
      box.textContent = W.error;
    });
  }

  function chart(name, option) {
    var box = document.getElementById("chart-" + name);
    if (!box || !window.echarts) { return; }
    var c = window.echarts.init(box, null, { renderer: "canvas" });
    c.setOption(Object.assign({ animation: false, tooltip: { trigger: "axis" }, legend: {},
      grid: { left: 60, right: 30, bottom: 80, containLabel: true } }, option));
    charts[name] = c;
    box.setAttribute("data-ready", "1");
  }

  function drawCharts() {
    chart("lead", {
      xAxis: { type: "category", data: data.lead.stages, axisLabel: { interval: 0, rotate: 20 } },
      yAxis: { type: "value", name: W.days },
      series: [{ name: W.median, type: "bar", data: data.lead.median },
               { name: W.p90, type: "bar", data: data.lead.p90 }]
    });
    chart("flow", {
      xAxis: { type: "category", data: data.flow.weeks, boundaryGap: false },
      yAxis: { type: "value" },
      series: data.flow.series.map(function (s) {
        return { name: s.name, type: "line", areaStyle: { opacity: 0.15 }, data: s.data, showSymbol: false };
      })
    });
    chart("datasus", {
      xAxis: { type: "category", data: data.datasus.labels, axisLabel: { interval: 0, rotate: 20 } },
      yAxis: { type: "value", name: W.hours },
      series: [
        { name: W.median, type: "bar", data: data.datasus.median,
          markLine: { symbol: "none", label: { formatter: W.expected + " " + data.datasus.expected + " h" },
                      data: [{ yAxis: data.datasus.expected }] } },
        { name: W.p90, type: "bar", data: data.datasus.p90 }
      ]
    });
    chart("reasons", {
      grid: { left: 20, right: 30, containLabel: true },
      xAxis: { type: "value" },
      yAxis: { type: "category", data: data.reasons.labels.slice().reverse() },
      series: [{ name: W.count, type: "bar", data: data.reasons.counts.slice().reverse() }]
    });
  }

  function download(name, href) {
    var a = document.createElement("a");
    a.href = href;
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
  }

  function cell(text) {
    var t = String(text).replace(/\s+/g, " ").trim();
    if (/^[=+\-@\t\r]/.test(t)) { t = "'" + t; }  // no formulas in a spreadsheet
    return /[";\n]/.test(t) ? '"' + t.replace(/"/g, '""') + '"' : t;
  }

  function tableCsv(table) {
    var lines = [];
    table.querySelectorAll("tr").forEach(function (tr) {
      var row = [];
      tr.querySelectorAll("th, td").forEach(function (c) { row.push(cell(c.textContent)); });
      lines.push(row.join(";"));
    });
    return "\ufeff" + lines.join("\r\n") + "\r\n";
  }

  function tools() {
    document.querySelectorAll("[data-png]").forEach(function (b) {
      var name = b.getAttribute("data-png");
      if (!charts[name]) { b.hidden = true; return; }
      b.addEventListener("click", function () {
        download("analises-" + name + ".png",
          charts[name].getDataURL({ type: "png", pixelRatio: 2, backgroundColor: "#fff" }));
      });
    });
    document.querySelectorAll("[data-csv]").forEach(function (b) {
      var name = b.getAttribute("data-csv");
      b.addEventListener("click", function () {
        var blob = new Blob([tableCsv(document.getElementById("table-" + name))], { type: "text/csv;charset=utf-8" });
        var url = URL.createObjectURL(blob);
        download("analises-" + name + ".csv", url);
        setTimeout(function () { URL.revokeObjectURL(url); }, 1000);
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawCharts();
    tools();
    heatmap();
    window.addEventListener("beforeprint", function () { Object.values(charts).forEach(function (c) { c.resize(); }); });
    window.addEventListener("resize", function () { Object.values(charts).forEach(function (c) { c.resize(); }); });
  });
})();
