// The analytics page: one fetch of analytics.json, four charts.
(function () {
  "use strict";
  var root = document.getElementById("analytics");
  var period = document.getElementById("period");
  period.addEventListener("change", function () { period.submit(); });
  function byDay(days, perDay) { return days.map(function (d) { return perDay[d] === undefined ? 0 : perDay[d]; }); }

  fetch(root.dataset.source, {headers: {Accept: "application/json"}, credentials: "same-origin"})
    .then(function (r) { return r.json(); })
    .then(function (data) {
      var o = data.orders_per_day;
      var channels = Object.keys(o.orders).sort();
      if (channels.length) {
        Charts.line(document.getElementById("chart-orders"), o.days,
                    channels.map(function (c) { return {name: c, values: byDay(o.days, o.orders[c])}; }));
      } else Charts.empty(document.getElementById("chart-orders"), "No orders in this period.");

      // One revenue chart per currency: amounts in different currencies never share an axis.
      var revenueBox = document.getElementById("chart-revenue");
      var currencies = Object.keys(o.revenue).sort(function (a, b) { return a < b ? -1 : 1; });
      if (!currencies.length) Charts.empty(revenueBox, "No revenue in this period.");
      else revenueBox.replaceChildren();
      currencies.forEach(function (currency) {
        var box = document.createElement("div");
        box.className = "chart-part";
        var title = document.createElement("h3");
        title.textContent = currency;
        revenueBox.appendChild(title);
        revenueBox.appendChild(box);
        Charts.line(box, o.days, Object.keys(o.revenue[currency]).sort().map(function (c) {
          return {name: c, values: o.days.map(function (d) { var v = o.revenue[currency][c][d]; return v === undefined ? 0 : Number(v); })};
        }));
      });

      var lead = data.lead_time;
      var leadBox = document.getElementById("chart-lead");
      if (lead.shipped_orders) {
        var days = o.days;
        Charts.line(leadBox, days, [
          {name: "median", values: days.map(function (d) { return lead.daily[d] ? lead.daily[d].p50 : null; })},
          {name: "90th percentile", values: days.map(function (d) { return lead.daily[d] ? lead.daily[d].p90 : null; })}
        ], " h");
        var summary = document.createElement("p");
        summary.className = "percentiles";
        summary.textContent = lead.shipped_orders + " shipped orders · " + Object.keys(lead.hours).map(function (k) {
          return k + " " + lead.hours[k] + " h"; }).join(" · ");
        leadBox.appendChild(summary);
      } else Charts.empty(leadBox, "No shipped orders in this period.");

      var late = data.late;
      var t = late.totals;
      if (t.on_time + t.late + t.overdue + t.open) {
        Charts.stacked(document.getElementById("chart-late"), late.days, [
          {name: "on time (" + t.on_time + ")", values: late.days.map(function (d) { return (late.per_day[d] || {}).on_time || 0; })},
          {name: "shipped late (" + t.late + ")", values: late.days.map(function (d) { return (late.per_day[d] || {}).late || 0; })},
          {name: "overdue, not shipped (" + t.overdue + ")", values: late.days.map(function (d) { return (late.per_day[d] || {}).overdue || 0; })},
          {name: "within promise (" + t.open + ")", values: late.days.map(function (d) { return (late.per_day[d] || {}).open || 0; })}
        ], ["#16a34a", "#ea580c", "#dc2626", "#94a3b8"]);
      } else Charts.empty(document.getElementById("chart-late"), "No orders in this period.");

      var returns = data.returns_by_sku;
      if (returns.length) {
        Charts.hbars(document.getElementById("chart-returns"), returns.map(function (r) {
          return {label: r.sku, value: r.rate, note: r.returned + " of " + r.sold + " units"}; }));
      } else Charts.empty(document.getElementById("chart-returns"), "No items sold in this period.");
    })
    .catch(function (error) { root.insertAdjacentText("afterbegin", "Could not load the figures: " + error); });
})();
