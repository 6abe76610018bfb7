// The run page's plots: the batch record's series (GET /runs/{id}/series) drawn as SVG.
// No library, no inline style: every colour comes from run.css through SVG classes, and
// this script sets SVG attributes only (the page's CSP allows that). See docs/web.md,
// "The run page".
(function () {
  "use strict";
  const NS = "http://www.w3.org/2000/svg";
  const W = 640, H = 190, M = { l: 58, r: 58, t: 12, b: 30 };
  const DAY_S = 86400;

  // One panel per figure; a line is drawn against the left axis unless it says "right".
  const PANELS = [
    { id: "growth", title: "Growth: viable cells/mL (log) and viability %", t: "counts_t",
      lines: [
        { key: "viable_cells_per_ml", label: "viable cells/mL", cls: "s1", log: true, dots: true },
        { key: "viability_pct", label: "viability %", cls: "s2", axis: "right", spec: "viability_pct", dots: true },
      ] },
    { id: "metabolites", title: "Glucose and lactate (mmol/L)", t: "culture_t",
      lines: [
        { key: "glucose_mmol_per_l", label: "glucose mmol/L", cls: "s1", spec: "glucose" },
        { key: "lactate_mmol_per_l", label: "lactate mmol/L", cls: "s2" },
      ] },
    { id: "ph", title: "pH", t: "culture_t",
      lines: [{ key: "ph", label: "pH", cls: "s1", setpoint: "setpoint_ph", spec: "ph" }] },
    { id: "do", title: "Dissolved oxygen (%)", t: "culture_t",
      lines: [{ key: "dissolved_oxygen_pct", label: "DO %", cls: "s1", setpoint: "setpoint_do_pct" }] },
    { id: "temperature", title: "Temperature (°C)", t: "culture_t",
      lines: [{ key: "temperature_c", label: "temperature °C", cls: "s1",
                setpoint: "setpoint_temperature_c", spec: "temperature_c" }] },
    { id: "freeze", title: "Freeze curve (°C; minutes from the first reading)", t: "freeze_t", minutes: true,
      lines: [
        { key: "chamber_c", label: "chamber °C", cls: "s1" },
        { key: "sample_c", label: "sample °C", cls: "s2" },
      ] },
  ];

  function el(name, attrs, parent, text) {
    const node = document.createElementNS(NS, name);
    for (const key of Object.keys(attrs)) node.setAttribute(key, String(attrs[key]));
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }

  function extent(values, log) {
    const finite = values.filter((v) => Number.isFinite(v) && (!log || v > 0));
    if (!finite.length) return null;
    let lo = Math.min(...finite), hi = Math.max(...finite);
    if (log) return [Math.floor(Math.log10(lo)), Math.ceil(Math.log10(hi)) || 1];
    if (lo === hi) { lo -= 1; hi += 1; }
    const pad = (hi - lo) * 0.08;
    return [lo - pad, hi + pad];
  }

  function ticks(lo, hi, log) {
    if (log) {
      const out = [];
      for (let p = lo; p <= hi; p++) out.push(p);
      return out;
    }
    const step = Math.pow(10, Math.floor(Math.log10((hi - lo) / 4)));
    const nice = [1, 2, 5, 10].map((m) => m * step).find((s) => (hi - lo) / s <= 6) || step * 10;
    const out = [];
    for (let v = Math.ceil(lo / nice) * nice; v <= hi; v += nice) out.push(+v.toPrecision(12));
    return out;
  }

  function label(v, log) {
    if (log) return "1e" + v;
    return Math.abs(v) >= 1000 ? v.toExponential(1) : String(+v.toPrecision(4));
  }

  // The x axis: days from the run's start, or minutes from the first freeze reading.
  function xScale(panel, series, times) {
    const origin = panel.minutes ? times[0] : series.start_s;
    const unit = panel.minutes ? 60 : DAY_S;
    let lo = 0, hi = (Math.max(...times) - origin) / unit;
    if (panel.minutes && series.profile_t.length) {
      hi = Math.max(hi, (Math.max(...series.profile_t) - origin) / unit);
    }
    if (hi <= lo) hi = lo + (panel.minutes ? 10 : 0.5);
    const scale = (t) => M.l + ((t - origin) / unit - lo) / (hi - lo) * (W - M.l - M.r);
    return { scale, lo, hi, origin, unit };
  }

  function yScale(range, log) {
    const [lo, hi] = range;
    return (v) => {
      const y = log ? Math.log10(Math.max(v, 1e-12)) : v;
      return H - M.b - (y - lo) / (hi - lo) * (H - M.t - M.b);
    };
  }

  function clampY(y) { return Math.min(H - M.b, Math.max(M.t, y)); }

  function axes(svg, x, left, right) {
    el("line", { x1: M.l, y1: H - M.b, x2: W - M.r, y2: H - M.b, class: "axis" }, svg);
    for (const v of ticks(x.lo, x.hi, false)) {
      const px = M.l + (v - x.lo) / (x.hi - x.lo) * (W - M.l - M.r);
      el("line", { x1: px, y1: H - M.b, x2: px, y2: H - M.b + 4, class: "axis" }, svg);
      el("text", { x: px, y: H - M.b + 16, class: "tick", "text-anchor": "middle" }, svg, label(v, false));
    }
    el("text", { x: W - M.r, y: H - 2, class: "tick", "text-anchor": "end" }, svg,
      x.unit === 60 ? "min" : "days");
    for (const [side, axis] of [["left", left], ["right", right]]) {
      if (!axis) continue;
      const ax = side === "left" ? M.l : W - M.r;
      el("line", { x1: ax, y1: M.t, x2: ax, y2: H - M.b, class: "axis " + axis.cls }, svg);
      for (const v of ticks(axis.range[0], axis.range[1], axis.log)) {
        const py = axis.y(axis.log ? Math.pow(10, v) : v);
        const tx = side === "left" ? ax - 6 : ax + 6;
        el("text", { x: tx, y: py + 4, class: "tick " + axis.cls,
          "text-anchor": side === "left" ? "end" : "start" }, svg, label(v, axis.log));
        el("line", { x1: M.l, y1: py, x2: W - M.r, y2: py, class: "grid" }, svg);
      }
    }
  }

  function markers(svg, series, x) {
    for (const m of series.markers) {
      const x0 = x.scale(m.start_s);
      const x1 = m.end_s === null || m.end_s === undefined ? null : x.scale(m.end_s);
      if ((x1 === null ? x0 : x1) < M.l || x0 > W - M.r) continue;
      const group = el("g", { class: "marker marker-" + m.kind }, svg);
      el("title", {}, group, m.label);
      if (x1 !== null && m.kind !== "deviation" && m.kind !== "alarm") {
        const a = Math.max(M.l, x0), b = Math.min(W - M.r, Math.max(x1, x0 + 1));
        el("rect", { x: a, y: M.t, width: Math.max(1, b - a), height: H - M.t - M.b }, group);
      } else {
        el("line", { x1: x0, y1: M.t, x2: x0, y2: H - M.b }, group);
      }
    }
  }

  function specBand(svg, spec, axis) {
    if (!spec) return;
    const top = spec[1] === null ? M.t : clampY(axis.y(spec[1]));
    const bottom = spec[0] === null ? H - M.b : clampY(axis.y(spec[0]));
    const band = el("rect", { x: M.l, y: top, width: W - M.l - M.r, height: Math.max(0, bottom - top),
      class: "spec " + axis.cls }, svg);
    el("title", {}, band, "specification " + (spec[0] ?? "…") + " – " + (spec[1] ?? "…"));
  }

  function path(times, values, x, y) {
    const parts = [];
    for (let i = 0; i < times.length; i++) {
      if (!Number.isFinite(values[i])) continue;
      parts.push((parts.length ? "L" : "M") + x.scale(times[i]).toFixed(1) + "," + clampY(y(values[i])).toFixed(1));
    }
    return parts.join(" ");
  }

  function stepPath(times, values, end, x, y) {
    const parts = [];
    for (let i = 0; i < times.length; i++) {
      const px = x.scale(times[i]).toFixed(1), py = clampY(y(values[i])).toFixed(1);
      parts.push(parts.length ? "H" + px + " V" + py : "M" + px + "," + py);
    }
    if (parts.length) parts.push("H" + x.scale(end).toFixed(1));
    return parts.join(" ");
  }

  function drawPanel(figure, panel, series) {
    const times = series[panel.t];
    const svg = figure.querySelector("svg");
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const x = xScale(panel, series, times);
    const axisOf = {};
    for (const side of ["left", "right"]) {
      const lines = panel.lines.filter((l) => (l.axis || "left") === side);
      if (!lines.length) continue;
      const log = lines.some((l) => l.log);
      const values = [];
      for (const l of lines) {
        values.push(...series[l.key]);
        if (l.setpoint) values.push(...series[l.setpoint]);
        const spec = series.specs[l.spec];
        if (spec) values.push(...spec.filter((v) => v !== null));
      }
      if (panel.minutes && side === "left") values.push(...series.profile_c);
      const range = extent(values, log);
      if (range) axisOf[side] = { range, log, y: yScale(range, log), cls: lines[0].cls };
    }
    for (const l of panel.lines) specBand(svg, series.specs[l.spec], axisOf[l.axis || "left"]);
    markers(svg, series, x);
    axes(svg, x, axisOf.left, axisOf.right);
    const end = Math.max(...times);
    for (const l of panel.lines) {
      const axis = axisOf[l.axis || "left"];
      if (!axis) continue;
      if (l.setpoint && series.setpoints_t.length) {
        const sp = el("path", { d: stepPath(series.setpoints_t, series[l.setpoint], end, x, axis.y),
          class: "setpoint" }, svg);
        el("title", {}, sp, "setpoint " + l.label);
      }
      const line = el("path", { d: path(times, series[l.key], x, axis.y), class: "line " + l.cls }, svg);
      el("title", {}, line, l.label);
      if (l.dots) {
        for (let i = 0; i < times.length; i++) {
          const dot = el("circle", { cx: x.scale(times[i]), cy: clampY(axis.y(series[l.key][i])), r: 2.5,
            class: "dot " + l.cls }, svg);
          el("title", {}, dot, l.label + " " + label(series[l.key][i], false) +
            " at day " + ((times[i] - series.start_s) / DAY_S).toFixed(2));
        }
      }
    }
    if (panel.minutes && axisOf.left) {
      if (series.profile_t.length) {
        const profile = el("path", { d: path(series.profile_t, series.profile_c, x, axisOf.left.y),
          class: "setpoint" }, svg);
        el("title", {}, profile, "freezer profile");
      }
      if (series.phase_change_s !== null && series.phase_change_s !== undefined) {
        const px = x.scale(series.phase_change_s);
        const g = el("g", { class: "marker marker-phase" }, svg);
        el("line", { x1: px, y1: M.t, x2: px, y2: H - M.b }, g);
        el("title", {}, g, "phase change");
      }
    }
    const legend = figure.querySelector(".legend");
    legend.textContent = "";
    for (const l of panel.lines) {
      const item = document.createElement("span");
      item.className = "key " + l.cls;
      item.textContent = l.label;
      legend.appendChild(item);
    }
  }

  function figureFor(container, panel) {
    let figure = container.querySelector("#panel-" + panel.id);
    if (figure) return figure;
    figure = document.createElement("figure");
    figure.className = "panel";
    figure.id = "panel-" + panel.id;
    const caption = document.createElement("figcaption");
    caption.textContent = panel.title;
    const legend = document.createElement("span");
    legend.className = "legend";
    caption.appendChild(legend);
    figure.appendChild(caption);
    el("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": panel.title }, figure);
    container.appendChild(figure);
    return figure;
  }

  // Draw every panel that has points; a panel without points stays hidden.
  function draw(container, series) {
    let drawn = 0;
    for (const panel of PANELS) {
      const figure = figureFor(container, panel);
      const has = series[panel.t].length > 0;
      figure.hidden = !has;
      if (has) { drawPanel(figure, panel, series); drawn++; }
    }
    container.dataset.panels = String(drawn);
  }

  window.cellautoPlot = { draw };
})();
