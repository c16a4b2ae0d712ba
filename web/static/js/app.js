/* Credencia: small enhancements; every form works without them. */
(function () {
  "use strict";

  function digits(value) { return value.replace(/\D+/g, ""); }
  var MASKS = {
    cpf: function (d) { d = d.slice(0, 11); return d.replace(/^(\d{3})(\d)/, "$1.$2").replace(/^(\d{3})\.(\d{3})(\d)/, "$1.$2.$3").replace(/\.(\d{3})(\d)/, ".$1-$2"); },
    cnpj: function (d) { d = d.slice(0, 14); return d.replace(/^(\d{2})(\d)/, "$1.$2").replace(/^(\d{2})\.(\d{3})(\d)/, "$1.$2.$3").replace(/\.(\d{3})(\d)/, ".$1/$2").replace(/(\d{4})(\d)/, "$1-$2"); },
    cns: function (d) { d = d.slice(0, 15); return d.replace(/^(\d{3})(\d)/, "$1 $2").replace(/^(\d{3}) (\d{4})(\d)/, "$1 $2 $3").replace(/^(\d{3}) (\d{4}) (\d{4})(\d)/, "$1 $2 $3 $4"); },
    cnes: function (d) { return d.slice(0, 7); },
    date: function (d) { d = d.slice(0, 8); return d.replace(/^(\d{2})(\d)/, "$1/$2").replace(/^(\d{2})\/(\d{2})(\d)/, "$1/$2/$3"); },
    time: function (d) { d = d.slice(0, 4); return d.replace(/^(\d{2})(\d)/, "$1:$2"); }
  };

  function applyMask(input) {
    var mask = MASKS[input.getAttribute("data-mask")];
    if (!mask) { return; }
    var raw = input.value;
    // Only reformat values made of digits and the mask's own separators.
    if (/[^\d.\-\/ :]/.test(raw)) { return; }
    input.value = mask(digits(raw));
  }

  function updateCounter(area) {
    var max = parseInt(area.getAttribute("data-counter"), 10);
    var box = document.querySelector('[data-counter-for="' + area.id + '"]');
    if (!box || !max) { return; }
    var value = box.querySelector(".app-counter-value");
    var length = area.value.length;
    if (value) { value.textContent = String(length); }
    box.classList.toggle("over", length > max);
  }

  function renumber(container) {
    var rows = container.querySelectorAll("[data-rows] > [data-row]");
    rows.forEach(function (row, i) {
      var n = row.querySelector("[data-row-number]");
      if (n) { n.textContent = String(i + 1); }
    });
    var empty = container.querySelector("[data-empty]");
    if (empty) { empty.hidden = rows.length > 0; }
  }

  function nextIndex(container, name) {
    var max = -1;
    var re = new RegExp("^" + name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&") + "\\.(\\d+)\\.");
    container.querySelectorAll("[name]").forEach(function (el) {
      var m = re.exec(el.getAttribute("name"));
      if (m) { max = Math.max(max, parseInt(m[1], 10)); }
    });
    return max + 1;
  }

  function addRow(fieldset) {
    var template = fieldset.querySelector("template[data-row-template]");
    var rows = fieldset.querySelector("[data-rows]");
    if (!template || !rows) { return; }
    var name = fieldset.getAttribute("data-repeat");
    var index = nextIndex(fieldset, name);
    var html = template.innerHTML.split("__INDEX__").join(String(index));
    var holder = document.createElement("div");
    holder.innerHTML = html;
    var row = holder.firstElementChild;
    rows.appendChild(row);
    renumber(fieldset);
    var first = row.querySelector("input, select, textarea");
    if (first) { first.focus(); }
  }

  document.addEventListener("click", function (event) {
    var target = event.target.closest("button");
    if (!target) { return; }
    if (target.hasAttribute("data-add-row")) {
      event.preventDefault();
      addRow(target.closest("[data-repeat]"));
    } else if (target.hasAttribute("data-remove-row")) {
      var row = target.closest("[data-row]");
      var fieldset = target.closest("[data-repeat]");
      if (row && fieldset) {
        event.preventDefault();
        row.remove();
        renumber(fieldset);
        var add = fieldset.querySelector("[data-add-row]");
        if (add) { add.focus(); }
      }
    } else if (target.hasAttribute("data-print")) {
      window.print();
    } else if (target.hasAttribute("data-select-all")) {
      var name = target.getAttribute("data-select-all");
      var boxes = target.form.querySelectorAll('input[type=checkbox][name="' + name + '"]');
      var all = Array.prototype.every.call(boxes, function (b) { return b.checked; });
      boxes.forEach(function (b) { b.checked = !all; });
    } else if (target.hasAttribute("data-autofill")) {
      var input = document.getElementById(target.getAttribute("data-autofill"));
      var cnes = input ? digits(input.value) : "";
      if (!window.fetch || cnes.length !== 7) { return; }
      event.preventDefault();
      fetch("/estabelecimentos/" + cnes + "/cadastro.json", { credentials: "same-origin" })
        .then(function (r) { if (!r.ok) { throw new Error("not found"); } return r.json(); })
        .then(function (data) {
          var aliases = { logradouro: "endereco" };
          Object.keys(data).concat(["logradouro", "bairro"]).forEach(function (key) {
            var field = document.getElementById("f-estabelecimento_" + key);
            var value = data[aliases[key] || key];
            if (field && value) { field.value = value; applyMask(field); }
          });
        })
        .catch(function () { target.form.requestSubmit ? target.form.requestSubmit(target) : target.form.submit(); });
    }
  });

  // Irreversible actions (revoking a role or a token, cancelling a process) ask first.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); }
  });

  document.addEventListener("input", function (event) {
    var el = event.target;
    if (el.hasAttribute && el.hasAttribute("data-mask")) { applyMask(el); }
    if (el.hasAttribute && el.hasAttribute("data-counter")) { updateCounter(el); }
  });

  document.addEventListener("change", function (event) {
    var el = event.target;
    var form = el.form;
    if (el.type !== "file" || !form || !form.getAttribute("data-max-bytes")) { return; }
    var limit = parseInt(form.getAttribute("data-max-bytes"), 10);
    var big = Array.prototype.filter.call(el.files || [], function (f) { return f.size > limit; });
    el.setCustomValidity(big.length ? "Arquivo maior que o limite." : "");
    if (big.length) { el.reportValidity(); }
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-counter]").forEach(updateCounter);
    document.querySelectorAll("[data-repeat]").forEach(renumber);
    var summary = document.getElementById("erros");
    if (summary) { summary.focus(); }
  });
})();
