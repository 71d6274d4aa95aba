// Small SVG charts (no library): emotion distribution bars and the timeline of probabilities.
import { COLOURS, EMOTIONS, el } from "./api.js";

const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== null) node.textContent = text;
  return node;
}

// Axis label of time t on an axis of total seconds (tenths on short axes: no "3s" twice).
const tick = (t, total) => `${t.toFixed(total < 12 ? 1 : 0)}s`;

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
    root.append(svg("text", { x: x(t), y: height - 8, "text-anchor": "middle" }, tick(t, total)));
  }
  const spans = stepSpans(points);
  for (const e of EMOTIONS) {
    if (!points.length) break;
    // flat over each point's own stretch, joined across the pauses: one segment is a line, not
    // a dot, and overlapping windows never draw backwards
    const d = points.map((p, i) => {
      const level = y(p.probabilities[e] || 0).toFixed(1);
      return `${i ? "L" : "M"}${x(spans[i][0]).toFixed(1)},${level} L${x(spans[i][1]).toFixed(1)},${level}`;
    }).join(" ");
    root.append(svg("path", { d, fill: "none", stroke: COLOURS[e], "stroke-width": 2, class: "timeline-line" }));
  }
  return root;
}

// The stretch each timeline point stands for: its own start and end, cut halfway to a
// neighbour's centre where the two overlap (sliding windows), so the stretches follow in time.
export function stepSpans(points) {
  const centre = (p) => (p.start + p.end) / 2;
  return points.map((p, i) => {
    const prev = points[i - 1], next = points[i + 1];
    const a = prev && prev.end > p.start ? (centre(prev) + centre(p)) / 2 : p.start;
    const b = next && next.start < p.end ? (centre(p) + centre(next)) / 2 : p.end;
    return [a, b];
  });
}

// Colour per speaker (colour-blind-safe Okabe–Ito order); the emotion palette stays for emotions.
export const SPEAKER_COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"];

export function speakerColour(index) {
  return SPEAKER_COLOURS[index % SPEAKER_COLOURS.length];
}

// One lane per speaker: a bar per segment in the speaker's colour, outlined by its emotion.
export function speakerLanes(segments, speakers, names, duration, onPick = null, label = "Who spoke when") {
  const lane = 26, left = 110, right = 10, top = 6, bottom = 24;
  const width = 700, height = top + bottom + lane * Math.max(1, speakers.length);
  const w = width - left - right;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label, width: "100%" });
  const total = Math.max(duration || 0, ...segments.map((s) => s.end), 1);
  const x = (t) => left + (t / total) * w;
  speakers.forEach((sp, i) => {
    const y = top + i * lane;
    root.append(svg("text", { x: left - 8, y: y + 17, "text-anchor": "end", class: "lane-name", "data-speaker": sp.id }, names[sp.id] || sp.id));
    root.append(svg("line", { x1: left, x2: left + w, y1: y + lane / 2, y2: y + lane / 2, stroke: "#e4e4ec" }));
    for (const seg of segments.filter((s) => s.speaker === sp.id)) {
      const bar = svg("rect", {
        x: x(seg.start), y: y + 3, width: Math.max(1.5, x(seg.end) - x(seg.start)), height: lane - 6, rx: 3,
        fill: speakerColour(i), stroke: seg.emotion ? COLOURS[seg.emotion.dominant] : "none", "stroke-width": 2,
        class: "lane-segment", "data-speaker": sp.id,
      });
      bar.append(svg("title", {}, `${names[sp.id] || sp.id} ${seg.start.toFixed(1)}–${seg.end.toFixed(1)} s${seg.emotion ? ` · ${seg.emotion.dominant}` : ""}`));
      if (onPick) bar.addEventListener("click", () => onPick(seg.start));
      root.append(bar);
    }
  });
  for (let i = 0; i <= 6; i++) {
    const t = (total * i) / 6;
    root.append(svg("text", { x: x(t), y: height - 6, "text-anchor": "middle" }, tick(t, total)));
  }
  return root;
}
