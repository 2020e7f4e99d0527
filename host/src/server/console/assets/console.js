// actionbox console: the one script (CSP allows no inline code). It only
// adds a convenience: copying the assistant payload. Every page works without it.
"use strict";
document.addEventListener("click", function (event) {
  var button = event.target.closest ? event.target.closest("[data-copy]") : null;
  if (!button) { return; }
  var source = document.getElementById(button.getAttribute("data-copy"));
  if (!source) { return; }
  var text = source.textContent;
  var done = function (label) { button.textContent = label; setTimeout(function () { button.textContent = "Copy"; }, 2000); };
  if (navigator.clipboard && navigator.clipboard.writeText) {
    navigator.clipboard.writeText(text).then(function () { done("Copied"); }, function () { selectText(source); done("Selected: press Ctrl+C"); });
  } else {
    selectText(source);
    done("Selected: press Ctrl+C");
  }
});
function selectText(element) {
  var range = document.createRange();
  range.selectNodeContents(element);
  var selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
}
