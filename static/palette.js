/* The command palette: Ctrl/Cmd+K on a conversation (or on the queue, for the selected row) opens a
 * box; typing filters every move (status, snooze, assign, team, label, priority, insert an answer) by
 * fuzzy match; Enter does the highlighted one through the same routes as the buttons.
 * The commands come from GET /conversations/<id>/commands (inbox/web/palette.py). No framework. */
(function () {
  "use strict";
  var dialog = document.getElementById("palette");
  if (!dialog) { return; }
  var input = dialog.querySelector("input");
  var list = dialog.querySelector("ul");
  var status = dialog.querySelector("[data-palette-status]");
  var commands = [];
  var shown = [];
  var active = 0;
  var forId = null;

  function conversationId() {
    var holder = document.querySelector("[data-live-conversation]");
    if (holder) { return holder.getAttribute("data-live-conversation"); }
    var row = document.querySelector("table.queue tr.selected[data-id]");
    return row ? row.getAttribute("data-id") : null;
  }

  /* Every typed character in order, closer together and at word starts scoring higher; null: no match. */
  function score(label, query) {
    if (!query) { return 0; }
    var text = label.toLowerCase(), q = query.toLowerCase(), pos = -1, total = 0, last = -2;
    for (var i = 0; i < q.length; i++) {
      if (q[i] === " ") { continue; }
      pos = text.indexOf(q[i], pos + 1);
      if (pos < 0) { return null; }
      total += (pos === last + 1 ? 3 : 1) + (pos === 0 || text[pos - 1] === " " ? 2 : 0);
      last = pos;
    }
    return total - text.length / 100;
  }

  function draw() {
    var query = input.value.trim();
    shown = commands.map(function (c) { return { c: c, s: score(c.group + " " + c.label, query) }; })
      .filter(function (x) { return x.s !== null; })
      .sort(function (a, b) { return b.s - a.s; })
      .slice(0, 12).map(function (x) { return x.c; });
    active = Math.min(active, Math.max(0, shown.length - 1));
    list.innerHTML = "";
    shown.forEach(function (c, i) {
      var li = document.createElement("li");
      li.id = "palette-item-" + i;
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", i === active ? "true" : "false");
      var group = document.createElement("span");
      group.className = "palette-group";
      group.textContent = c.group;
      li.appendChild(group);
      li.appendChild(document.createTextNode(c.label));
      li.addEventListener("mousedown", function (ev) { ev.preventDefault(); active = i; run(); });
      list.appendChild(li);
    });
    input.setAttribute("aria-activedescendant", shown.length ? "palette-item-" + active : "");
    status.textContent = shown.length ? "" : (status.getAttribute("data-empty") || "");
  }

  function open(prefill) {
    var id = conversationId();
    if (!id) { return; }
    dialog.hidden = false;
    input.value = prefill || "";
    active = 0;
    input.focus();
    if (forId !== id) {
      commands = [];
      draw();
      status.textContent = status.getAttribute("data-loading") || "";
      fetch("/conversations/" + encodeURIComponent(id) + "/commands", { credentials: "same-origin" })
        .then(function (res) { return res.json(); })
        .then(function (data) { commands = data.commands || []; forId = id; draw(); })
        .catch(function () { status.textContent = status.getAttribute("data-failed") || ""; });
    } else { draw(); }
  }
  function close() { dialog.hidden = true; }

  function insertAnswer(c) {
    window.Live.post(c.url, c.fields).then(function (res) {
      var data = res[1] || {};
      var box = document.querySelector("textarea[name=text]");
      if (!data.ok || !box) { if (data.error) { window.alert(data.error); } return; }
      // Too long for the channel: the answer's short version, as the answer picker does.
      var text = (data.fits === false && data.short_text) ? data.short_text : (data.text || data.body || "");
      var at = box.selectionStart || box.value.length;
      box.value = box.value.slice(0, at) + text + box.value.slice(box.selectionEnd || at);
      box.dispatchEvent(new Event("input", { bubbles: true }));
      box.focus();
      // A variable without a value (an order number nobody knows yet) is selected, to type over,
      // and the warnings are shown where the composer says how things stand (not as an error).
      var gap = box.value.indexOf("{{", at);
      if (gap >= 0) { box.setSelectionRange(gap, box.value.indexOf("}}", gap) + 2); }
      var status = document.getElementById("composer-status");
      var warnings = (data.warnings || []).map(function (w) { return w.message; }).join(" ");
      if (status && warnings) { status.textContent = warnings; status.hidden = false; }
    });
  }

  function run() {
    var c = shown[active];
    if (!c) { return; }
    close();
    if (c.do === "answer") { insertAnswer(c); return; }
    window.Live.post(c.url, c.fields).then(function (res) {
      var data = res[1] || {};
      if (data.next_url) { window.location.href = data.next_url; }
      else if (data.ok) { window.location.reload(); }
      else if (data.error) { window.alert(data.error); }
    });
  }

  document.addEventListener("keydown", function (ev) {
    if ((ev.ctrlKey || ev.metaKey) && !ev.altKey && (ev.key === "k" || ev.key === "K")) {
      ev.preventDefault();
      if (dialog.hidden) { open(); } else { close(); }
      return;
    }
    if (dialog.hidden) { return; }
    if (ev.key === "Escape") { ev.preventDefault(); close(); }
    else if (ev.key === "ArrowDown") { ev.preventDefault(); active = Math.min(active + 1, shown.length - 1); draw(); }
    else if (ev.key === "ArrowUp") { ev.preventDefault(); active = Math.max(active - 1, 0); draw(); }
    else if (ev.key === "Enter" && ev.target === input) { ev.preventDefault(); run(); }
  });
  input.addEventListener("input", function () { active = 0; draw(); });

  /* Single keys for the moves agents make most, each opening the palette on its group. */
  document.addEventListener("DOMContentLoaded", function () {
    if (!window.Live) { return; }
    var strings = dialog.dataset;
    window.Live.key("s", function () { open(strings.snooze || "snooze"); });
    window.Live.key("l", function () { open(strings.label || "label"); });
    window.Live.key("i", function () { open(strings.answer || "answer"); });
    window.Live.key("/", function () {
      var search = document.querySelector(".topbar-search input");
      if (search) { search.focus(); search.select(); }
    });
    window.Live.key("u", function () {
      var back = document.getElementById("nav-queue");
      if (back) { window.location.href = back.getAttribute("href"); }
    });
  });
  dialog.addEventListener("click", function (ev) { if (ev.target === dialog) { close(); } });
})();
