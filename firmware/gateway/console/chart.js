// A small SVG line chart (no library): one or more series of [time ms, value] points, time on
// the x axis in the local zone, value axis with the unit, a legend. Enough for a point's
// history on a controller page; drawn again from scratch when the data changes.

const NS = "http://www.w3.org/2000/svg";
const COLOURS = ["#0b5cad", "#b34700", "#2e7d32", "#7b1fa2"];

function el(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

/** "Nice" tick values covering [lo, hi], about n of them. */
function ticks(lo, hi, n) {
  if (hi === lo) { hi = lo + 1; lo = lo - 1; }
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const out = [];
  const first = Math.floor(lo / step + 1e-9) * step;
  const last = Math.ceil(hi / step - 1e-9) * step;
  for (let v = first; v <= last + step * 1e-9; v += step) out.push(Number(v.toFixed(10)));
  return out;
}

const pad2 = (n) => String(n).padStart(2, "0");
const hm = (ms, secs) => {
  const d = new Date(ms);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}${secs ? ":" + pad2(d.getSeconds()) : ""}`;
};

/**
 * Renders `series` ([{label, unit, points: [[ms, value], ...]}]) as an SVG element.
 * Returns the element; `data-points` holds the number of points drawn (for tests and people).
 */
export function lineChart(series, { width = 800, height = 300 } = {}) {
  const m = { l: 72, r: 16, t: 32, b: 40 };
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img" });
  const all = series.flatMap((s) => s.points);
  svg.setAttribute("data-points", String(all.length));
  if (!all.length) {
    svg.append(el("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "axis" }, "no data in this range"));
    return svg;
  }
  let [t0, t1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  if (t1 === t0) { t0 -= 1000; t1 += 1000; }
  const vs = ticks(Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1])), 5);
  const [v0, v1] = [vs[0], vs[vs.length - 1] === vs[0] ? vs[0] + 1 : vs[vs.length - 1]];
  const x = (t) => m.l + ((t - t0) / (t1 - t0)) * (width - m.l - m.r);
  const y = (v) => height - m.b - ((v - v0) / (v1 - v0)) * (height - m.t - m.b);
  const unit = series[0].unit ? ` ${series[0].unit}` : "";
  for (const v of vs) {
    svg.append(el("line", { x1: m.l, x2: width - m.r, y1: y(v), y2: y(v), class: "grid" }));
    svg.append(el("text", { x: m.l - 6, y: y(v) + 4, "text-anchor": "end", class: "axis" }, `${v}${unit}`));
  }
  const span = t1 - t0;
  const step = [1e3, 5e3, 1e4, 3e4, 6e4, 3e5, 6e5, 18e5, 36e5, 108e5, 216e5, 864e5].find((s) => span / s <= 8) || 864e5;
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
    svg.append(el("line", { x1: x(t), x2: x(t), y1: m.t, y2: height - m.b, class: "grid" }));
    svg.append(el("text", { x: x(t), y: height - m.b + 16, "text-anchor": "middle", class: "axis" }, hm(t, step < 6e4)));
  }
  const off = -new Date(t1).getTimezoneOffset();
  const zone = `UTC${off >= 0 ? "+" : "-"}${pad2(Math.floor(Math.abs(off) / 60))}:${pad2(Math.abs(off) % 60)}`;
  svg.append(el("text", { x: width - m.r, y: height - 6, "text-anchor": "end", class: "axis" }, `local time (${zone})`));
  series.forEach((s, i) => {
    const c = COLOURS[i % COLOURS.length];
    const d = s.points.map((p, j) => `${j ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join("");
    svg.append(el("path", { d, fill: "none", stroke: c, "stroke-width": 2, class: "series" }));
    if (s.points.length <= 120) {
      for (const p of s.points) svg.append(el("circle", { cx: x(p[0]).toFixed(1), cy: y(p[1]).toFixed(1), r: 2.5, fill: c, class: "pt" }));
    }
    svg.append(el("text", { x: m.l + i * 260, y: 18, fill: c, class: "legend" }, `${s.label}${s.unit ? " (" + s.unit + ")" : ""}`));
  });
  return svg;
}
