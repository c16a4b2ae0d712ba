/* Credencia: "Importar CNES filhos" and "Consultar" on the task page, in place.
   Without this script the same buttons post the form and the server answers with the page
   (web/ui/children.py); with it they ask the JSON endpoints and fill the form here. */
(function () {
  "use strict";

  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    if (cls) { node.className = cls; }
    return node;
  }

  // The page's words, in the user's language (data-labels on each tool).
  function label(tools, key) {
    var labels = JSON.parse(tools.getAttribute("data-labels") || "{}");
    return labels[key] || key;
  }

  function csrf(form) {
    var input = form.querySelector('input[name="csrf_token"]');
    return input ? input.value : "";
  }

  // Not a JSON answer (an expired session, a refused CSRF token): the page's own round trip.
  var FALLBACK = "fallback";

  function answer(response) {
    return response.json().catch(function () { throw new Error(FALLBACK); })
      .then(function (body) {
        if (!response.ok) { throw new Error(body.erro || String(response.status)); }
        return body;
      });
  }

  function failed(box, button) {
    return function (err) {
      if (err.message === FALLBACK && button && button.form) {
        if (button.form.requestSubmit) { button.form.requestSubmit(button); } else { button.form.submit(); }
        return;
      }
      showError(box, err.message);
    };
  }

  function showError(box, message) {
    box.textContent = "";
    var span = el("span", null, "feedback danger");
    span.setAttribute("role", "alert");
    span.textContent = message;
    box.appendChild(span);
  }

  // ---- the child list
  function listOf(tools) {
    var field = tools.getAttribute("data-field");
    return document.querySelector('[data-repeat="' + field + '"]');
  }

  function currentCnes(tools) {
    var list = listOf(tools);
    var item = tools.getAttribute("data-item");
    var out = [];
    if (!list) { return out; }
    list.querySelectorAll("[data-rows] input[name$='." + item + "']").forEach(function (input) {
      if (input.value.trim()) { out.push(input.value.trim()); }
    });
    return out;
  }

  function addCnes(tools, cnes) {
    var list = listOf(tools);
    var item = tools.getAttribute("data-item");
    if (!list) { return; }
    // An empty row left by "Adicionar linha" takes the CNES first.
    var empty = Array.prototype.find.call(
      list.querySelectorAll("[data-rows] input[name$='." + item + "']"),
      function (input) { return !input.value.trim(); }
    );
    if (!empty) {
      var add = list.querySelector("[data-add-row]");
      if (!add) { return; }
      add.click(); // app.js adds the row from the template
      var inputs = list.querySelectorAll("[data-rows] input[name$='." + item + "']");
      empty = inputs[inputs.length - 1];
    }
    if (empty) { empty.value = cnes; }
  }

  function showImport(tools, box, result) {
    box.textContent = "";
    var summary = el("p", null, "app-tools-summary");
    summary.appendChild(el("strong", result.resumo));
    box.appendChild(summary);
    var table = el("table", null, "br-table app-table");
    var head = el("thead");
    var tr = el("tr");
    ["linha", "valor", "resultado"].forEach(function (t) {
      var th = el("th", label(tools, t)); th.setAttribute("scope", "col"); tr.appendChild(th);
    });
    head.appendChild(tr);
    table.appendChild(head);
    var body = el("tbody");
    result.linhas.forEach(function (row) {
      var line = el("tr", null, row.adicionado ? "app-ok" : "app-refused");
      line.appendChild(el("td", row.linha));
      line.appendChild(el("td", row.valor));
      line.appendChild(el("td", row.adicionado ? label(tools, "adicionado")
        : label(tools, "recusado") + ": " + row.motivo));
      body.appendChild(line);
    });
    table.appendChild(body);
    box.appendChild(table);
  }

  function importInto(tools, button, data) {
    var box = tools.querySelector("[data-children-result]");
    data.append("csrf_token", csrf(button.form));
    currentCnes(tools).forEach(function (c) { data.append("atuais", c); });
    return fetch(tools.getAttribute("data-import-url"), {
      method: "POST", body: data, credentials: "same-origin",
      headers: { "X-CSRFToken": csrf(button.form), "Accept": "application/json" }
    }).then(answer).then(function (result) {
      result.adicionados.forEach(function (cnes) { addCnes(tools, cnes); });
      showImport(tools, box, result);
    }).catch(failed(box, button));
  }

  function lookupChild(tools, button) {
    var box = tools.querySelector("[data-children-result]");
    var query = tools.querySelector('input[name="__filhos_consulta"]').value;
    var url = tools.getAttribute("data-lookup-url") + "?q=" + encodeURIComponent(query);
    return fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(answer).then(function (body) {
        box.textContent = "";
        if (!body.estabelecimentos.length) {
          showError(box, label(tools, "nenhum"));
          return;
        }
        var list = el("ul", null, "app-tools-list");
        body.estabelecimentos.forEach(function (e) {
          var li = el("li");
          li.appendChild(el("strong", e.cnes));
          li.appendChild(document.createTextNode(" — " + e.razao_social +
            (e.nome_fantasia ? " (" + e.nome_fantasia + ")" : "") + " · " + e.municipio + "/" +
            e.uf + " · CNPJ " + e.cnpj + " "));
          var add = el("button", label(tools, "adicionar"), "br-button tertiary small");
          add.type = "submit"; add.name = "action"; add.value = "childadd:" + e.cnes;
          add.setAttribute("formnovalidate", "");
          add.setAttribute("data-child-add", e.cnes);
          li.appendChild(add);
          list.appendChild(li);
        });
        box.appendChild(list);
      }).catch(failed(box, button));
  }

  // ---- the gestor
  var people = [];

  function useGestor(tools, person) {
    var fields = JSON.parse(tools.getAttribute("data-fields") || "{}");
    Object.keys(fields).forEach(function (what) {
      var input = document.getElementById("f-" + fields[what]);
      if (input && person[what]) {
        input.value = person[what];
        input.dispatchEvent(new Event("input", { bubbles: true })); // the mask formats it
      }
    });
  }

  function lookupGestor(tools, button) {
    var box = tools.querySelector("[data-gestor-result]");
    var query = tools.querySelector('input[name="__gestor_consulta"]').value;
    var url = tools.getAttribute("data-url") + "?q=" + encodeURIComponent(query);
    return fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(answer).then(function (body) {
        people = body.pessoas;
        box.textContent = "";
        if (!people.length) { showError(box, label(tools, "nenhum")); return; }
        if (people.length === 1) {
          useGestor(tools, people[0]);
          box.appendChild(el("p", label(tools, "preenchido"), "app-muted"));
          return;
        }
        box.appendChild(el("p", label(tools, "escolha")));
        var list = el("ul", null, "app-tools-list");
        people.forEach(function (p, i) {
          var li = el("li");
          li.appendChild(el("strong", p.nome));
          li.appendChild(document.createTextNode(" · CPF " + (p.cpf || "—") + " · " + (p.email || "—") + " "));
          var use = el("button", label(tools, "usar"), "br-button tertiary small");
          use.type = "submit"; use.name = "action"; use.value = "gestoruse:" + i;
          use.setAttribute("formnovalidate", "");
          use.setAttribute("data-gestor-use", String(i));
          li.appendChild(use);
          list.appendChild(li);
        });
        box.appendChild(list);
      }).catch(failed(box, button));
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button");
    if (!button || !window.fetch || !window.FormData) { return; }
    var tools = button.closest("[data-children-tools]");
    var gestor = button.closest("[data-gestor-lookup]");
    if (tools && button.hasAttribute("data-children-import")) {
      event.preventDefault();
      var data = new FormData();
      var file = tools.querySelector('input[name="__filhos_arquivo"]');
      if (file && file.files && file.files.length) { data.append("arquivo", file.files[0]); }
      data.append("texto", tools.querySelector('textarea[name="__filhos_importar"]').value);
      importInto(tools, button, data).then(function () {
        if (file) { file.value = ""; }
      });
    } else if (tools && button.hasAttribute("data-child-add")) {
      event.preventDefault();
      var one = new FormData();
      one.append("texto", button.getAttribute("data-child-add"));
      importInto(tools, button, one);
    } else if (tools && button.hasAttribute("data-child-lookup")) {
      event.preventDefault();
      lookupChild(tools, button);
    } else if (gestor && button.hasAttribute("data-gestor-find")) {
      event.preventDefault();
      lookupGestor(gestor, button);
    } else if (gestor && button.hasAttribute("data-gestor-use")) {
      var person = people[parseInt(button.getAttribute("data-gestor-use"), 10)];
      if (person) {
        event.preventDefault();
        useGestor(gestor, person);
        var box = gestor.querySelector("[data-gestor-result]");
        box.textContent = "";
        box.appendChild(el("p", label(gestor, "preenchido"), "app-muted"));
      }
    }
  });
})();
