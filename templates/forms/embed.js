/* Mainland contact form: inserts the form as an iframe where this script tag stands.
   Optional attributes: data-target="element-id" (put the form there instead), data-height="640". */
(function () {
  "use strict";
  var formUrl = {{ form_url|tojson }};
  var origin = {{ origin|tojson }};
  var script = document.currentScript;
  var frame = document.createElement("iframe");
  frame.src = formUrl;
  frame.title = (script && script.getAttribute("data-title")) || {{ title|tojson }};
  frame.setAttribute("loading", "lazy");
  frame.style.width = "100%";
  frame.style.border = "0";
  frame.style.height = (parseInt(script && script.getAttribute("data-height"), 10) || 640) + "px";
  var target = script && script.getAttribute("data-target") && document.getElementById(script.getAttribute("data-target"));
  if (target) {
    target.appendChild(frame);
  } else if (script && script.parentNode) {
    script.parentNode.insertBefore(frame, script.nextSibling);
  }
  // The form page reports its height so the frame fits without a scroll bar.
  window.addEventListener("message", function (event) {
    if (event.origin !== origin || event.source !== frame.contentWindow) { return; }
    var data = event.data;
    if (data && data.mainlandForm === "height" && typeof data.height === "number") {
      frame.style.height = Math.min(Math.max(Math.ceil(data.height), 200), 5000) + "px";
    }
  });
})();
