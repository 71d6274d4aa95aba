// The REST API from the browser: same origin, optional API key kept in localStorage. The key
// travels only in the X-API-Key header; URLs the browser fetches by itself (<audio>, images,
// downloads, the WebSocket) carry a short-lived token from POST /tokens instead, never the key.
export const API = "/api/v1";
export const EMOTIONS = ["anger", "fear", "happiness", "neutral", "sadness", "surprise"];
export const COLOURS = {
  anger: "#d1495b", fear: "#7a4fa0", happiness: "#e9a23b",
  neutral: "#7d8597", sadness: "#2f6fb3", surprise: "#2a9d8f",
};

export function apiKey() { return localStorage.getItem("emotivoice-key") || ""; }

let token = null; // { value, until }: the current media token, renewed a minute before it ends

// A token standing for the key in URLs ("" without a key: nothing to add).
export async function mediaToken() {
  if (!apiKey()) return "";
  if (token && token.until > Date.now() + 60_000) return token.value;
  const issued = await post("/tokens", {});
  token = { value: issued.token, until: Date.now() + issued.expires_in * 1000 };
  return token.value;
}

// `url` with `?token=` for the browser to fetch (unchanged without a key).
export function withToken(url, value) {
  if (!value) return url;
  return url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(value);
}

function headers(extra = {}) {
  const key = apiKey();
  return key ? { ...extra, "X-API-Key": key } : extra;
}

export class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

async function parse(response) {
  let body = null;
  try { body = await response.json(); } catch { body = null; }
  if (!response.ok) {
    const message = body && body.message ? body.message : `The server answered ${response.status}.`;
    throw new ApiError(response.status, body && body.code ? body.code : "HTTP_ERROR", message);
  }
  return body;
}

export async function get(path) {
  return parse(await fetch(API + path, { headers: headers() }));
}

export async function post(path, body) {
  return parse(await fetch(API + path, {
    method: "POST", headers: headers({ "Content-Type": "application/json" }), body: JSON.stringify(body),
  }));
}

// Upload with progress events (fetch has none for request bodies).
export function upload(file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", API + "/uploads");
    const key = apiKey();
    if (key) xhr.setRequestHeader("X-API-Key", key);
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { body = null; }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new ApiError(xhr.status, body && body.code, body && body.message
        ? body.message : `The upload failed (HTTP ${xhr.status}).`));
    };
    xhr.onerror = () => reject(new ApiError(0, "NETWORK", "The server cannot be reached."));
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  });
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export function fmtTime(s) {
  if (s === null || s === undefined) return "–";
  const m = Math.floor(s / 60);
  return `${m}:${(s - m * 60).toFixed(1).padStart(4, "0")}`;
}

export function fmtDate(iso) { return iso ? new Date(iso).toLocaleString() : "–"; }

// Header: the API key field shared by every page.
export function setupKeyField() {
  const input = document.getElementById("api-key");
  if (!input) return;
  input.value = apiKey();
  input.addEventListener("change", () => {
    localStorage.setItem("emotivoice-key", input.value.trim());
    location.reload();
  });
}

// The microphone as 16 kHz 16-bit mono PCM, for the live pages (Live, the wake-word studio's
// try-out, the Assistant): getUserMedia with echo cancellation (`audio` adds constraints), an
// AudioContext at 16 kHz and the pcm-worklet.js AudioWorklet, which cuts ~100 ms ArrayBuffers.
// Nothing flows until `send(onChunk)`; `stopTracks()` releases the microphone (the context
// stays: the Assistant plays its replies through it), `close()` releases both.
export async function openPcmMicrophone(audio = {}) {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true, ...audio } });
  const stopTracks = () => stream.getTracks().forEach((t) => t.stop());
  const context = new AudioContext({ sampleRate: 16000 });
  let node;
  try {
    await context.audioWorklet.addModule("/static/pcm-worklet.js");
    node = new AudioWorkletNode(context, "pcm-sender");
  } catch (err) {
    stopTracks();
    context.close().catch(() => {});
    throw err;
  }
  const source = context.createMediaStreamSource(stream);
  return {
    stream,
    context,
    send(onChunk) { node.port.onmessage = (m) => onChunk(m.data); source.connect(node); },
    stopTracks,
    close() { stopTracks(); context.close().catch(() => {}); },
  };
}
