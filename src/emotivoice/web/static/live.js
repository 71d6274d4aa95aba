// Live page: microphone → AudioWorklet (16 kHz PCM) → WebSocket /api/v1/stream → partial and
// final transcript, emotion meter and timeline, measured latency, link to the saved recording.
import { API, COLOURS, EMOTIONS, el, fmtTime, mediaToken, openPcmMicrophone, post, setupKeyField, withToken } from "./api.js";
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
let socket = null, mic = null, finishing = null;
// Seconds of audio sent so far: the stream's own clock. A final segment's latency is how much
// audio had been sent since its speech ended (`speech_end`) when it arrived; the "vad end"
// event comes with the final itself, so timing from it always read 0.00 s.
let sentSeconds = 0;

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
  } else if (kind === "segment") {
    partial.textContent = "";
    const e = event.emotion;
    if (!finishing && event.speech_end <= sentSeconds) {  // after Stop no audio is sent: no clock
      latencies.push(sentSeconds - event.speech_end);
      const sorted = [...latencies].sort((a, b) => a - b);
      document.getElementById("latency").textContent =
        `last ${latencies.at(-1).toFixed(2)} s · median ${sorted[Math.floor(sorted.length / 2)].toFixed(2)} s`;
    }
    finals.append(el("div", { class: `segment${e ? ` emo-${e.dominant}` : ""}`, "data-emotion": e ? e.dominant : "" },
      el("div", { class: "meta" }, `${fmtTime(event.start)} – ${fmtTime(event.end)}${e ? ` · ${e.uncertain ? "uncertain, " : ""}${e.dominant} ${Math.round(e.confidence * 100)}%` : ""}`),
      el("div", { class: "final-text" }, event.text)));
    if (e) {
      drawMeter(e.probabilities);
      // the segment's sliding windows (a point per segment from an older server)
      const windows = event.timeline && event.timeline.length ? event.timeline : [{ start: event.start, end: event.end, probabilities: e.probabilities }];
      timeline.push(...windows);
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
    const name = event.filename || uploadId;
    document.getElementById("saved").replaceChildren(
      "Recording saved as ", el("b", { class: "saved-name" }, name), ` (${fmtTime(event.duration)}); it is listed in the history. `, link);
  }
}

async function start() {
  errorBox.textContent = "";
  startButton.disabled = true;
  try {
    mic = await openPcmMicrophone();
  } catch (err) {
    errorBox.textContent = `The microphone is not available: ${err.message}`;
    startButton.disabled = false;
    return;
  }
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
    sentSeconds = 0;
    mic.send((pcm) => {
      if (!socket || socket.readyState !== WebSocket.OPEN || finishing) return;
      socket.send(pcm);
      sentSeconds += pcm.byteLength / 2 / 16000;
    });
    status.textContent = "Listening…";
    stopButton.disabled = false;
  };
  socket.onmessage = (m) => { try { onEvent(JSON.parse(m.data)); } catch { /* not JSON: ignore */ } };
  socket.onerror = () => { errorBox.textContent = "The live connection failed."; };
  socket.onclose = (e) => {
    if (finishing) clearInterval(finishing);
    finishing = null;
    status.textContent = e.code === 1000 ? "Stopped." : `Connection closed (${e.code}${e.reason ? `: ${e.reason}` : ""}).`;
    cleanup();
  };
}

function cleanup() {
  if (mic) mic.close();
  mic = null;
  startButton.disabled = false;
  stopButton.disabled = true;
}

// Stop: the server still analyses what was said since the last final segment (a whole
// utterance when Stop comes mid-sentence: seconds of model time on a CPU). The status says so
// and counts, instead of a bare "Finishing…".
function stop() {
  stopButton.disabled = true;
  const pending = Math.max(0, sentSeconds - lastFinalEnd());
  const since = performance.now();
  const show = () => {
    const waited = ((performance.now() - since) / 1000).toFixed(1);
    status.textContent = pending > 0.3
      ? `Finishing: analysing the last ${pending.toFixed(1)} s of audio… ${waited} s`
      : `Finishing: saving the recording… ${waited} s`;
  };
  show();
  finishing = setInterval(show, 200);
  if (mic) mic.stopTracks();
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "stop" }));
}

function lastFinalEnd() { return timeline.length ? timeline.at(-1).end : 0; }

startButton.addEventListener("click", start);
stopButton.addEventListener("click", stop);
