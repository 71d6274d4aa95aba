// Result page: player, transcript coloured by emotion with the current word highlighted,
// timeline and distribution, granular/complex emotions, features, exports and explanations.
import { API, EMOTIONS, el, fmtTime, get, mediaToken, post, setupKeyField, withToken } from "./api.js";
import { distributionChart, legend, speakerColour, speakerLanes, timelineChart } from "./charts.js";
import { explainPicker } from "./explain-options.js";

setupKeyField();
const id = location.pathname.split("/").filter(Boolean).pop();
const errorBox = document.getElementById("result-error");
const player = document.getElementById("player");
let wordNodes = [];
let segmentNodes = [];
// Speaker names given on this page, kept in the browser per analysis (SPEAKER_1 → "Agent").
const NAMES_KEY = `emotivoice-speaker-names-${id}`;
let speakerNames = JSON.parse(localStorage.getItem(NAMES_KEY) || "{}");
let speakerIndex = {};
const speakerName = (sid) => speakerNames[sid] || sid;

const FIGURES = {
  windows: "Where the model heard the emotion: each time window's Shapley value over the waveform, the words said beneath; green windows support the emotion, red ones oppose it.",
  deletion: "Deletion curve: removing windows in attribution order should lower the prediction faster than random orders (the faithfulness score).",
  counterfactuals: "How each emotion probability moves when pitch, energy, tempo or spectral tilt of the segment are changed.",
  features: "The segment's acoustic features beside typical ranges of speech.",
  attention: "Encoder self-attention (last layer, mean over heads): which moments the model relates to which.",
  rollout: "Attention rollout through all encoder layers: how much of the mixed attention each moment receives (dashed: uniform).",
  saliency: "Integrated Gradients on the log-mel input: the time-frequency regions that raised the prediction.",
};

// The features the table shows, as emotivoice.results.FEATURE_LABELS names them.
const FEATURE_LABELS = {
  f0_mean_hz: "pitch mean (Hz)", f0_range_semitones: "pitch range (st)", energy_db_mean: "energy (dB)",
  speaking_rate_wps: "words/s", voiced_fraction: "voiced share", jitter_local: "jitter",
  shimmer_local: "shimmer", hnr_db: "HNR (dB)",
};

const PLAIN_FIGURES = ["windows", "counterfactuals", "features"];
const ADVANCED_FIGURES = ["deletion", "attention", "rollout", "saliency"];

async function load() {
  let s;
  try {
    s = await get(`/analyses/${id}`);
  } catch (err) {
    document.getElementById("status").textContent = "";
    if (err.status === 404) {
      // nothing to show: no empty cards, just what happened and the way back
      document.getElementById("title").textContent = "Analysis not found";
      document.getElementById("result-body").hidden = true;
      errorBox.textContent = `No analysis “${id}” exists here (it may have been deleted, or it belongs to another API key).`;
    } else {
      errorBox.textContent = err.message;
    }
    return;
  }
  const status = document.getElementById("status");
  const progress = document.getElementById("progress");
  if (s.status === "queued" || s.status === "running") {
    status.textContent = `${s.status}: ${s.stage} (${s.progress}%)`;
    progress.hidden = false;
    progress.value = s.progress;
    renderTranscript(s.segments);
    setTimeout(load, 800);
    return;
  }
  progress.hidden = true;
  if (s.status !== "completed") {
    status.textContent = s.status;
    if (s.error) errorBox.textContent = s.error.message;
    return;
  }
  const upload = await get(`/uploads/${s.upload_id}`);
  document.getElementById("title").textContent = upload.filename;
  render(s, upload, await mediaToken());
}

