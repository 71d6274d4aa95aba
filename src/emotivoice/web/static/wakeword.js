// Wake word page: type a phrase → a training job on the server (generate, train, evaluate) →
// its progress (stage, loss, validation figures), generated clips to listen to, the DET curve
// and the streaming figures → try the model with the microphone over /api/v1/stream (the Live
// page's worklet), wake events shown with their time and score.
import { API, ApiError, el, fmtDate, fmtTime, get, mediaToken, openPcmMicrophone, post, setupKeyField, withToken } from "./api.js";

setupKeyField();
const jobsTable = document.getElementById("jobs");
const jobCard = document.getElementById("job");
const trainError = document.getElementById("train-error");
const tryModel = document.getElementById("try-model");
const POLL_MS = 1500;
let selected = new URLSearchParams(location.search).get("job");
let polling = null;

const pct = (x) => (x === null || x === undefined ? "–" : `${(x * 100).toFixed(1)}%`);
const num = (x, digits = 3) => (x === null || x === undefined ? "–" : Number(x).toFixed(digits));

function rows(table, pairs) {
  table.tBodies[0].replaceChildren(...pairs.map(([k, v]) => el("tr", {}, el("th", { scope: "row" }, k), el("td", {}, v))));
}

document.getElementById("train-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  trainError.textContent = "";
  const phrase = document.getElementById("phrase").value.trim();
  const preset = document.getElementById("preset").value;
  const button = document.getElementById("train");
  button.disabled = true;
  try {
    const job = await post("/wakeword/jobs", { phrase, options: { preset } });
    select(job.id);
  } catch (err) {
    trainError.textContent = err instanceof ApiError ? err.message : String(err);
  } finally {
    button.disabled = false;
    refreshJobs();
  }
});

async function refreshJobs() {
  let page;
  try { page = await get("/wakeword/jobs?limit=50"); } catch (err) { trainError.textContent = err.message; return; }
  document.getElementById("jobs-empty").hidden = page.items.length > 0;
  jobsTable.tBodies[0].replaceChildren(...page.items.map((job) => el("tr", { "data-job": job.id },
    el("td", {}, job.phrase),
    el("td", { class: "job-status" }, job.status),
    el("td", {}, job.status === "completed" ? "100%" : `${job.progress}%`),
    el("td", {}, fmtDate(job.created_at)),
    el("td", {}, el("button", { class: "secondary", onclick: () => select(job.id) }, job.id === selected ? "shown" : "show")))));
  const current = tryModel.value;
  tryModel.replaceChildren(el("option", { value: "hey_jarvis" }, "hey_jarvis (shipped)"),
    ...page.items.filter((j) => j.wake_word).map((j) => el("option", { value: j.wake_word }, `${j.phrase} (trained ${fmtDate(j.finished_at)})`)));
  if ([...tryModel.options].some((o) => o.value === current)) tryModel.value = current;
}

function select(id) {
  selected = id;
  history.replaceState(null, "", `/wakeword?job=${encodeURIComponent(id)}`);
  jobCard.hidden = false;
  document.getElementById("figures").tBodies[0].replaceChildren();
  document.getElementById("downloads").replaceChildren();
  document.getElementById("samples-empty").hidden = false;
  document.getElementById("det-empty").hidden = false;
  document.getElementById("samples").replaceChildren();
  document.getElementById("det-figure").hidden = true;
  shown = { samples: 0, done: false };
  if (polling) clearTimeout(polling);
  poll();
}

let shown = { samples: 0, done: false };

async function poll() {
  const id = selected;
  let job;
  try {
    job = await get(`/wakeword/jobs/${id}`);
  } catch (err) {
    document.getElementById("job-error").textContent = err.message;
    return;
  }
  if (id !== selected) return;
  drawJob(job);
  if (shown.samples === 0) await drawSamples(job);
  if (job.status === "completed" && !shown.done) { shown.done = true; await drawResult(job); refreshJobs(); }
  if (job.status === "queued" || job.status === "running") polling = setTimeout(poll, POLL_MS);
  else if (job.status === "failed") refreshJobs();
}

function drawJob(job) {
  document.getElementById("job-phrase").textContent = `“${job.phrase}”`;
  document.getElementById("job-progress").value = job.progress;
  const stage = job.stage === job.status ? "" : ` · ${job.stage}`;
  document.getElementById("job-stage").textContent = `${job.status}${stage} · ${job.progress}%`;
  document.getElementById("job-error").textContent = job.error ? `${job.error.message} (${job.error.code})` : "";
  const m = job.metrics || {};
  const pairs = [];
  if (m.epoch !== undefined) pairs.push(["epoch", `${m.epoch} of ${m.epochs}`]);
  if (m.train_loss !== undefined) pairs.push(["training loss", num(m.train_loss)]);
  if (m.val_loss !== undefined) pairs.push(["validation loss", num(m.val_loss)]);
  if (m.val_frr !== undefined) pairs.push(["validation false rejects", `${pct(m.val_frr)} at threshold ${num(m.val_threshold, 2)}`]);
  if (m.val_confusable_accept !== undefined) pairs.push(["confusables accepted", pct(m.val_confusable_accept)]);
  rows(document.getElementById("job-metrics"), pairs);
}

