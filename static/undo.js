/* The undo-send toast (templates/_undo_toast.html): each reply's countdown, and the toast goes away
 * when its window ends. Undo is a plain form post: it needs no script. */
(function () {
  "use strict";
  document.querySelectorAll(".undo-toast-form[data-seconds-left]").forEach(function (form) {
    var deadline = Date.now() + Number(form.getAttribute("data-seconds-left")) * 1000;
    var label = form.querySelector(".undo-countdown");
    var timer = window.setInterval(function () {
      var left = Math.ceil((deadline - Date.now()) / 1000);
      if (left > 0) { label.textContent = label.getAttribute("data-template").replace("{n}", String(left)); return; }
      window.clearInterval(timer);
      var toast = form.parentNode;
      form.remove();
      if (toast && !toast.querySelector("form")) { toast.remove(); }
    }, 250);
  });
})();
