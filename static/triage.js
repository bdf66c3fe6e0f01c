/* /review/triage: j/k move through the list, c decides "customer" (not spam), s "spam".
 * A decision posts in the background and the row leaves the list; the next one is selected. */
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var table = document.getElementById("triage-list");
    if (!table || !window.Live || !window.fetch) { return; }
    var status = document.getElementById("triage-status");
    var current = -1;
    var busy = false;
    function rows() { return Array.prototype.slice.call(table.querySelectorAll("tbody tr[data-review-id]")); }
    function select(index) {
      var all = rows();
      if (!all.length) { current = -1; return; }
      current = Math.max(0, Math.min(all.length - 1, index));
      all.forEach(function (row, i) {
        row.classList.toggle("selected", i === current);
        row.setAttribute("aria-selected", i === current ? "true" : "false");
      });
      all[current].scrollIntoView({ block: "nearest" });
    }
    function decide(verdict) {
      var row = current >= 0 ? rows()[current] : null;
      if (!row || busy) { return; }
      busy = true;
      window.Live.post(row.getAttribute("data-decide-url"), { verdict: verdict }).then(function (res) {
        busy = false;
        if (res[1] && res[1].ok) {
          row.parentNode.removeChild(row);
          if (status) { status.textContent = res[1].message || ""; }
          if (!rows().length) {
            table.hidden = true;
            document.getElementById("triage-empty").hidden = false;
          }
          select(current);
        } else if (res[1] && res[1].error) {
          window.alert(res[1].error);
        }
      }, function () { busy = false; });
    }
    window.Live.key("j", function () { select(current + 1); });
    window.Live.key("k", function () { select(current - 1); });
    window.Live.key("c", function () { decide("customer"); });
    window.Live.key("s", function () { decide("spam"); });
    select(0);
  });
})();
