// A "Copy" button for a read-only field: <button data-copy="field-id" data-copied="Copied" hidden>.
// The button stays hidden without script or clipboard access; the field can still be selected and copied.
(function () {
  "use strict";
  if (!navigator.clipboard) return;
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var field = document.getElementById(button.dataset.copy);
    if (!field) return;
    var status = button.parentElement.querySelector("[data-copy-status]");
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(field.value).then(function () {
        if (status) status.textContent = button.dataset.copied || "";
      }, function () {
        field.focus();
        field.select();
      });
    });
  });
})();
