// Assistant page: microphone → AudioWorklet (16 kHz PCM, echo cancellation on) → WebSocket
// /api/v1/assistant → the user's transcript with its emotion, the reply as it streams, the reply's
// audio played sentence by sentence (stopped on barge-in or by the user), the turn's latency bars.
import { API, el, fmtDate, get, mediaToken, openPcmMicrophone, setupKeyField, withToken } from "./api.js";

setupKeyField();
const connectButton = document.getElementById("connect");
const talkButton = document.getElementById("talk");
const muteButton = document.getElementById("mute");
const endButton = document.getElementById("end");
const handsFree = document.getElementById("hands-free");
const wakeWord = document.getElementById("wake-word");
const status = document.getElementById("assistant-status");
const errorBox = document.getElementById("assistant-error");
const partial = document.getElementById("assistant-partial");
const chat = document.getElementById("chat");
// the turn's stages, seconds after the end of the user's speech (LatencyTrace)
const STAGES = [
  ["final_transcript_s", "transcript"],
  ["first_token_s", "first token"],
  ["first_sentence_s", "first sentence"],
  ["first_audio_s", "first audio"],
  ["playback_start_s", "voice-to-voice"],
  ["reply_done_s", "reply done"],
];

let socket = null, context = null, mic = null;
let talking = false, header = null, nextTime = 0, wakePhrase = "hey jarvis";
const playing = new Set();  // the reply's scheduled AudioBufferSourceNodes
const turns = new Map();     // turn index → { node, text, pcm: [Int16Array] }

function setStatus(text) { status.textContent = text; }

async function socketUrl() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  return withToken(`${proto}//${location.host}${API}/assistant`, await mediaToken());
}

function pct(p) { return `${Math.round(p * 100)}%`; }

function userLine(event) {
  const e = event.emotion, p = event.prosody;
  const parts = [];
  if (e) parts.push(`${e.uncertain ? "uncertain, " : ""}${e.dominant} ${pct(e.confidence)}`);
  if (p && p.pitch_mean_hz) parts.push(`pitch ${Math.round(p.pitch_mean_hz)} Hz`);
  if (p && p.speaking_rate_wps) parts.push(`${p.speaking_rate_wps.toFixed(1)} words/s`);
  parts.push(`${event.style} reply (${event.style_reason})`);
  return parts.join(" · ");
}

function newTurn(event) {
  const e = event.emotion;
  const replyText = el("span", { class: "reply-text" });
  const reply = el("div", { class: "bubble reply" }, el("div", { class: "meta" }, "assistant"), replyText);
  const node = el("div", { class: "turn", "data-turn": event.turn },
    el("div", { class: `bubble user${e ? ` emo-${e.dominant}` : ""}`, "data-emotion": e ? e.dominant : "" },
      el("div", { class: "meta user-meta" }, userLine(event)),
      el("div", { class: "user-text" }, event.text)),
    reply);
  chat.append(node);
  node.scrollIntoView({ block: "end" });
  const turn = { node, reply, replyText, pcm: [] };
  turns.set(event.turn, turn);
  return turn;
}

function latencyBars(trace) {
  const values = STAGES.map(([key]) => trace[key]);
  const longest = Math.max(0.001, ...values.filter((v) => v !== null && v !== undefined));
  const rows = STAGES.flatMap(([key, label], i) => {
    const v = values[i];
    const bar = v === null || v === undefined ? el("span", {}, "") :
      el("div", { class: `lat-bar${key === "playback_start_s" ? " total" : ""}`, style: `width:${(100 * v / longest).toFixed(1)}%` });
    return [el("span", {}, label), el("div", { class: "lat-track", "data-stage": key }, bar),
      el("span", {}, v === null || v === undefined ? "–" : `${v.toFixed(2)} s`)];
  });
  return el("div", { class: "latency", role: "img",
    "aria-label": `latency after the end of your speech: voice-to-voice ${trace.voice_to_voice_s ?? "–"} s` }, ...rows);
}

