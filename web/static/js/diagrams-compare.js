/* Several BPMN diagrams on one page (process versions side by side). */
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    if (!window.BpmnJS) { return; }
    document.querySelectorAll(".app-diagram[data-diagram-url]").forEach(function (box) {
      var viewer = new window.BpmnJS({ container: box });
      fetch(box.getAttribute("data-diagram-url"), { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (data) { return viewer.importXML(data.xml); })
        .then(function () { viewer.get("canvas").zoom("fit-viewport"); box.setAttribute("data-ready", "1"); })
        .catch(function () { box.textContent = "Não foi possível desenhar o diagrama."; });
    });
  });
})();
