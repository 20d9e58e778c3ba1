// The order board: polls board.json with the filters every few seconds and redraws the columns.
(function () {
  "use strict";
  var board = document.getElementById("board");
  var form = document.getElementById("filters");
  var live = document.getElementById("live");
  var problem = document.getElementById("problem");
  var orderUrl = board.dataset.orderUrl.replace(/0$/, "");
  // Columns always shown, in the flow's order; the others appear when they hold orders.
  var ALWAYS = ["needs_review", "on_hold", "approved", "allocated", "backordered", "picking", "packed", "shipped"];
  var POLL_MS = 3000;
  var timer = null;
  var inflight = null;

  function query() {
    var params = new URLSearchParams();
    new FormData(form).forEach(function (value, key) { if (String(value).trim()) params.append(key, value); });
    return params.toString();
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function renderCard(order) {
    var a = el("a", "card");
    a.href = orderUrl + order.id;
    a.dataset.orderId = order.id;
    var head = el("div", "card-head");
    head.appendChild(el("strong", "", order.number.charAt(0) === "#" ? order.number : "#" + order.number));
    head.appendChild(el("span", "amount", order.total + " " + order.currency));
    a.appendChild(head);
    a.appendChild(el("div", "customer", order.customer || "—"));
    var meta = el("div", "meta muted", order.shop + " · " + order.shipping_level + " · " +
                  new Date(order.placed_at).toLocaleString([], {dateStyle: "short", timeStyle: "short"}));
    a.appendChild(meta);
    if (order.risk_level && order.risk_level !== "low") a.appendChild(el("span", "tag risk", "risk " + order.risk_level));
    if (order.shipping_level === "express" || order.shipping_level === "overnight") a.appendChild(el("span", "tag", order.shipping_level));
    (order.tags || []).forEach(function (tag) { a.appendChild(el("span", "tag", tag)); });
    return a;
  }

  function render(data) {
    var statusFilter = new FormData(form).get("status");
    var frag = document.createDocumentFragment();
    data.columns.forEach(function (column) {
      var shown = statusFilter ? column.status === statusFilter : (column.count > 0 || ALWAYS.indexOf(column.status) >= 0);
      if (!shown) return;
      var col = el("section", "column");
      col.dataset.status = column.status;
      var h = el("h2", "", column.status.replace(/_/g, " "));
      h.appendChild(el("span", "count", String(column.count)));
      col.appendChild(h);
      column.orders.forEach(function (order) { col.appendChild(renderCard(order)); });
      if (column.count > column.orders.length) col.appendChild(el("p", "muted more", "+ " + (column.count - column.orders.length) + " more"));
      frag.appendChild(col);
    });
    board.replaceChildren(frag);
    live.textContent = data.total + " orders · live, updated " + new Date().toLocaleTimeString();
  }

  function refresh() {
    clearTimeout(timer);
    if (inflight) inflight.abort();
    inflight = new AbortController();
    var q = query();
    history.replaceState(null, "", q ? "?" + q : location.pathname);
    fetch(board.dataset.source + (q ? "?" + q : ""), {headers: {Accept: "application/json"}, signal: inflight.signal,
                                                     credentials: "same-origin"})
      .then(function (response) {
        if (response.status === 401) { location.reload(); throw new Error("signed out"); }
        return response.json().then(function (body) { return {ok: response.ok, body: body}; });
      })
      .then(function (result) {
        if (!result.ok) {
          problem.hidden = false;
          problem.textContent = result.body.error.message + " " + JSON.stringify(result.body.error.fields || {});
          return;
        }
        problem.hidden = true;
        render(result.body);
      })
      .catch(function (error) { if (error.name !== "AbortError") live.textContent = "offline — retrying"; })
      .finally(function () { timer = setTimeout(refresh, POLL_MS); });
  }

  form.addEventListener("submit", function (event) { event.preventDefault(); refresh(); });
  var typing = null;
  form.addEventListener("input", function () { clearTimeout(typing); typing = setTimeout(refresh, 250); });
  form.addEventListener("change", refresh);
  refresh();
})();
