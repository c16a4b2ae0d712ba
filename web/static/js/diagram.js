/* The instance's BPMN diagram (bpmn-js NavigatedViewer) with done/active elements marked. */
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var box = document.getElementById("diagrama");
    if (!box || !window.BpmnJS) { return; }
    var viewer = new window.BpmnJS({ container: box });
    fetch(box.getAttribute("data-diagram-url"), { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (data) {
        return viewer.importXML(data.xml).then(function () {
          var canvas = viewer.get("canvas");
          var registry = viewer.get("elementRegistry");
          function mark(ids, cls) {
            (ids || []).forEach(function (id) { if (registry.get(id)) { canvas.addMarker(id, cls); } });
          }
          mark(data.completed, "app-done");
          mark(data.flows, "app-flow");
          mark(data.active, "app-active");
          canvas.zoom("fit-viewport");
          box.setAttribute("data-active", (data.active || []).join(" "));
          box.setAttribute("data-ready", "1");
        });
      })
      .catch(function () {
        box.innerHTML = '<p class="app-diagram-error">Não foi possível desenhar o diagrama.</p>';
      });
  });
})();
