// The operations page: queue depths and the outbox, live, so staff can watch a burst drain.
(function () {
  "use strict";
  var root = document.getElementById("ops");
  function text(id, value) { var node = document.getElementById(id); if (node) node.textContent = value; }
  function refresh() {
    fetch(root.dataset.source, {headers: {Accept: "application/json"}, credentials: "same-origin"})
      .then(function (r) { return r.json(); })
      .then(function (data) {
        text("redis-state", "Redis: " + data.depths.redis);
        (data.depths.queues || []).forEach(function (q) {
          var row = document.querySelector('tr[data-queue="' + q.name + '"]');
          if (!row) return;
          row.children[1].textContent = q.queued;
          row.children[2].textContent = q.started;
          row.children[3].textContent = q.scheduled;
        });
        text("outbox-pending", data.outbox.pending);
        text("outbox-failed", data.outbox.failed);
        text("outbox-lag", data.outbox.lag_seconds);
        text("ops-live", "live " + new Date().toLocaleTimeString());
      })
      .catch(function () { text("ops-live", "offline — retrying"); })
      .finally(function () { setTimeout(refresh, 2000); });
  }
  refresh();
})();
