// The queue page: "select all on this page" for bulk actions, and the new-label field shown only
// when it is needed. Everything works without this script; it only saves clicks.
(function () {
  "use strict";
  var form = document.getElementById("bulk");
  if (!form) return;
  var all = document.getElementById("pick-all");
  var boxes = function () { return form.querySelectorAll("input[name=ids]"); };
  if (all) {
    all.hidden = false;
    all.addEventListener("change", function () {
      boxes().forEach(function (box) { box.checked = all.checked; });
    });
    form.addEventListener("change", function (event) {
      if (event.target.name !== "ids") return;
      var list = Array.prototype.slice.call(boxes());
      all.checked = list.length > 0 && list.every(function (box) { return box.checked; });
      all.indeterminate = !all.checked && list.some(function (box) { return box.checked; });
    });
  }
  var op = document.getElementById("bulk-op");
  var labelName = form.querySelector("input[name=label_name]");
  if (op && labelName) {
    var sync = function () { labelName.hidden = op.value !== "label_add:new"; };
    op.addEventListener("change", sync);
    sync();
  }
})();

// Live rows: when a conversation changes or arrives, fetch this page's rows again (?part=rows) and
// swap them in place: no reload, the scroll position, ticked boxes and the keyboard selection stay.
// Waiting times tick every 30 seconds. Both only save reloads; the page works without them.
(function () {
  "use strict";
  var table = document.querySelector("table.queue[data-live-rows]");
  var lang = document.documentElement.lang || "en";

  function waitingText(since) {
    var minutes = Math.max(0, Math.floor((Date.now() - Date.parse(since)) / 60000));
    var unit = "minute", value = minutes;
    if (minutes >= 2 * 24 * 60) { unit = "day"; value = Math.floor(minutes / (24 * 60)); }
    else if (minutes >= 60) { unit = "hour"; value = Math.floor(minutes / 60); }
    try {
      return new Intl.NumberFormat(lang, { style: "unit", unit: unit, unitDisplay: "short" }).format(value);
    } catch (err) { return String(value); }
  }
  function tick() {
    document.querySelectorAll(".waiting[data-since]").forEach(function (el) {
      var since = el.getAttribute("data-since");
      if (since && !isNaN(Date.parse(since))) { el.textContent = waitingText(since); }
    });
  }
  tick();
  window.setInterval(tick, 30000);

  // live.js is deferred after this file: subscribe once every deferred script has run.
  document.addEventListener("DOMContentLoaded", function () {
  if (!table || !window.Live || !window.fetch) { return; }
  // x ticks the row the keyboard is on, for a bulk action.
  window.Live.key("x", function () {
    var box = table.querySelector("tr.selected input[name=ids]");
    if (box) { box.checked = !box.checked; box.dispatchEvent(new Event("change", { bubbles: true })); }
  });
  var body = table.tBodies[0];
  var pending = null;
  var busy = false;

  function rowsUrl() {
    var url = new URL(table.getAttribute("data-live-rows"), window.location.href);
    url.searchParams.set("part", "rows");
    return url.toString();
  }
  function refresh() {
    pending = null;
    if (busy) { pending = window.setTimeout(refresh, 300); return; }
    busy = true;
    var ticked = {};
    body.querySelectorAll("input[name=ids]:checked").forEach(function (box) { ticked[box.value] = true; });
    var selected = body.querySelector("tr.selected");
    var selectedId = selected ? selected.getAttribute("data-id") : null;
    fetch(rowsUrl(), { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (res) { return res.ok ? res.text() : null; })
      .then(function (html) {
        if (html === null) { return; }
        var y = window.scrollY;
        body.innerHTML = html;
        body.querySelectorAll("input[name=ids]").forEach(function (box) { box.checked = !!ticked[box.value]; });
        if (selectedId) {
          var again = body.querySelector("tr[data-id='" + selectedId + "']");
          if (again) { again.classList.add("selected"); again.setAttribute("aria-selected", "true"); }
        }
        window.scrollTo(0, y);
        tick();
        var banner = document.querySelector("[data-live-new]");
        if (banner) { banner.hidden = true; }
      })
      .catch(function () { /* the next change tries again */ })
      .then(function () { busy = false; });
  }
  function soon() { if (!pending) { pending = window.setTimeout(refresh, 400); } }
  window.Live.on("conversation.changed", soon);
  window.Live.on("conversation.new", soon);
  });
})();
