/* Inside the embedded form page: tell the embedding page how tall the form is, so its iframe fits.
   Only the height is sent, and only to the origins allowed to embed this form. */
(function () {
  "use strict";
  if (window.parent === window) { return; }
  var script = document.currentScript;
  var origins = ((script && script.getAttribute("data-origins")) || "").split(" ").filter(Boolean);
  function report() {
    var height = document.documentElement.scrollHeight;
    origins.forEach(function (origin) {
      try { window.parent.postMessage({ mainlandForm: "height", height: height }, origin); } catch (e) { /* ignore */ }
    });
  }
  window.addEventListener("load", report);
  if (window.ResizeObserver) { new ResizeObserver(report).observe(document.body); }
})();
