// The dashboard's only script: the live graph and counters on the overview,
// and confirmation of destructive bulk actions. Pages work without it.
"use strict";

(function () {
  // Ask before any button marked data-confirm submits its form.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-confirm]");
    if (button && !window.confirm(button.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  });

  var graph = document.getElementById("live-graph");
  if (!graph) return;
  var POINTS = 60, INTERVAL_MS = 2000, SVG = "http://www.w3.org/2000/svg";
  var processed = [], failed = [], last = null;

  function line(values, cls, max) {
    var step = 600 / (POINTS - 1), points = [];
    var offset = POINTS - values.length;
    values.forEach(function (v, i) {
      points.push(((offset + i) * step).toFixed(1) + "," + (155 - 145 * v / max).toFixed(1));
    });
    var polyline = document.createElementNS(SVG, "polyline");
    polyline.setAttribute("class", cls);
    polyline.setAttribute("points", points.join(" "));
    return polyline;
  }

  function draw() {
    var max = Math.max.apply(null, processed.concat(failed, [1]));
    while (graph.firstChild) graph.removeChild(graph.firstChild);
    graph.appendChild(line(processed, "processed", max));
    graph.appendChild(line(failed, "failed", max));
    var label = document.createElementNS(SVG, "text");
    label.setAttribute("x", "4");
    label.setAttribute("y", "14");
    label.textContent = "max " + max.toFixed(1) + "/s";
    graph.appendChild(label);
  }

  function update(stats) {
    Object.keys(stats).forEach(function (key) {
      var cell = document.querySelector('[data-stat="' + key + '"]');
      if (cell) cell.textContent = String(stats[key]);
    });
    var now = Date.now();
    if (last) {
      var seconds = Math.max((now - last.at) / 1000, 0.001);
      processed.push(Math.max(stats.processed - last.processed, 0) / seconds);
      failed.push(Math.max(stats.failed - last.failed, 0) / seconds);
      if (processed.length > POINTS) { processed.shift(); failed.shift(); }
      draw();
    }
    last = { at: now, processed: stats.processed, failed: stats.failed };
  }

  function poll() {
    fetch("/api/stats", { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (body) { if (body) update(body.stats); })
      .catch(function () { /* the next poll tries again */ })
      .finally(function () { setTimeout(poll, INTERVAL_MS); });
  }
  poll();
})();
