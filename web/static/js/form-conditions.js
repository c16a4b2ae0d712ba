/* Conditional fields of a task form: each [data-show-when] block shows while its rule holds
   (engine.forms.conditions.show_rules). Without this script the server hides and shows
   the same blocks on the "Atualizar formulário" round trip. */
(function () {
  "use strict";

  function valueOf(form, name) {
    var found = "";
    Array.prototype.forEach.call(form.elements, function (el) {
      if (el.name !== name) { return; }
      if (el.type === "radio" || el.type === "checkbox") {
        if (el.checked) { found = el.value; }
      } else {
        found = el.value;
      }
    });
    return found;
  }

  function holds(form, alternatives) {
    return alternatives.some(function (terms) {
      return terms.every(function (term) {
        var inside = term[1].indexOf(valueOf(form, term[0])) >= 0;
        return inside === term[2];
      });
    });
  }

  // Shows and hides the form's blocks; false when a rule is left to the server.
  function apply(form) {
    var all = true;
    form.querySelectorAll("[data-show-when]").forEach(function (box) {
      var rule = box.getAttribute("data-show-when");
      if (rule === "server") { all = false; return; }
      try {
        box.hidden = !holds(form, JSON.parse(rule));
      } catch (e) {
        all = false;
      }
    });
    return all;
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form").forEach(function (form) {
      if (!form.querySelector("[data-show-when]")) { return; }
      if (apply(form)) {
        // The script decides every block: the round-trip buttons are not needed.
        form.querySelectorAll("[data-refresh]").forEach(function (el) { el.hidden = true; });
      }
      form.addEventListener("change", function () { apply(form); });
      form.addEventListener("input", function () { apply(form); });
    });
  });
})();
