// Writing first (#12): the template picker's live preview, and the new-conversation form showing
// either free text or the template picker of the chosen channel. Without this script every field is
// shown and the server takes what belongs to the chosen channel.
(function () {
  "use strict";

  function fill(body, values) {
    return body.replace(/\{\{\s*(\d+)\s*\}\}/g, function (whole, n) {
      var value = values[Number(n) - 1];
      return value ? value : whole;
    });
  }

  function setUpPicker(picker) {
    var templates = [];
    try { templates = JSON.parse(picker.dataset.templates || "[]"); } catch (e) { templates = []; }
    var select = picker.querySelector(".template-select");
    var preview = picker.querySelector(".template-preview");
    var rows = Array.prototype.slice.call(picker.querySelectorAll(".template-variable"));
    function chosen() {
      return templates.filter(function (t) { return t.key === select.value; })[0] || null;
    }
    function update() {
      var template = chosen();
      var count = template ? template.variables : 0;
      var values = [];
      rows.forEach(function (row, i) {
        var input = row.querySelector("input");
        var used = i < count;
        row.hidden = !used;
        input.disabled = !used;
        input.required = used;
        if (used) { values.push(input.value.trim()); }
      });
      preview.textContent = template ? fill(template.body, values) : picker.dataset.empty;
    }
    select.addEventListener("change", update);
    rows.forEach(function (row) { row.querySelector("input").addEventListener("input", update); });
    update();
  }

  function setUpStartForm(form) {
    var radios = Array.prototype.slice.call(form.querySelectorAll("input[name=to]"));
    var freeText = form.querySelector("#free-text");
    var subject = form.querySelector("#subject-field");
    var pickers = Array.prototype.slice.call(form.querySelectorAll(".template-picker"));
    function update() {
      var radio = radios.filter(function (r) { return r.checked; })[0];
      if (!radio) { return; }
      var template = radio.dataset.template === "1";
      freeText.hidden = template;
      form.querySelector("#start-text").disabled = template;
      subject.hidden = radio.dataset.subject !== "1";
      form.querySelector("#start-subject").disabled = subject.hidden;
      pickers.forEach(function (picker) {
        var mine = template && picker.dataset.channel === radio.dataset.channel;
        picker.hidden = !mine;
        picker.disabled = !mine;
      });
    }
    radios.forEach(function (r) { r.addEventListener("change", update); });
    update();
  }

  // In a conversation the template form belongs to the Reply tab: hidden with the reply form.
  function followReplyTab(templateForm) {
    var replyForm = document.getElementById("reply-form");
    if (!replyForm || !window.MutationObserver) { return; }
    var sync = function () { templateForm.hidden = replyForm.hidden; };
    new MutationObserver(sync).observe(replyForm, { attributes: true, attributeFilter: ["hidden"] });
    sync();
  }

  document.querySelectorAll(".template-picker").forEach(setUpPicker);
  var templateForm = document.getElementById("template-form");
  if (templateForm) { followReplyTab(templateForm); }
  var start = document.getElementById("start-form");
  if (start) { setUpStartForm(start); }
})();