function wav(chunks) {
  const samples = chunks.reduce((n, c) => n + c.length, 0);
  const buffer = new ArrayBuffer(44 + samples * 2);
  const view = new DataView(buffer);
  const text = (at, s) => [...s].forEach((ch, i) => view.setUint8(at + i, ch.charCodeAt(0)));
  text(0, "RIFF"); view.setUint32(4, 36 + samples * 2, true); text(8, "WAVE"); text(12, "fmt ");
  view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, 16000, true); view.setUint32(28, 32000, true); view.setUint16(32, 2, true);
  view.setUint16(34, 16, true); text(36, "data"); view.setUint32(40, samples * 2, true);
  let at = 44;
  for (const c of chunks) { new Int16Array(buffer, at, c.length).set(c); at += c.length * 2; }
  return new Blob([buffer], { type: "audio/wav" });
}

function finishTurn(event) {
  const turn = turns.get(event.index) || newTurn({ turn: event.index, text: event.user.text, style: event.style, style_reason: event.style_reason });
  turn.replyText.textContent = event.reply || event.sentences.join(" ");
  if (event.cut) turn.reply.classList.add("cut");
  if (event.error) turn.reply.append(el("div", { class: "error turn-error" }, `${event.error.code}: ${event.error.message}`));
  if (turn.pcm.length) {
    const audio = el("audio", { controls: "", preload: "auto", class: "reply-audio" });
    audio.src = URL.createObjectURL(wav(turn.pcm));
    turn.node.append(audio);
  }
  turn.node.append(latencyBars(event.trace));
  turn.node.scrollIntoView({ block: "end" });
}

function play(pcm, turn) {
  if (!context) return;
  const samples = new Int16Array(pcm);
  if (turn) turn.pcm.push(samples);
  const buffer = context.createBuffer(1, samples.length, 16000);
  const channel = buffer.getChannelData(0);
  for (let i = 0; i < samples.length; i++) channel[i] = samples[i] / 32768;
  const source = context.createBufferSource();
  source.buffer = buffer;
  source.connect(context.destination);
  const at = Math.max(context.currentTime + 0.02, nextTime);
  source.start(at);
  nextTime = at + buffer.duration;
  playing.add(source);
  source.onended = () => playing.delete(source);
  muteButton.disabled = false;
}

function stopPlayback() {
  for (const source of playing) { try { source.stop(); } catch { /* not started */ } }
  playing.clear();
  nextTime = 0;
}

function onEvent(event) {
  const kind = event.type;
  if (kind === "ready") {
    if (event.wake_phrase) wakePhrase = event.wake_phrase;
    openMicrophone(event).catch((err) => { errorBox.textContent = `The microphone is not available: ${err.message}`; end(); });
  } else if (kind === "wake") {
    setStatus(`Heard “${event.phrase}”: speak now.`);
  } else if (kind === "vad" && event.state === "start") {
    setStatus("Hearing you…");
  } else if (kind === "partial") {
    partial.textContent = event.text;
  } else if (kind === "transcript") {
    partial.textContent = "";
    newTurn(event);
    setStatus("Answering…");
  } else if (kind === "token") {
    const turn = turns.get(event.turn);
    if (turn) turn.replyText.textContent += event.text;
  } else if (kind === "audio") {
    header = event;
  } else if (kind === "barge_in") {
    stopPlayback();
  } else if (kind === "turn") {
    finishTurn(event);
    setStatus(readyText());
  } else if (kind === "error") {
    const turn = event.turn !== undefined ? turns.get(event.turn) : null;
    if (!turn) errorBox.textContent = `${event.message} (${event.code})`;
  } else if (kind === "done") {
    setStatus("Conversation ended.");
  }
}

function readyText() {
  return handsFree.checked ? `Listening for “${wakePhrase}”…` : "Ready: hold the talk button (or the space bar) while you speak.";
}