async function drawSamples(job) {
  const samples = await get(`/wakeword/jobs/${job.id}/samples`);
  if (!samples.length) return;
  shown.samples = samples.length;
  document.getElementById("samples-empty").hidden = true;
  const token = await mediaToken();
  const label = { positive: "phrase", confusable: "confusable", sentence: "other speech" };
  document.getElementById("samples").replaceChildren(...samples.map((s) => el("li", { class: `sample sample-${s.kind}` },
    el("span", { class: "chip" }, label[s.kind] || s.kind), ` “${s.text}” `, el("span", { class: "muted" }, `${s.voice}, ${s.seconds.toFixed(1)} s`),
    el("audio", { controls: true, preload: "none", src: withToken(s.url, token) }))));
}

async function drawResult(job) {
  const r = job.result || {};
  const e = r.evaluation || {};
  const token = await mediaToken();
  document.getElementById("det-empty").hidden = true;
  const figure = document.getElementById("det-figure");
  document.getElementById("det").src = withToken(`${API}/wakeword/jobs/${job.id}/det.png`, token);
  figure.hidden = false;
  const hours = e.negative_hours ?? 0;
  const target = (t) => {
    const p = (e.at_target || {})[t];
    return p ? `${pct(p.false_reject_rate)} (threshold ${num(p.threshold, 2)}, ${p.false_accepts} false accepts)` : "–";
  };
  const own = e.at_model_threshold || {};
  const latency = e.latency_ms || {};
  rows(document.getElementById("figures"), [
    ["false rejects at ≤ 0.5 false accepts/h", target("0.5")],
    ["false rejects at ≤ 1 false accept/h", target("1.0")],
    ["equal error rate", pct(e.eer)],
    ["at the model's threshold", `${num(own.threshold, 2)}: ${pct(own.false_reject_rate)} false rejects, ${own.false_accepts ?? "–"} false accepts`],
    ["latency after the phrase", latency.median === null || latency.median === undefined ? "–" : `median ${Math.round(latency.median)} ms, p90 ${Math.round(latency.p90)} ms`],
    ["counted over", `${hours.toFixed(2)} h of real speech and ${e.positives ?? "–"} inserted phrases${hours > 0 ? `; 0 false accepts means fewer than ${(1 / hours).toFixed(1)} per hour` : ""}`],
  ]);
  const model = (int8) => el("a", { class: "button secondary", href: withToken(`${API}/wakeword/jobs/${job.id}/model${int8 ? "?int8=true" : ""}`, token), download: "" }, int8 ? "int8 ONNX" : "ONNX model");
  document.getElementById("downloads").replaceChildren("Download: ", model(false), " ", model(true), " ",
    el("a", { href: withToken(`${API}/wakeword/jobs/${job.id}/det.json`, token) }, "DET points (JSON)"));
}

// --- try it: the live stream with a wake word ---------------------------------------------
const startButton = document.getElementById("try-start");
const stopButton = document.getElementById("try-stop");
const tryStatus = document.getElementById("try-status");
const tryError = document.getElementById("try-error");
const wakes = document.getElementById("wakes");
let socket = null, mic = null;

async function startTry() {
  tryError.textContent = "";
  startButton.disabled = true;
  try {
    mic = await openPcmMicrophone();
  } catch (err) {
    tryError.textContent = `The microphone is not available: ${err.message}`;
    startButton.disabled = false;
    return;
  }
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  try {
    socket = new WebSocket(withToken(`${proto}//${location.host}${API}/stream`, await mediaToken()));
  } catch (err) {
    tryError.textContent = err.message;
    cleanup();
    return;
  }
  socket.binaryType = "arraybuffer";
  const wakeWord = tryModel.value;
  const label = tryModel.selectedOptions[0].textContent;
  socket.onopen = () => {
    socket.send(JSON.stringify({ type: "start", sample_rate: 16000, encoding: "pcm_s16le", wake_word: wakeWord, partials: false, save: false }));
    mic.send((pcm) => { if (socket && socket.readyState === WebSocket.OPEN) socket.send(pcm); });
    tryStatus.textContent = `Listening for ${label}…`;
    stopButton.disabled = false;
  };
  socket.onmessage = (m) => {
    let event;
    try { event = JSON.parse(m.data); } catch { return; }
    if (event.type === "wake") {
      wakes.prepend(el("li", { class: "wake" }, el("b", {}, `“${event.phrase}”`), ` at ${fmtTime(event.time)} · score ${event.score.toFixed(2)}`));
    } else if (event.type === "error") {
      tryError.textContent = event.message || "The server reported an error.";
    }
  };
  socket.onerror = () => { tryError.textContent = "The live connection failed."; };
  socket.onclose = (e) => {
    tryStatus.textContent = e.code === 1000 ? "Stopped." : `Connection closed (${e.code}${e.reason ? `: ${e.reason}` : ""}).`;
    cleanup();
  };
}

function cleanup() {
  if (mic) mic.close();
  mic = null; socket = null;
  startButton.disabled = false;
  stopButton.disabled = true;
}

function stopTry() {
  stopButton.disabled = true;
  tryStatus.textContent = "Finishing…";
  if (mic) mic.stopTracks();
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "stop" }));
}

startButton.addEventListener("click", startTry);
stopButton.addEventListener("click", stopTry);

refreshJobs();
if (selected) select(selected);
