/* The composer's "Insert answer" picker: suggestions for this conversation, a search over the
   library, and inserting an answer adapted to the channel (with its warnings) into the reply. */
(function () {
  "use strict";
  var picker = document.getElementById("answer-picker");
  var area = document.getElementById("reply-text");
  if (!picker || !area) { return; }
  var list = picker.querySelector(".answer-picker-list");
  var note = picker.querySelector(".answer-picker-note");
  var search = document.getElementById("answer-picker-q");
  var warningsBox = picker.querySelector(".answer-picker-warnings");
  var loaded = false;
  var timer = null;

  function csrf() {
    var field = document.querySelector("input[name=csrf_token]");
    return field ? field.value : "";
  }

  function show(items) {
    list.textContent = "";
    if (!items.length) {
      var empty = document.createElement("li");
      empty.className = "muted";
      empty.textContent = picker.dataset.labelNone;
      list.appendChild(empty);
      return;
    }
    items.forEach(function (item) {
      var li = document.createElement("li");
      var button = document.createElement("button");
      button.type = "button";
      button.dataset.answerId = item.id;
      var title = document.createElement("span");
      title.className = "title";
      title.textContent = item.title;
      var excerpt = document.createElement("span");
      excerpt.className = "excerpt";
      excerpt.textContent = item.body.length > 160 ? item.body.slice(0, 160) + "…" : item.body;
      button.appendChild(title);
      button.appendChild(excerpt);
      button.addEventListener("click", function () { insert(item.id); });
      li.appendChild(button);
      list.appendChild(li);
    });
  }

  function load(query) {
    var url = picker.dataset.suggestUrl + (query ? "?q=" + encodeURIComponent(query) : "");
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (data) {
        note.hidden = !data.all_languages;
        note.textContent = data.all_languages ? picker.dataset.labelOtherLanguages : "";
        show(query ? (data.results || []) : data.suggestions);
      })
      .catch(function () { list.textContent = picker.dataset.labelFailed; });
  }

  function putText(text) {
    var start = area.selectionStart, end = area.selectionEnd, value = area.value;
    if (typeof start === "number" && value) {
      area.value = value.slice(0, start) + text + value.slice(end);
      area.selectionStart = area.selectionEnd = start + text.length;
    } else {
      area.value = text;
    }
    area.dispatchEvent(new Event("input", { bubbles: true }));
    area.focus();
  }

  function showWarnings(data) {
    warningsBox.textContent = "";
    (data.warnings || []).forEach(function (w) {
      var p = document.createElement("p");
      p.dataset.code = w.code;
      p.textContent = w.message;
      if (w.code === "too_long" && data.short_text) {
        var use = document.createElement("button");
        use.type = "button";
        use.className = "link";
        use.textContent = picker.dataset.labelUseShort;
        use.addEventListener("click", function () {
          area.value = area.value.replace(data.text, data.short_text);
          area.dispatchEvent(new Event("input", { bubbles: true }));
          p.remove();
        });
        p.appendChild(document.createTextNode(" "));
        p.appendChild(use);
      }
      warningsBox.appendChild(p);
    });
    warningsBox.hidden = !warningsBox.childNodes.length;
  }

  function insert(id) {
    var url = picker.dataset.renderUrl.replace("/0/", "/" + id + "/");
    fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": csrf() },
      body: JSON.stringify({ conversation_id: Number(picker.dataset.conversationId) })
    }).then(function (r) { return r.json(); }).then(function (data) {
      if (!data.ok) { showWarnings({ warnings: [{ code: "error", message: data.error || "" }] }); return; }
      putText(data.text);
      showWarnings(data);
    }).catch(function () { showWarnings({ warnings: [{ code: "error", message: picker.dataset.labelFailed }] }); });
  }

  picker.addEventListener("toggle", function () {
    if (picker.open && !loaded) { loaded = true; load(""); }
  });
  search.addEventListener("input", function () {
    window.clearTimeout(timer);
    timer = window.setTimeout(function () { load(search.value.trim()); }, 200);
  });
  search.addEventListener("keydown", function (ev) { if (ev.key === "Enter") { ev.preventDefault(); } });
})();