async function openMicrophone(ready) {
  mic = await openPcmMicrophone({ noiseSuppression: true, autoGainControl: true });
  context = mic.context;  // the replies play through the microphone's 16 kHz context
  // the microphone is sent all the time (the server hears silence while the button is up)
  mic.send((pcm) => { if (socket && socket.readyState === WebSocket.OPEN) socket.send(pcm); });
  talkButton.disabled = ready.mode !== "push_to_talk";
  endButton.disabled = false;
  setStatus(readyText());
  document.getElementById("assistant-status").dataset.ready = "true";
}

async function connect() {
  errorBox.textContent = "";
  connectButton.disabled = true;
  handsFree.disabled = true;
  wakeWord.disabled = true;
  setStatus("Starting: loading the assistant's models…");
  try {
    socket = new WebSocket(await socketUrl());
  } catch (err) {
    errorBox.textContent = err.message;
    cleanup();
    return;
  }
  socket.binaryType = "arraybuffer";
  socket.onopen = () => {
    const start = { type: "start", encoding: "pcm_s16le", sample_rate: 16000, partials: true };
    if (handsFree.checked) Object.assign(start, { mode: "hands_free", wake_word: wakeWord.value });
    socket.send(JSON.stringify(start));
  };
  socket.onmessage = (m) => {
    if (m.data instanceof ArrayBuffer) {
      play(m.data, header ? turns.get(header.turn) : null);
      header = null;
      return;
    }
    try { onEvent(JSON.parse(m.data)); } catch (err) { errorBox.textContent = err.message; }
  };
  socket.onerror = () => { errorBox.textContent = "The assistant's connection failed."; };
  socket.onclose = (e) => {
    if (e.code !== 1000) setStatus(`Connection closed (${e.code}${e.reason ? `: ${e.reason}` : ""}).`);
    cleanup();
  };
}

function talkStart() {
  if (talking || talkButton.disabled) return;
  talking = true;
  stopPlayback();  // you speak: the reply stops here at once (the server cuts it as it hears you)
  talkButton.setAttribute("aria-pressed", "true");
  talkButton.textContent = "Listening… release to send";
  socket.send(JSON.stringify({ type: "talk_start" }));
}

function talkStop() {
  if (!talking) return;
  talking = false;
  talkButton.setAttribute("aria-pressed", "false");
  talkButton.textContent = "Hold to talk";
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "talk_stop" }));
}

function mute() {
  stopPlayback();
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "mute" }));
}

function end() {
  talkStop();
  endButton.disabled = true;
  talkButton.disabled = true;
  if (mic) mic.stopTracks();
  if (socket && socket.readyState === WebSocket.OPEN) {
    setStatus("Ending: answering what was said last…");
    socket.send(JSON.stringify({ type: "stop" }));
  }
}

function cleanup() {
  if (mic) mic.close();
  mic = null; context = null; socket = null;
  playing.clear();
  connectButton.disabled = false;
  handsFree.disabled = false;
  wakeWord.disabled = false;
  talkButton.disabled = true;
  muteButton.disabled = true;
  endButton.disabled = true;
  delete document.getElementById("assistant-status").dataset.ready;
}

connectButton.addEventListener("click", connect);
endButton.addEventListener("click", end);
muteButton.addEventListener("click", mute);
talkButton.addEventListener("pointerdown", (e) => { e.preventDefault(); talkStart(); });
talkButton.addEventListener("pointerup", talkStop);
talkButton.addEventListener("pointerleave", talkStop);
document.addEventListener("keydown", (e) => {
  if (e.code === "Space" && !e.repeat && !talkButton.disabled && e.target.tagName !== "INPUT") { e.preventDefault(); talkStart(); }
});
document.addEventListener("keyup", (e) => { if (e.code === "Space") talkStop(); });

// The wake words on offer: the shipped model and those this key trained in the wake-word studio
// (a completed job's id is a wake word); without the studio's jobs, the shipped one only.
async function listWakeWords() {
  let page;
  try { page = await get("/wakeword/jobs?limit=50"); } catch { return; }
  wakeWord.append(...page.items.filter((j) => j.wake_word).map((j) =>
    el("option", { value: j.wake_word }, `${j.phrase} (trained ${fmtDate(j.finished_at)})`)));
}

listWakeWords();
