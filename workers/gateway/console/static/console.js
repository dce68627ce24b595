// The start page's counts refresh every 60 s without reloading the page (the seed's widget).
// Everything else in the console works without this script.
(function () {
  "use strict";
  function refresh(box) {
    fetch(box.dataset.refresh, { credentials: "same-origin", headers: { "X-Console-Fragment": "1" } })
      .then(function (answer) { return answer.ok ? answer.text() : null; })
      .then(function (html) { if (html !== null) { box.innerHTML = html; } })
      .catch(function () { /* the next round tries again */ });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-refresh]").forEach(function (box) {
      var every = parseInt(box.dataset.every || "60", 10) * 1000;
      setInterval(function () { refresh(box); }, every);
    });
  });
})();
