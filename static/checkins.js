// The check-ins page (templates/customers/check_ins.html), with the keys of the other lists: j/k move
// through the suggestions, Enter or o starts the selected one (opens its New conversation page), x
// skips it, s snoozes it to the date in its row (a week unless changed). Everything works without
// this script; it only saves clicks.
(function () {
  "use strict";
  var list = document.getElementById("check-ins");
  if (!list || !window.Live) { return; }
  var current = -1;
  function rows() { return Array.prototype.slice.call(list.querySelectorAll("li.check-in")); }
  function select(index) {
    var all = rows();
    if (!all.length) { return; }
    current = Math.max(0, Math.min(all.length - 1, index));
    all.forEach(function (row, i) {
      row.classList.toggle("selected", i === current);
      row.setAttribute("aria-current", i === current ? "true" : "false");
    });
    all[current].scrollIntoView({ block: "nearest" });
  }
  function selected() { return current >= 0 ? rows()[current] : null; }
  function start() {
    var row = selected();
    var link = row && row.querySelector("a[data-start]");
    if (link) { window.location.href = link.getAttribute("href"); }
  }
  function submit(selector) {
    var row = selected();
    var form = row && row.querySelector(selector);
    if (form) { form.submit(); }
  }
  function startOr(ev) {
    // Enter on a focused link or button keeps doing what it does there.
    var target = ev && ev.target;
    if (target && target !== document.body && target.closest && target.closest("a, button")) { target.click(); return; }
    start();
  }
  // After palette.js, whose "s" (snooze a conversation) means nothing here: it snoozes the suggestion.
  document.addEventListener("DOMContentLoaded", function () {
    window.Live.key("j", function () { select(current + 1); });
    window.Live.key("k", function () { select(current - 1); });
    window.Live.key("Enter", startOr);
    window.Live.key("o", start);
    window.Live.key("x", function () { submit("form[data-skip]"); });
    window.Live.key("s", function () { submit("form[data-snooze]"); });
  });
})();