function render(s, upload, token) {
  const r = s.result;
  document.getElementById("status").textContent = `completed in ${jobSeconds(s).toFixed(1)} s`;
  player.src = withToken(`${API}/uploads/${upload.id}/audio`, token);
  player.hidden = false;
  const languages = r.languages.map((l) => `${l.language} (${Math.round(l.share * 100)}%)`).join(", ") || "none";
  document.getElementById("summary").textContent =
    `${fmtTime(r.duration)} · ${plural(r.segments.length, "segment")} · ${plural((r.speakers || []).length, "speaker")} · language: ${languages} · dominant emotion: ${r.emotion ? fileEmotionText(r.emotion) : "–"}`;
  for (const fmt of ["json", "csv", "srt", "vtt", "pdf"]) {
    const a = document.getElementById(`export-${fmt}`);
    a.href = withToken(`${API}/analyses/${id}/export?format=${fmt}`, token);
    a.setAttribute("download", `${upload.filename}.${fmt}`);
  }
  document.getElementById("exports").hidden = false;
  if (r.emotion) {
    document.getElementById("distribution").replaceChildren(distributionChart(r.emotion.distribution), legend());
    document.getElementById("timeline").replaceChildren(timelineChart(r.emotion.timeline, r.duration), legend());
  } else {
    document.getElementById("distribution").textContent = "Emotion recognition was off for this analysis.";
    document.getElementById("timeline").textContent = "–";
  }
  renderSpeakers(r);
  renderTranscript(r.segments);
  renderFeatures(r.segments);
  renderExplanations(s, token);
}

// "anger 63%", "uncertain (neutral 38%)" when no emotion stands out, with the arousal.
function fileEmotionText(e) {
  const share = `${e.dominant} ${Math.round((e.confidence ?? e.distribution[e.dominant]) * 100)}%`;
  const arousal = typeof e.arousal === "number" ? `, arousal ${levelWord(e.arousal)}` : "";
  return `${e.uncertain ? `uncertain (${share})` : share}${arousal}`;
}

function levelWord(v) { return v < 0.4 ? "low" : v > 0.6 ? "high" : "medium"; }

// The chips of one emotion (a segment's or a unit's): dominant, dimensions, granular, blends.
function emotionChips(e) {
  const pct = (v) => `${Math.round(v * 100)}%`;
  const dims = ["arousal", "valence", "intensity"].filter((k) => typeof e[k] === "number");
  return [
    el("span", { class: `chip${e.uncertain ? " uncertain" : ""}`, title: e.uncertain ? "no emotion stands out (low top probability or a short stretch)" : "dominant emotion" },
      `${e.uncertain ? "uncertain · " : ""}${e.dominant} ${pct(e.confidence)}`),
    ...dims.map((k) => el("span", { class: "chip dim", title: `${k}: ${pct(e[k])}` }, `${k} ${levelWord(e[k])}`)),
    ...e.primary.map((g) => el("span", { class: "chip", title: `${g.level || ""} ${g.base}`.trim() }, `${g.name} ${pct(g.confidence)}`)),
    ...e.secondary.map((g) => el("span", { class: "chip", title: `also: ${g.level || ""} ${g.base}`.trim() }, `${g.name} ${pct(g.confidence)}`)),
    ...e.complex.map((c) => el("span", { class: "chip", title: `blend of ${c.components.join(" + ")}` }, `${c.name} ${pct(c.confidence)}`)),
  ];
}

// "1 segment", "2 segments", "no speakers".
function plural(n, noun) { return `${n || "no"} ${noun}${n === 1 ? "" : "s"}`; }

// How long the job took, queued work excluded: from its start to its end (the analysis'
// own processing time leaves out explaining and writing the exports).
function jobSeconds(s) {
  const started = Date.parse(s.started_at), finished = Date.parse(s.finished_at);
  if (Number.isFinite(started) && Number.isFinite(finished) && finished >= started) return (finished - started) / 1000;
  return s.result.processing_time_s;
}

