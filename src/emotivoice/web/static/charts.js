// Small SVG charts (no library): emotion distribution bars and the timeline of probabilities.
import { COLOURS, EMOTIONS, el } from "./api.js";

const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== null) node.textContent = text;
  return node;
}

export function legend() {
  return el("div", { class: "legend" },
    EMOTIONS.map((e) => el("span", {}, el("i", { style: `background:${COLOURS[e]}` }), e)));
}

export function distributionChart(distribution, label = "Emotion distribution") {
  const width = 420, height = 190, left = 80, bar = 22;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label, width: "100%" });
  EMOTIONS.forEach((e, i) => {
    const p = distribution[e] || 0, y = 10 + i * 29;
    root.append(svg("text", { x: left - 8, y: y + 15, "text-anchor": "end" }, e));
    root.append(svg("rect", { x: left, y, width: Math.max(1, p * (width - left - 50)), height: bar,
      fill: COLOURS[e], rx: 3 }));
    root.append(svg("text", { x: left + p * (width - left - 50) + 6, y: y + 15 }, `${Math.round(p * 100)}%`));
  });
  return root;
}

export function timelineChart(points, duration, label = "Emotion timeline") {
  const width = 700, height = 220, left = 40, right = 10, top = 10, bottom = 30;
  const w = width - left - right, h = height - top - bottom;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label, width: "100%" });
  const total = Math.max(duration || 0, ...points.map((p) => p.end), 1);
  const x = (t) => left + (t / total) * w, y = (p) => top + (1 - p) * h;
  for (const v of [0, 0.5, 1]) {
    root.append(svg("line", { x1: left, x2: left + w, y1: y(v), y2: y(v), stroke: "#dcdce4" }));
    root.append(svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end" }, v.toFixed(1)));
  }
  const ticks = 6;
  for (let i = 0; i <= ticks; i++) {
    const t = (total * i) / ticks;
    root.append(svg("text", { x: x(t), y: height - 8, "text-anchor": "middle" }, `${t.toFixed(0)}s`));
  }
  for (const e of EMOTIONS) {
    if (!points.length) break;
    const d = points.map((p, i) => `${i ? "L" : "M"}${x((p.start + p.end) / 2).toFixed(1)},${y(p.probabilities[e] || 0).toFixed(1)}`).join(" ");
    root.append(svg("path", { d, fill: "none", stroke: COLOURS[e], "stroke-width": 2 }));
    for (const p of points) {
      root.append(svg("circle", { cx: x((p.start + p.end) / 2), cy: y(p.probabilities[e] || 0), r: 2.5, fill: COLOURS[e] }));
    }
  }
  return root;
}
