// Small SVG charts drawn here (no library): a line chart, a stacked bar chart and horizontal bars.
var Charts = (function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var COLORS = ["#2563eb", "#db2777", "#16a34a", "#ea580c", "#7c3aed", "#0891b2", "#ca8a04"];
  var W = 560, H = 220, PAD = {l: 48, r: 12, t: 12, b: 28};

  function svg(tag, attrs, text) {
    var node = document.createElementNS(NS, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function niceMax(value) {
    if (value <= 0) return 1;
    var step = Math.pow(10, Math.floor(Math.log10(value)));
    var n = Math.ceil(value / step);
    return (n <= 2 ? 2 : n <= 5 ? 5 : 10) * step;
  }

  function frame(container, labels, max, unit, band) {
    var root = svg("svg", {viewBox: "0 0 " + W + " " + H, role: "img", class: "svg-chart"});
    var plotH = H - PAD.t - PAD.b;
    for (var i = 0; i <= 4; i++) {
      var y = PAD.t + plotH - plotH * i / 4;
      root.appendChild(svg("line", {x1: PAD.l, x2: W - PAD.r, y1: y, y2: y, class: "grid"}));
      root.appendChild(svg("text", {x: PAD.l - 6, y: y + 4, "text-anchor": "end", class: "axis"},
                           formatNumber(max * i / 4) + (unit || "")));
    }
    var every = Math.max(1, Math.ceil(labels.length / 8));
    labels.forEach(function (label, index) {
      if (index % every) return;
      root.appendChild(svg("text", {x: xAt(index, labels.length, band), y: H - 8, "text-anchor": "middle", class: "axis"},
                           label.slice(5)));
    });
    container.replaceChildren(root);
    return root;
  }

  function formatNumber(v) { return v >= 1000 ? (v / 1000).toFixed(v >= 10000 ? 0 : 1) + "k" : String(Math.round(v * 10) / 10); }

  // Points sit on the edges of the plot (lines), or in the middle of equal bands (bars).
  function xAt(index, count, band) {
    var plotW = W - PAD.l - PAD.r;
    if (band) return PAD.l + plotW * (index + 0.5) / count;
    return PAD.l + (count <= 1 ? plotW / 2 : plotW * index / (count - 1));
  }

  function yAt(value, max) { var plotH = H - PAD.t - PAD.b; return PAD.t + plotH - plotH * value / max; }

  function legend(container, names) {
    var list = document.createElement("ul");
    list.className = "legend";
    names.forEach(function (name, i) {
      var item = document.createElement("li");
      var swatch = document.createElement("span");
      swatch.style.background = COLORS[i % COLORS.length];
      item.appendChild(swatch);
      item.appendChild(document.createTextNode(name));
      list.appendChild(item);
    });
    container.appendChild(list);
  }

  function empty(container, message) {
    var p = document.createElement("p");
    p.className = "muted";
    p.textContent = message;
    container.replaceChildren(p);
  }

  // series: [{name, values: [number|null per label]}]
  function line(container, labels, series, unit) {
    var max = niceMax(Math.max.apply(null, [0].concat(series.map(function (s) {
      return Math.max.apply(null, s.values.map(function (v) { return v || 0; }));
    }))));
    var root = frame(container, labels, max, unit);
    series.forEach(function (s, i) {
      var points = [];
      s.values.forEach(function (v, index) { if (v !== null && v !== undefined) points.push(xAt(index, labels.length) + "," + yAt(v, max)); });
      root.appendChild(svg("polyline", {points: points.join(" "), fill: "none", stroke: COLORS[i % COLORS.length], "stroke-width": 2}));
      s.values.forEach(function (v, index) {
        if (v === null || v === undefined) return;
        var dot = svg("circle", {cx: xAt(index, labels.length), cy: yAt(v, max), r: 2.5, fill: COLORS[i % COLORS.length]});
        dot.appendChild(svg("title", {}, s.name + " " + labels[index] + ": " + v + (unit || "")));
        root.appendChild(dot);
      });
    });
    legend(container, series.map(function (s) { return s.name; }));
  }

  // Stacked bars: series values add up per label.
  function stacked(container, labels, series, colors) {
    var totals = labels.map(function (_, i) { return series.reduce(function (sum, s) { return sum + (s.values[i] || 0); }, 0); });
    var max = niceMax(Math.max.apply(null, [0].concat(totals)));
    var root = frame(container, labels, max, "", true);
    var plotW = W - PAD.l - PAD.r;
    var barW = Math.max(2, plotW / Math.max(1, labels.length) * 0.7);
    labels.forEach(function (label, index) {
      var base = 0;
      series.forEach(function (s, i) {
        var v = s.values[index] || 0;
        if (!v) return;
        var top = yAt(base + v, max), bottom = yAt(base, max);
        var rect = svg("rect", {x: xAt(index, labels.length, true) - barW / 2, y: top, width: barW, height: bottom - top,
                                fill: (colors || COLORS)[i % COLORS.length]});
        rect.appendChild(svg("title", {}, s.name + " " + label + ": " + v));
        root.appendChild(rect);
        base += v;
      });
    });
    legend(container, series.map(function (s) { return s.name; }));
    if (colors) container.querySelectorAll(".legend span").forEach(function (sw, i) { sw.style.background = colors[i]; });
  }

  // Horizontal bars: rows [{label, value, note}], value in [0, 1] shown as a percentage.
  function hbars(container, rows) {
    var rowH = 22, width = Math.max(420, container.clientWidth || W);
    var root = svg("svg", {viewBox: "0 0 " + width + " " + (rows.length * rowH + 8), role: "img", class: "svg-chart",
                           width: width, height: rows.length * rowH + 8});
    var max = Math.max.apply(null, [0.0001].concat(rows.map(function (r) { return r.value; })));
    rows.forEach(function (r, i) {
      var y = 4 + i * rowH;
      root.appendChild(svg("text", {x: 150, y: y + 14, "text-anchor": "end", class: "axis"}, r.label));
      var w = (width - 360) * r.value / max;
      root.appendChild(svg("rect", {x: 158, y: y + 3, width: Math.max(1, w), height: rowH - 8, fill: COLORS[1]}));
      root.appendChild(svg("text", {x: 164 + w, y: y + 14, class: "axis"}, (r.value * 100).toFixed(1) + " % · " + r.note));
    });
    container.replaceChildren(root);
  }

  return {line: line, stacked: stacked, hbars: hbars, empty: empty};
})();
