// Analyze page: drop or pick files, upload with progress, queue analyses, follow the jobs, history.
import { ApiError, el, fmtDate, fmtTime, get, post, setupKeyField, upload } from "./api.js";
import { explainPicker } from "./explain-options.js";

setupKeyField();
const explainChoice = explainPicker();
document.getElementById("explain-picker").replaceWith(explainChoice.node);
const drop = document.getElementById("drop");
const picker = document.getElementById("files");
const queue = document.getElementById("queue");
const errorBox = document.getElementById("upload-error");

drop.addEventListener("click", () => picker.click());
drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); picker.click(); } });
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); start([...e.dataTransfer.files]); });
picker.addEventListener("change", () => { start([...picker.files]); picker.value = ""; });

function options() {
  const language = document.getElementById("language").value.trim();
  const explain = explainChoice.options();
  const opts = {};
  if (language) opts.language = language;
  if (explain.explain) Object.assign(opts, explain);
  return opts;
}

function start(files) {
  errorBox.textContent = "";
  if (!files.length) return;
  queue.hidden = false;
  for (const file of files) track(file);
}

async function track(file) {
  const bar = el("progress", { max: 100, value: 0, "aria-label": `Upload of ${file.name}` });
  const state = el("span", {}, "waiting");
  const link = el("span");
  const row = el("tr", {}, el("td", {}, file.name), el("td", {}, bar), el("td", {}, state), el("td", {}, link));
  queue.tBodies[0].append(row);
  try {
    const up = await upload(file, (f) => { bar.value = Math.round(f * 100); });
    bar.value = 100;
    const job = await post("/analyses", { upload_id: up.id, options: options() });
    link.append(el("a", { href: `/analyses/${job.id}` }, "open"));
    await follow(job.id, state);
  } catch (err) {
    const message = err instanceof ApiError ? err.message : String(err);
    state.replaceChildren(el("span", { class: "error" }, message));
    errorBox.textContent = `${file.name}: ${message}`;
  }
  refreshHistory();
}

async function follow(id, state) {
  for (;;) {
    const s = await get(`/analyses/${id}`);
    if (s.status === "completed") { state.textContent = `completed · ${emotionLabel(s)}`; return; }
    if (s.status === "failed") { state.replaceChildren(el("span", { class: "error" }, s.error ? s.error.message : "failed")); return; }
    if (s.status === "cancelled") { state.textContent = "cancelled"; return; }
    state.textContent = `${s.status} ${s.progress}% · ${s.stage}`;
    await new Promise((r) => setTimeout(r, 700));
  }
}

const uploadNames = new Map();

// Live sessions save their recording as an upload named stream-…; one not analysed yet is
// listed too, with a button that analyses it.
const LIVE_PREFIX = "stream-";

async function refreshHistory() {
  const body = document.querySelector("#history tbody");
  try {
    const [page, uploads] = await Promise.all([get("/analyses?limit=50"), get("/uploads?limit=50")]);
    for (const u of uploads.items) uploadNames.set(u.id, u.filename);
    const missing = [...new Set(page.items.map((a) => a.upload_id))].filter((u) => !uploadNames.has(u));
    await Promise.all(missing.map(async (u) => {
      try { uploadNames.set(u, (await get(`/uploads/${u}`)).filename); } catch { uploadNames.set(u, u.slice(0, 8)); }
    }));
    const analysed = new Set(page.items.map((a) => a.upload_id));
    const live = uploads.items.filter((u) => u.filename.startsWith(LIVE_PREFIX) && !analysed.has(u.id));
    const rows = [
      ...page.items.map((a) => ({ at: a.created_at, node: el("tr", {},
        el("td", {}, el("a", { href: `/analyses/${a.id}` }, uploadNames.get(a.upload_id) || a.upload_id)),
        el("td", {}, a.status === "failed" && a.error ? `failed: ${a.error.message}` : a.status),
        el("td", {}, fmtDate(a.created_at)),
        el("td", {}, fmtTime(a.duration)),
        el("td", {}, a.dominant_emotion ? emotionLabel(a) : "–")) })),
      ...live.map((u) => ({ at: u.created_at, node: el("tr", { class: "live-recording" },
        el("td", {}, u.filename),
        el("td", {}, "live session, saved ", el("button", { type: "button", class: "secondary", onclick: async (ev) => {
          ev.target.disabled = true;
          try { location.href = `/analyses/${(await post("/analyses", { upload_id: u.id, options: {} })).id}`; }
          catch (err) { errorBox.textContent = err.message; ev.target.disabled = false; }
        } }, "Analyse")),
        el("td", {}, fmtDate(u.created_at)),
        el("td", {}, fmtTime(u.duration)),
        el("td", {}, "–")) })),
    ].sort((x, y) => (x.at < y.at ? 1 : -1));
    document.getElementById("history-empty").hidden = rows.length > 0;
    body.replaceChildren(...rows.map((r) => r.node));
  } catch (err) {
    errorBox.textContent = err.message;
  }
}

refreshHistory();

// "anger", or "uncertain (anger)" when no emotion stands out in the file.
function emotionLabel(a) {
  if (!a.dominant_emotion) return "no emotion";
  return a.emotion_uncertain ? `uncertain (${a.dominant_emotion})` : a.dominant_emotion;
}