function renderSpeakers(r) {
  const card = document.getElementById("speakers-card");
  const speakers = r.speakers || [];
  speakerIndex = Object.fromEntries(speakers.map((sp, i) => [sp.id, i]));
  card.hidden = !speakers.length;
  if (!speakers.length) return;
  const method = { ge2e: "told apart by voice", pyannote: "told apart by pyannote", channels: "one speaker per channel" }[r.model.diarization] || r.model.diarization;
  document.getElementById("speakers-method").textContent = `${speakers.length} speaker${speakers.length > 1 ? "s" : ""}, ${method}. Rename a speaker by editing the name; the name is kept in this browser.`;
  const lanes = () => document.getElementById("speaker-lanes").replaceChildren(speakerLanes(r.segments, speakers, speakerNames, r.duration, seek));
  lanes();
  const pct = (v) => `${Math.round(v * 100)}%`;
  const rows = speakers.map((sp, i) => {
    const input = el("input", { type: "text", value: speakerName(sp.id), maxlength: 40, "aria-label": `Name of ${sp.id}`, class: "speaker-name", "data-speaker": sp.id });
    input.addEventListener("change", () => {
      const name = input.value.trim();
      if (name && name !== sp.id) speakerNames[sp.id] = name; else delete speakerNames[sp.id];
      localStorage.setItem(NAMES_KEY, JSON.stringify(speakerNames));
      lanes();
      for (const badge of document.querySelectorAll(`.speaker-badge[data-speaker="${sp.id}"]`)) badge.textContent = speakerName(sp.id);
    });
    const emotion = sp.emotion ? `${sp.emotion.dominant} ${pct(sp.emotion.distribution[sp.emotion.dominant])}` : "–";
    return el("tr", {},
      el("td", {}, el("i", { class: "swatch", style: `background:${speakerColour(i)}` }), input, sp.channel !== null ? ` channel ${sp.channel + 1}` : ""),
      el("td", {}, `${sp.talk_time_s.toFixed(1)} s (${pct(sp.share)})`),
      el("td", {}, String(sp.turns)), el("td", {}, String(sp.interruptions)),
      el("td", {}, sp.speaking_rate_wps === null ? "–" : sp.speaking_rate_wps.toFixed(2)),
      el("td", {}, sp.f0_mean_hz === null ? "–" : `${sp.f0_mean_hz.toFixed(0)} Hz`),
      el("td", {}, emotion));
  });
  document.getElementById("speakers").replaceChildren(
    el("thead", {}, el("tr", {}, ["speaker", "talk time", "turns", "interruptions", "words/s", "pitch", "emotion"].map((h) => el("th", {}, h)))),
    el("tbody", {}, rows));
}

function renderTranscript(segments) {
  const box = document.getElementById("transcript");
  wordNodes = [];
  segmentNodes = segments.map((seg) => {
    const e = seg.emotion;
    const wordSpans = (list) => list.map((w) => {
      const span = el("span", { class: "word" }, w.text);
      wordNodes.push({ start: w.start, end: w.end, node: span });
      return span;
    });
    const units = seg.units || [];
    let body;
    if (units.length > 1) {  // one line per sentence-level unit, each with its own emotion
      body = units.map((u, i) => {
        const last = i === units.length - 1;
        const inUnit = seg.words.filter((w) => { const mid = (w.start + w.end) / 2; return mid >= u.start && (mid < u.end || last); });
        return el("div", { class: `unit emo-${u.emotion.dominant}`, "data-emotion": u.emotion.dominant },
          el("div", {}, inUnit.length ? wordSpans(inUnit) : u.text), el("div", {}, emotionChips(u.emotion)));
      });
    } else {
      body = [el("div", {}, seg.words.length ? wordSpans(seg.words) : seg.text || "(no speech)"), el("div", {}, e ? emotionChips(e) : [])];
    }
    const node = el("div", {
      class: `segment${e ? ` emo-${e.dominant}` : ""}`, tabindex: 0, role: "button",
      "data-emotion": e ? e.dominant : "", "aria-label": `Play from ${fmtTime(seg.start)}`,
      onclick: () => seek(seg.start), onkeydown: (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); seek(seg.start); } },
    }, el("div", { class: "meta" },
      seg.speaker ? el("span", { class: "speaker-badge", "data-speaker": seg.speaker, style: `background:${speakerColour(speakerIndex[seg.speaker] ?? 0)}` }, speakerName(seg.speaker)) : "",
      `${fmtTime(seg.start)} – ${fmtTime(seg.end)} · ${seg.language}${units.length > 1 && e ? ` · whole segment: ${e.uncertain ? "uncertain, " : ""}${e.dominant} ${Math.round(e.confidence * 100)}%` : ""}`), ...body);
    node.dataset.start = seg.start; node.dataset.end = seg.end;
    return node;
  });
  box.replaceChildren(...(segmentNodes.length ? segmentNodes : [el("p", { class: "muted" }, "No speech found yet.")]));
}

function seek(t) {
  if (player.hidden) return;
  player.currentTime = t;
  player.play().catch(() => {});
}

player.addEventListener("timeupdate", () => {
  const t = player.currentTime;
  for (const w of wordNodes) w.node.classList.toggle("current", t >= w.start && t < w.end);
  for (const s of segmentNodes) s.classList.toggle("active", t >= +s.dataset.start && t < +s.dataset.end);
});

