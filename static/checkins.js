// The check-ins page (templates/customers/check_ins.html): j/k move through the suggestions, s
// starts the selected one (its New conversation page), x skips it, z snoozes it to the date in
// its row (a week unless changed). Everything works without this script; it only saves clicks.
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
  window.Live.key("j", function () { select(current + 1); });
  window.Live.key("k", function () { select(current - 1); });
  window.Live.key("s", start);
  window.Live.key("x", function () { submit("form[data-skip]"); });
  window.Live.key("z", function () { submit("form[data-snooze]"); });
})();
