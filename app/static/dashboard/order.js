// An order's page: says when someone else changed the order, so nobody acts on a stale view unknowingly.
(function () {
  "use strict";
  var root = document.getElementById("order");
  var banner = document.getElementById("changed");
  var version = root.dataset.version;
  function check() {
    fetch(root.dataset.versionUrl, {headers: {Accept: "application/json"}, credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) {
        if (body && String(body.version) !== version) { banner.hidden = false; return; }
        setTimeout(check, 4000);
      })
      .catch(function () { setTimeout(check, 8000); });
  }
  setTimeout(check, 4000);
  // Confirm the actions that cannot be undone.
  document.querySelectorAll("form.action[data-action=cancel]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm("Cancel this order? This cannot be undone.")) event.preventDefault();
    });
  });
})();
