// Live page: microphone → AudioWorklet (16 kHz PCM) → WebSocket /api/v1/stream → partial and
// final transcript, emotion meter and timeline, measured latency, link to the saved recording.
import { API, COLOURS, EMOTIONS, el, fmtTime, mediaToken, post, setupKeyField, withToken } from "./api.js";
import { legend, timelineChart } from "./charts.js";

setupKeyField();
const startButton = document.getElementById("start");
const stopButton = document.getElementById("stop");
const status = document.getElementById("live-status");
const errorBox = document.getElementById("live-error");
const finals = document.getElementById("finals");
const partial = document.getElementById("partial");
const meter = document.getElementById("meter");
const timeline = [];
const latencies = [];
let socket = null, context = null, stream = null, speechEndedAt = null;

function drawMeter(probabilities) {
  meter.replaceChildren(...EMOTIONS.flatMap((e) => {
    const p = probabilities ? probabilities[e] || 0 : 0;
    return [el("span", {}, e), el("div", {}, el("div", { class: "bar", style: `width:${Math.round(p * 100)}%;background:${COLOURS[e]}` })), el("span", {}, `${Math.round(p * 100)}%`)];
  }));
}
drawMeter(null);

// The WebSocket cannot send the key header: it carries a short-lived token (with a key set).
async function socketUrl() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  return withToken(`${proto}//${location.host}${API}/stream`, await mediaToken());
}

function onEvent(event) {
  const kind = event.type;
  if (kind === "partial") {
    partial.textContent = [event.stable, event.unstable].filter(Boolean).join(" ");
  } else if (kind === "vad") {
    if (event.state === "end") speechEndedAt = performance.now();
  } else if (kind === "segment") {
    partial.textContent = "";
    const e = event.emotion;
    if (speechEndedAt !== null) {
      latencies.push((performance.now() - speechEndedAt) / 1000);
      speechEndedAt = null;
      const sorted = [...latencies].sort((a, b) => a - b);
      document.getElementById("latency").textContent =
        `last ${latencies.at(-1).toFixed(2)} s · median ${sorted[Math.floor(sorted.length / 2)].toFixed(2)} s`;
    }
    finals.append(el("div", { class: `segment${e ? ` emo-${e.dominant}` : ""}`, "data-emotion": e ? e.dominant : "" },
      el("div", { class: "meta" }, `${fmtTime(event.start)} – ${fmtTime(event.end)}${e ? ` · ${e.dominant} ${Math.round(e.confidence * 100)}%` : ""}`),
      el("div", { class: "final-text" }, event.text)));
    if (e) {
      drawMeter(e.probabilities);
      timeline.push({ start: event.start, end: event.end, probabilities: e.probabilities });
      document.getElementById("live-timeline").replaceChildren(timelineChart(timeline, event.end), legend());
    }
  } else if (kind === "error") {
    errorBox.textContent = event.message || "The server reported an error.";
  } else if (kind === "saved") {
    const uploadId = event.upload_id;
    const link = el("button", { class: "secondary", onclick: async () => {
      try {
        const job = await post("/analyses", { upload_id: uploadId, options: {} });
        location.href = `/analyses/${job.id}`;
      } catch (err) { errorBox.textContent = err.message; }
    } }, "Analyse the full recording");
    document.getElementById("saved").replaceChildren(`Recording saved (${uploadId}). `, link);
  }
}

async function start() {
  errorBox.textContent = "";
  startButton.disabled = true;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true } });
  } catch (err) {
    errorBox.textContent = `The microphone is not available: ${err.message}`;
    startButton.disabled = false;
    return;
  }
  context = new AudioContext({ sampleRate: 16000 });
  await context.audioWorklet.addModule("/static/pcm-worklet.js");
  const source = context.createMediaStreamSource(stream);
  const node = new AudioWorkletNode(context, "pcm-sender");
  try {
    socket = new WebSocket(await socketUrl());
  } catch (err) {
    errorBox.textContent = err.message;
    cleanup();
    return;
  }
  socket.binaryType = "arraybuffer";
  socket.onopen = () => {
    socket.send(JSON.stringify({ type: "start", sample_rate: 16000, encoding: "pcm_s16le" }));
    node.port.onmessage = (m) => { if (socket && socket.readyState === WebSocket.OPEN) socket.send(m.data); };
    source.connect(node);
    status.textContent = "Listening…";
    stopButton.disabled = false;
  };
  socket.onmessage = (m) => { try { onEvent(JSON.parse(m.data)); } catch { /* not JSON: ignore */ } };
  socket.onerror = () => { errorBox.textContent = "The live connection failed."; };
  socket.onclose = (e) => {
    status.textContent = e.code === 1000 ? "Stopped." : `Connection closed (${e.code}${e.reason ? `: ${e.reason}` : ""}).`;
    cleanup();
  };
}

function cleanup() {
  if (stream) stream.getTracks().forEach((t) => t.stop());
  if (context) context.close().catch(() => {});
  stream = null; context = null;
  startButton.disabled = false;
  stopButton.disabled = true;
}

function stop() {
  stopButton.disabled = true;
  status.textContent = "Finishing…";
  if (stream) stream.getTracks().forEach((t) => t.stop());
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "stop" }));
}

startButton.addEventListener("click", start);
stopButton.addEventListener("click", stop);