function renderFeatures(segments) {
  const table = document.getElementById("features");
  const rows = segments.filter((s) => s.features);
  if (!rows.length) { table.replaceChildren(el("tr", {}, el("td", {}, "No features were computed."))); return; }
  const keys = Object.keys(FEATURE_LABELS);
  const fmt = (v) => (v === null || v === undefined ? "–" : Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2));
  table.replaceChildren(
    el("thead", {}, el("tr", {}, el("th", {}, "segment"), keys.map((k) => el("th", {}, FEATURE_LABELS[k])))),
    el("tbody", {}, rows.map((s) => el("tr", {}, el("td", {}, fmtTime(s.start)), keys.map((k) => el("td", {}, fmt(s.features[k])))))),
  );
}

async function renderExplanations(s, token) {
  const box = document.getElementById("explain");
  let ex = null;
  if (s.options && s.options.explain) {
    try { ex = await get(`/analyses/${id}/explanations`); } catch (err) { errorBox.textContent = err.message; }
  }
  if (!ex) {
    box.replaceChildren(
      el("p", { class: "muted" }, "This analysis ran without explanations. Explanations re-query the model with parts of each segment masked and its prosody changed; they take about half a minute per segment on a CPU."),
      ...againWithExplanations(s, ["shapley", "counterfactual"], "Analyse again with explanations"));
    return;
  }
  const parts = [];
  const figure = (seg, kind) => {
    const fig = ex.visualizations.find((v) => v.name === `segment-${seg.segment}-${kind}`);
    return fig ? el("figure", { class: "figure", "data-kind": kind },
      el("img", { src: withToken(fig.url, token), alt: FIGURES[kind], loading: "lazy" }),
      el("figcaption", { class: "muted" }, FIGURES[kind])) : null;
  };
  for (const seg of ex.segments) {
    const a = seg.attribution;
    parts.push(el("h3", {}, `Segment ${seg.segment} (${fmtTime(seg.start)} – ${fmtTime(seg.end)}): ${seg.predicted}`));
    // one plain sentence first, then the figures a lay reader can follow
    if (seg.summary) parts.push(el("p", { class: "explain-summary" }, seg.summary));
    parts.push(...PLAIN_FIGURES.map((kind) => figure(seg, kind)).filter(Boolean));
    // the checks and the model internals, folded away
    const advanced = [];
    if (a) {
      const scores = a.deletion.map((d) => `${d.method} ${d.faithfulness >= 0 ? "+" : ""}${d.faithfulness.toFixed(3)}`).join(", ");
      advanced.push(el("p", { class: "faithfulness" }, `Faithfulness (random-order deletion area minus the method's; positive means the method found what the model relies on): ${scores}. ${a.exact ? "Exact" : "Sampled"} Shapley values.`));
    }
    if (seg.budget) advanced.push(el("p", { class: "muted" }, `${seg.evaluations} of at most ${seg.budget} model evaluations (time attribution and counterfactuals).`));
    advanced.push(...ADVANCED_FIGURES.map((kind) => figure(seg, kind)).filter(Boolean));
    if (advanced.length) {
      parts.push(el("details", { class: "advanced" },
        el("summary", {}, "Advanced: faithfulness checks and model internals"), ...advanced));
    }
  }
  if (!parts.length) parts.push(el("p", { class: "muted" }, "No segment could be explained."));
  const used = s.options.explain_methods || ["shapley", "counterfactual"];
  parts.push(...againWithExplanations(s, used, "Analyse again with these explanations"));
  box.replaceChildren(...parts);
}

// The method picker and the button that queues the same upload again with explanations.
function againWithExplanations(s, checked, label) {
  const previous = s.options || {};
  const picker = explainPicker({ checked, windows: previous.explain_windows || 6, legend: "Explanation methods" });
  const button = el("button", { type: "button", onclick: async () => {
    const chosen = picker.options();
    if (!chosen.explain) { errorBox.textContent = "Choose at least one explanation method."; return; }
    button.disabled = true;
    errorBox.textContent = "";
    try {
      const job = await post("/analyses", { upload_id: s.upload_id, options: { ...previous, ...chosen } });
      location.href = `/analyses/${job.id}`;
    } catch (err) { errorBox.textContent = err.message; button.disabled = false; }
  } }, label);
  return [picker.node, button];
}

load();
