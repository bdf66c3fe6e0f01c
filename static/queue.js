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
