// posepipe web UI: plain JavaScript over the REST API (no build step).
// The API token is kept in this browser's localStorage under "posepipe.token" and sent as
// `Authorization: Bearer`; pictures and clips are fetched with it and shown from blob: URLs.
// Every text from the server is put in the page with textContent, never as HTML.
"use strict";

const TOKEN_KEY = "posepipe.token";
const POLL_MS = 1500;
const THUMB_SIDE = 160;
const THUMB_PARALLEL = 3;
const EVENT_TYPES = ["fall", "long_lie", "fall_recovered", "rep", "exercise_set", "stream_gap"];
const EXERCISES = ["squat", "pushup", "bicep_curl", "jumping_jack", "lunge", "situp"];
// Joint angles drawn on a video's timeline, with their colours.
const ANGLE_SERIES = [
  ["trunk_inclination_deg", "trunk inclination", "#7a3db8"],
  ["left_knee_deg", "left knee", "#2f6fde"],
  ["right_knee_deg", "right knee", "#6ea0ff"],
  ["left_hip_deg", "left hip", "#0e9384"],
  ["right_hip_deg", "right hip", "#5fd3c4"],
  ["left_elbow_deg", "left elbow", "#dc8a00"],
];
const EVENT_COLORS = {
  fall: "rgba(217,45,32,0.22)", long_lie: "rgba(220,138,0,0.22)", fall_recovered: "rgba(18,120,200,0.16)",
  rep: "rgba(18,161,80,0.16)",
  exercise_set: "rgba(18,161,80,0.06)", stream_gap: "rgba(100,100,100,0.18)",
};

// Live view: how long one picture request may wait for a newer frame (the API's long poll),
// and how long a tile waits before asking again after its camera had no picture.
const LIVE_WAIT_S = 5;
const LIVE_RETRY_MS = 2000;

const state = { token: localStorage.getItem(TOKEN_KEY), me: null, timers: [], blobUrls: [], aborts: [], route: 0 };

// ---------- small helpers ----------
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
const main = () => document.getElementById("main");
// replaceChildren that skips null/false (optional parts are written `cond ? node : null`).
function fill(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}
const fmt = (v, digits = 2) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "–");
const badge = (text) => el("span", { class: `badge ${text}`, text });
const isAdmin = () => state.me && state.me.scope === "admin";

function progressBar(fraction, status) {
  const bar = el("div", { class: `bar ${status || ""}` }, el("span"));
  bar.firstChild.style.width = `${Math.round(Math.max(0, Math.min(1, fraction)) * 100)}%`;
  return bar;
}

function every(ms, fn) {
  const route = state.route;
  const tick = async () => {
    if (route !== state.route) return;
    try { await fn(); } catch (err) { console.warn(err); }
    if (route === state.route) state.timers.push(setTimeout(tick, ms));
  };
  state.timers.push(setTimeout(tick, ms));
}

class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401) {
    if (location.hash !== "#/token") location.hash = "#/token";
    throw new ApiError(401, "this token is missing, invalid or revoked");
  }
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
    throw new ApiError(response.status, typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return response;
}
const getJson = async (path) => (await api(path)).json();

async function blobUrl(path) {
  const url = URL.createObjectURL(await (await api(path)).blob());
  state.blobUrls.push(url);
  return url;
}

// Thumbnails load a few at a time so a long table does not flood the server.
const thumbQueue = [];
let thumbsRunning = 0;
function loadThumb(img, path) {
  thumbQueue.push([img, path, state.route]);
  pumpThumbs();
}
function pumpThumbs() {
  while (thumbsRunning < THUMB_PARALLEL && thumbQueue.length) {
    const [img, path, route] = thumbQueue.shift();
    if (route !== state.route) continue;
    thumbsRunning++;
    blobUrl(path)
      .then((url) => { img.src = url; })
      .catch((err) => { img.alt = err.message; img.title = err.message; })
      .finally(() => { thumbsRunning--; pumpThumbs(); });
  }
}

async function download(path, filename) {
  const url = await blobUrl(path);
  const link = el("a", { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
}

// ---------- routing ----------
const routes = [
  [/^#\/token$/, viewToken],
  [/^#\/videos\/(\d+)$/, viewVideo],
  [/^#\/videos$/, viewVideos],
  [/^#\/events$/, viewEvents],
  [/^#\/cameras$/, viewCameras],
  [/^#\/live$/, viewLive],
];

async function render() {
  state.route++;
  state.timers.forEach(clearTimeout);
  state.timers = [];
  state.aborts.forEach((controller) => controller.abort());
  state.aborts = [];
  state.blobUrls.forEach((url) => URL.revokeObjectURL(url));
  state.blobUrls = [];
  const hash = location.hash || "#/videos";
  document.querySelectorAll("[data-nav]").forEach((a) => {
    a.classList.toggle("active", hash.startsWith(`#/${a.dataset.nav}`));
  });
  if (!state.token && hash !== "#/token") { location.hash = "#/token"; return; }
  if (state.token && !state.me && hash !== "#/token") {
    try { await whoAmI(); } catch (err) { return; }
  }
  for (const [pattern, view] of routes) {
    const match = hash.match(pattern);
    if (match) {
      fill(main(), el("p", { class: "muted", text: "Loading…" }));
      try { await view(...match.slice(1)); } catch (err) { showError(err); }
      return;
    }
  }
  location.hash = "#/videos";
}

function showError(err) {
  if (err instanceof ApiError && err.status === 401) return;
  fill(main(), el("div", { class: "card error", text: `Error: ${err.message}` }));
}

async function whoAmI() {
  state.me = await getJson("/api/me");
  document.getElementById("who").textContent = `${state.me.name} (${state.me.scope})`;
}

// ---------- token ----------
function viewToken() {
  const input = el("input", { type: "password", id: "token-input", placeholder: "pp_…", size: 60, autocomplete: "off" });
  const message = el("p", { class: "muted" });
  const form = el("form", {
    onsubmit: async (e) => {
      e.preventDefault();
      state.token = input.value.trim();
      state.me = null;
      try {
        await whoAmI();
        localStorage.setItem(TOKEN_KEY, state.token);
        location.hash = "#/videos";
      } catch (err) {
        message.className = "error";
        message.textContent = `Not accepted: ${err.message}`;
      }
    },
  }, el("div", { class: "row" }, el("label", {}, "API token", input), el("button", { type: "submit", id: "token-save" }, "Use this token")));
  const forget = el("button", {
    class: "secondary", type: "button",
    onclick: () => { localStorage.removeItem(TOKEN_KEY); state.token = null; state.me = null; document.getElementById("who").textContent = "no token"; message.textContent = "Forgotten."; },
  }, "Forget the stored token");
  fill(main(),
    el("h1", { text: "API token" }),
    el("div", { class: "card" },
      el("p", {}, "Make one on the server with ", el("code", { text: "posepipe token create NAME --scope admin" }),
        " (or ", el("code", { text: "--scope read" }), " for viewing only). It is kept in this browser's local storage."),
      form, message, state.token ? forget : null),
  );
  input.focus();
}

// ---------- videos ----------
function videoRow(v) {
  const counts = Object.entries(v.event_counts).map(([type, n]) => el("span", {}, badge(type), ` ${n} `));
  return el("tr", { "data-video": v.id },
    el("td", { class: "num", text: v.id }),
    el("td", {}, el("a", { href: `#/videos/${v.id}`, text: v.name })),
    el("td", { text: v.photo ? "photo" : v.kind }),
    el("td", {}, badge(v.status), v.error ? el("div", { class: "error", text: v.error }) : null),
    el("td", {}, progressBar(v.progress, v.status), el("span", { class: "muted", text: ` ${v.frames_done}/${v.frames_total ?? v.frames_expected ?? "?"} frames` })),
    el("td", {}, counts.length ? counts : el("span", { class: "muted", text: "none" })),
    el("td", { class: "muted", text: when(v.created_at) }),
  );
}

async function viewVideos() {
  const tbody = el("tbody");
  const table = el("table", { id: "videos" },
    el("thead", {}, el("tr", {}, ["id", "name", "kind", "status", "progress", "events", "added"].map((h) => el("th", { text: h })))),
    tbody);
  fill(main(),
    el("h1", { text: "Videos" }),
    isAdmin() ? uploadCard() : el("p", { class: "notice", text: "Read-only token: uploads need an admin token." }),
    el("div", { class: "card" }, el("h2", { text: "Analyses" }), table),
  );
  const refresh = async () => {
    const page = await getJson("/api/videos?limit=100");
    fill(tbody, ...page.items.map(videoRow));
    if (!page.items.length) tbody.append(el("tr", {}, el("td", { colspan: 7, class: "muted", text: "No videos yet." })));
  };
  await refresh();
  every(POLL_MS, refresh);
}

function uploadCard() {
  const file = el("input", { type: "file", id: "upload-file", accept: "video/*,image/*", multiple: true });
  const exercise = el("select", { id: "upload-exercise" }, el("option", { value: "", text: "recognise it" }), EXERCISES.map((x) => el("option", { value: x, text: x })));
  const fps = el("input", { type: "number", id: "upload-fps", min: 0, max: 240, step: "any", placeholder: "default", style: "width:90px" });
  const status = el("div", { id: "upload-status", class: "muted" });
  const results = el("div", { id: "upload-results" });
  const uploadBar = progressBar(0);
  const lines = el("div", { id: "upload-progress", hidden: true },
    el("div", { class: "progress-line" }, el("span", { text: "upload", style: "width:70px" }), uploadBar));
  // Several files are sent one after another (one upload each, as the API takes them); each
  // then shows its own analysis progress, and a photo its skeleton drawing and landmarks.
  const send = (picked, index) => new Promise((resolve) => {
    const one = picked[index];
    const params = new URLSearchParams();
    if (exercise.value) params.set("exercise", exercise.value);
    if (fps.value) params.set("fps", fps.value);
    const body = new FormData();
    body.append("file", one);
    const item = el("div", { class: "upload-item", "data-index": index });
    results.append(item);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/videos?${params}`);
    xhr.setRequestHeader("Authorization", `Bearer ${state.token}`);
    uploadBar.firstChild.style.width = "0%";
    status.className = "muted";
    status.textContent = `Uploading ${one.name}${picked.length > 1 ? ` (${index + 1} of ${picked.length})` : ""}…`;
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) uploadBar.firstChild.style.width = `${Math.round((100 * e.loaded) / e.total)}%`; };
    xhr.onerror = () => { fill(item, el("span", { class: "error", text: `${one.name}: the upload failed (network).` })); resolve(); };
    xhr.onload = () => {
      let answer = {};
      try { answer = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
      if (xhr.status !== 202) {
        fill(item, el("span", { class: "error", text: `${one.name}: refused (${xhr.status}): ${answer.detail || xhr.statusText}` }));
      } else {
        uploadBar.firstChild.style.width = "100%";
        followJob(answer.video.id, answer.action, item, index);
      }
      resolve();
    };
    xhr.send(body);
  });
  const button = el("button", {
    id: "upload-button", type: "button",
    onclick: async () => {
      if (!file.files.length) { status.textContent = "Choose a video or photo first."; return; }
      const picked = Array.from(file.files);
      lines.hidden = false;
      button.disabled = true;
      results.replaceChildren();
      for (let i = 0; i < picked.length; i++) await send(picked, i);
      button.disabled = false;
      status.textContent = `Sent ${picked.length} file${picked.length > 1 ? "s" : ""}.`;
    },
  }, "Upload and analyse");
  return el("div", { class: "card" }, el("h2", { text: "Upload a video or photo" }),
    el("div", { class: "row" }, el("label", {}, "video or photo (several at once)", file), el("label", {}, "exercise", exercise), el("label", {}, "fps", fps), button),
    lines, status, results);
}

function followJob(videoId, action, item, index) {
  const route = state.route;
  const bar = progressBar(0);
  const text = el("span", { class: "muted" });
  fill(item, el("div", { class: "progress-line" }, el("span", { text: "analysis", style: "width:70px" }), bar), text);
  const poll = async () => {
    if (route !== state.route) return;
    const v = await getJson(`/api/videos/${videoId}`);
    bar.firstChild.style.width = `${Math.round(v.progress * 100)}%`;
    bar.className = `bar ${v.status}`;
    const done = v.status === "done";
    fill(text,
      `${v.photo ? "Photo" : "Video"} ${v.id} ${v.name} (${action}): `, badge(v.status),
      v.photo ? " " : ` ${v.frames_done}/${v.frames_total ?? v.frames_expected ?? "?"} frames `,
      done ? el("a", { href: `#/videos/${v.id}`, id: index === 0 ? "upload-open" : `upload-open-${index}`, class: "upload-open", text: "open it" }) : null,
      v.error ? el("span", { class: "error", text: ` ${v.error}` }) : null);
    if (done && v.photo) showPhotoResult(item, v);
    if (!done && v.status !== "failed") state.timers.push(setTimeout(() => poll().catch(console.warn), 1000));
  };
  poll().catch((err) => { text.className = "error"; text.textContent = err.message; });
}

function showPhotoResult(item, v) {
  // The skeleton drawn on the photo as soon as it is analysed, and its landmarks to download.
  const img = el("img", { class: "snapshot photo-result", alt: `${v.name} with its skeleton` });
  const csvName = `photo-${v.id}-landmarks.csv`;
  item.append(el("div", { class: "photo-box" }, img,
    el("button", { class: "secondary photo-csv", type: "button", onclick: () => download(`/api/videos/${v.id}/poses?format=csv`, csvName).catch(showError) }, "Landmarks (CSV)")));
  blobUrl(`/api/videos/${v.id}/snapshot?t=0`)
    .then((url) => { img.onload = () => { img.dataset.shown = "1"; }; img.src = url; })
    .catch((err) => { img.alt = err.message; });
}

// ---------- one video ----------
async function viewVideo(id) {
  const video = await getJson(`/api/videos/${id}`);
  const photo = video.photo;
  // A photo has no timeline: its page is the drawing, the landmarks and the people found.
  const analysed = el("dd", { id: "video-analysed", text: photo
    ? (video.frames_done ? "a photo" : "not yet")
    : `${video.frames_done} frames at ${fmt(video.fps_target, 1)} fps, a person in ${video.frames_with_person}` });
  const snapshot = el("img", { class: "snapshot", id: "snapshot", alt: "snapshot" });
  const snapNote = el("div", { class: "legend-note", id: "snapshot-note", text: "Click the timeline to see that moment." });
  const chartBox = el("div", { class: "chart", id: "timeline" });
  const eventsBody = el("tbody");
  const clipBox = el("div", { id: "clip-box" });
  const actions = el("div", { class: "row" },
    el("button", { class: "secondary", id: "download-poses", onclick: () => download(`/api/videos/${id}/poses?format=csv`, `video-${id}-poses.csv`).catch(showError) }, "Poses and angles (CSV)"),
    el("button", { class: "secondary", id: "download-events", onclick: () => download(`/api/events.csv?video_id=${id}`, `video-${id}-events.csv`).catch(showError) }, "Events (CSV)"),
    isAdmin() ? el("button", {
      class: "danger", id: "delete-video",
      onclick: async () => {
        if (!confirm(`Delete video ${id} with its poses and events?`)) return;
        await api(`/api/videos/${id}`, { method: "DELETE" });
        location.hash = "#/videos";
      },
    }, "Delete") : null);
  fill(main(),
    el("h1", {}, `${video.name} `, badge(video.status)),
    el("div", { class: "card" },
      el("dl", { class: "kv" },
        ...[["video id", video.id], ["kind", video.camera ? `camera ${video.camera}` : (photo ? "photo" : video.kind)],
          photo ? null : ["duration", video.duration_s ? `${fmt(video.duration_s)} s` : "–"],
          ["size", video.width ? `${video.width}×${video.height} ${video.codec || ""}` : "–"],
          ["analysed", analysed],
          ["progress", `${Math.round(video.progress * 100)} %`], ["added", when(video.created_at)]]
          .filter((row) => row)
          .flatMap(([k, v]) => [el("dt", { text: k }), v instanceof Node ? v : el("dd", { text: v })])),
      video.error ? el("p", { class: "error", text: video.error }) : null,
      actions),
    photo ? el("div", { class: "card photo-box" }, el("h2", { text: "Skeleton" }), snapshot, snapNote) : el("div", { class: "grid2" },
      el("div", { class: "card" }, el("h2", { text: "Timeline: joint angles, repetitions and falls" }), chartBox,
        el("div", { class: "legend-note" }, "Bands:",
          el("span", { class: "swatch", style: "background:rgba(217,45,32,.5)" }), "fall",
          el("span", { class: "swatch", style: "background:rgba(220,138,0,.5)" }), "long lie",
          el("span", { class: "swatch", style: "background:rgba(18,161,80,.45)" }), "repetition")),
      el("div", { class: "card" }, el("h2", { text: "Snapshot" }), snapshot, snapNote, clipBox)),
    el("div", { class: "card" }, el("h2", { text: "Events" }),
      el("table", { id: "video-events" }, el("thead", {}, el("tr", {}, ["", "type", "time", "track", "confidence", "evidence", ""].map((h) => el("th", { text: h })))), eventsBody)),
  );
  if (video.status === "queued" || video.status === "running") {
    every(POLL_MS, async () => {
      const now = await getJson(`/api/videos/${id}`);
      if (now.status !== video.status || now.status === "done" || now.status === "failed") render();
    });
  }
  const events = (await getJson(`/api/events?video_id=${id}&sort=t_start&limit=500`)).items;
  fill(eventsBody, ...events.map((e) => eventRow(e, { onTime: (t) => showMoment(t), clipBox })));
  if (!events.length) eventsBody.append(el("tr", {}, el("td", { colspan: 7, class: "muted", text: "No events." })));

  let chart = null;
  const showMoment = async (t) => {
    snapNote.textContent = `Loading ${fmt(t)} s…`;
    try {
      const response = await api(`/api/videos/${id}/snapshot?t=${t.toFixed(3)}`);
      const url = URL.createObjectURL(await response.blob());
      state.blobUrls.push(url);
      snapshot.onload = () => { snapshot.dataset.shown = response.headers.get("X-Frame-Time-S"); };
      snapshot.src = url;
      const blank = response.headers.get("X-Background") === "blank" ? " (live session: skeleton only)" : "";
      snapNote.textContent = `Frame at ${response.headers.get("X-Frame-Time-S")} s${blank}`;
      if (chart) { chart.posepipeMarker = Number(response.headers.get("X-Frame-Time-S")); chart.redraw(false); }
    } catch (err) { snapNote.textContent = err.message; }
  };
  if (photo && video.frames_done > 0) {
    const poses = await (await api(`/api/videos/${id}/poses?format=json&landmarks=nose`)).json();
    const people = poses.poses.length;
    analysed.textContent = people ? `${people === 1 ? "1 person" : `${people} people`} found` : "nobody found";
    showMoment(0);
  } else if (video.frames_done > 0) {
    const poses = await (await api(`/api/videos/${id}/poses?format=json&landmarks=nose`)).json();
    chart = drawTimeline(chartBox, poses.poses, events, showMoment);
    const first = events.find((e) => e.type === "fall") || events[0];
    showMoment(first ? (first.t_start_s + first.t_end_s) / 2 : (poses.poses[0] ? poses.poses[0].t_s : 0));
  } else {
    chartBox.append(el("p", { class: "muted", text: "No analysed frames yet." }));
  }
}

function drawTimeline(box, poses, events, onPick) {
  // One line per joint angle for the track seen longest; events as bands behind the lines.
  const perTrack = new Map();
  for (const p of poses) perTrack.set(p.track_id, (perTrack.get(p.track_id) || 0) + 1);
  const track = [...perTrack.entries()].sort((a, b) => b[1] - a[1])[0];
  const rows = poses.filter((p) => track && p.track_id === track[0]);
  if (!rows.length) { box.append(el("p", { class: "muted", text: "Nobody was found in this video." })); return null; }
  const data = [rows.map((p) => p.t_s), ...ANGLE_SERIES.map(([key]) => rows.map((p) => p.angles_deg[key]))];
  const width = Math.max(320, box.clientWidth || 640);
  const opts = {
    width, height: 300,
    scales: { x: { time: false }, y: { range: [0, 180] } },
    axes: [{ label: "seconds", size: 40 }, { label: "degrees", size: 50 }],
    series: [{ label: "t (s)", value: (u, v) => (v == null ? "–" : v.toFixed(2)) },
      ...ANGLE_SERIES.map(([, label, stroke]) => ({ label, stroke, width: 1.6, spanGaps: true, value: (u, v) => (v == null ? "–" : v.toFixed(0)) }))],
    cursor: { drag: { x: false, y: false } },
    hooks: {
      drawClear: [(u) => {
        const ctx = u.ctx;
        ctx.save();
        for (const e of events) {
          const x0 = u.valToPos(e.t_start_s, "x", true);
          const x1 = u.valToPos(e.t_end_s, "x", true);
          ctx.fillStyle = EVENT_COLORS[e.type] || "rgba(0,0,0,0.08)";
          ctx.fillRect(x0, u.bbox.top, Math.max(3, x1 - x0), u.bbox.height);
          if (e.type === "fall" || e.type === "rep") {
            ctx.fillStyle = e.type === "fall" ? "#b42318" : "#0b7a3b";
            ctx.font = `${11 * devicePixelRatio}px sans-serif`;
            ctx.fillText(e.type, x0 + 3, u.bbox.top + 14 * devicePixelRatio);
          }
        }
        ctx.restore();
      }],
      draw: [(u) => {
        if (u.posepipeMarker == null) return;
        const x = u.valToPos(u.posepipeMarker, "x", true);
        const ctx = u.ctx;
        ctx.save();
        ctx.strokeStyle = "#18202e";
        ctx.setLineDash([4, 3]);
        ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke();
        ctx.restore();
      }],
    },
  };
  const chart = new uPlot(opts, data, box);
  chart.over.addEventListener("click", () => {
    if (chart.cursor.left == null || chart.cursor.left < 0) return;
    onPick(chart.posToVal(chart.cursor.left, "x"));
  });
  box.dataset.track = track[0];
  return chart;
}

function eventRow(e, { onTime, clipBox, showSource = false }) {
  const img = el("img", { class: "thumb", alt: `${e.type} snapshot` });
  if (e.snapshot_url) loadThumb(img, `${e.snapshot_url}?max_side=${THUMB_SIDE}`);
  let evidence = Object.entries(e.data || {}).slice(0, 4).map(([k, v]) => `${k}: ${typeof v === "number" ? fmt(v) : v}`).join(", ");
  // A long lie of someone the pose model lost on the floor: say so before the numbers.
  if (e.type === "long_lie" && e.data && e.data.seen === false) evidence = `not seen since the fall (track ${e.data.fall_track_id}), ${evidence}`;
  const time = e.started_at ? `${when(e.started_at)}` : `${fmt(e.t_start_s)}–${fmt(e.t_end_s)} s`;
  const open = onTime
    ? el("button", { class: "secondary", onclick: () => onTime((e.t_start_s + e.t_end_s) / 2) }, "show")
    : (e.video_id ? el("a", { href: `#/videos/${e.video_id}`, text: "video" }) : null);
  const clip = e.clip_url && clipBox ? el("button", {
    class: "secondary",
    onclick: async () => {
      fill(clipBox, el("p", { class: "muted", text: "Rendering the clip…" }));
      try {
        const url = await blobUrl(e.clip_url);
        fill(clipBox, el("video", { class: "clip", src: url, controls: true, autoplay: true, muted: true }));
      } catch (err) { fill(clipBox, el("p", { class: "error", text: err.message })); }
    },
  }, "clip") : null;
  return el("tr", { "data-event": e.id, "data-type": e.type },
    el("td", {}, img),
    el("td", {}, badge(e.type)),
    el("td", {}, time, showSource ? el("div", { class: "muted", text: e.source_name }) : null),
    el("td", { class: "num", text: e.track_id ?? "–" }),
    el("td", { class: "num", text: fmt(e.confidence) }),
    el("td", { class: "muted", text: evidence }),
    el("td", {}, open, " ", clip));
}

// ---------- events ----------
async function viewEvents() {
  const filters = { type: el("select", { id: "filter-type" }, el("option", { value: "", text: "any type" }), EVENT_TYPES.map((t) => el("option", { value: t, text: t }))),
    camera: el("input", { id: "filter-camera", placeholder: "camera name", size: 12 }),
    video_id: el("input", { id: "filter-video", type: "number", min: 1, placeholder: "video id", style: "width:90px" }),
    track_id: el("input", { id: "filter-track", type: "number", min: 0, placeholder: "track", style: "width:80px" }),
    min_confidence: el("input", { id: "filter-confidence", type: "number", min: 0, max: 1, step: 0.05, placeholder: "0-1", style: "width:80px" }),
    sort: el("select", { id: "filter-sort" }, [["-id", "newest"], ["id", "oldest"], ["-confidence", "most confident"], ["t_start", "video time"]].map(([v, t]) => el("option", { value: v, text: t }))) };
  const tbody = el("tbody");
  const pageInfo = el("span", { class: "muted" });
  let offset = 0;
  const limit = 25;
  const query = () => {
    const params = new URLSearchParams({ limit, offset, sort: filters.sort.value });
    for (const key of ["type", "camera", "video_id", "track_id", "min_confidence"]) if (filters[key].value) params.set(key, filters[key].value);
    return params;
  };
  const load = async () => {
    const page = await getJson(`/api/events?${query()}`);
    fill(tbody, ...page.items.map((e) => eventRow(e, { showSource: true })));
    if (!page.items.length) tbody.append(el("tr", {}, el("td", { colspan: 7, class: "muted", text: "No events match." })));
    pageInfo.textContent = page.total ? `${offset + 1}–${offset + page.items.length} of ${page.total}` : "";
    prev.disabled = offset === 0;
    next.disabled = offset + page.items.length >= page.total;
  };
  const prev = el("button", { class: "secondary", onclick: () => { offset = Math.max(0, offset - limit); load().catch(showError); } }, "previous");
  const next = el("button", { class: "secondary", onclick: () => { offset += limit; load().catch(showError); } }, "next");
  fill(main(),
    el("h1", { text: "Events" }),
    el("div", { class: "card" },
      el("form", { class: "row", onsubmit: (e) => { e.preventDefault(); offset = 0; load().catch(showError); } },
        el("label", {}, "type", filters.type), el("label", {}, "camera", filters.camera), el("label", {}, "video", filters.video_id),
        el("label", {}, "track", filters.track_id), el("label", {}, "min. confidence", filters.min_confidence), el("label", {}, "sort", filters.sort),
        el("button", { type: "submit", id: "filter-apply" }, "Filter"),
        el("button", { type: "button", class: "secondary", onclick: () => download(`/api/events.csv?${query()}`, "events.csv").catch(showError) }, "CSV"))),
    el("div", { class: "card" },
      el("table", { id: "events" }, el("thead", {}, el("tr", {}, ["", "type", "when / source", "track", "confidence", "evidence", ""].map((h) => el("th", { text: h })))), tbody),
      el("div", { class: "pager" }, pageInfo, prev, next)));
  await load();
}

// ---------- cameras ----------
async function viewCameras() {
  const tbody = el("tbody");
  fill(main(),
    el("h1", { text: "Cameras" }),
    isAdmin() ? cameraForm(() => refresh()) : null,
    el("div", { class: "card" },
      el("p", { class: "muted" }, "Cameras run in ", el("code", { text: "posepipe ingest" }), " (needs REDIS_URL); status is what it last reported."),
      el("table", { id: "cameras" }, el("thead", {}, el("tr", {}, ["name", "state", "fps in / analysed", "dropped", "reconnects", "url", "last error", ""].map((h) => el("th", { text: h })))), tbody)));
  const refresh = async () => {
    const cams = await getJson("/api/cameras");
    fill(tbody, ...cams.map((c) => el("tr", { "data-camera": c.name },
      el("td", {}, c.session_video_id ? el("a", { href: `#/videos/${c.session_video_id}`, text: c.name }) : c.name),
      el("td", {}, badge(c.state), c.enabled ? null : el("span", { class: "muted", text: " disabled" })),
      el("td", { class: "num", text: `${fmt(c.fps_in, 1)} / ${fmt(c.fps_analyzed, 1)}` }),
      el("td", { class: "num", text: Object.values(c.dropped).reduce((a, b) => a + b, 0) }),
      el("td", { class: "num", text: c.reconnects }),
      el("td", { class: "muted", text: c.url_masked }),
      el("td", { class: "error", text: c.last_error || "" }),
      el("td", {}, isAdmin() ? [
        el("button", { class: "secondary", onclick: async () => { await api(`/api/cameras/${encodeURIComponent(c.name)}`, { method: "PATCH", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ enabled: !c.enabled }) }); refresh(); } }, c.enabled ? "disable" : "enable"),
        " ",
        el("button", { class: "danger", onclick: async () => { if (confirm(`Remove camera ${c.name}?`)) { await api(`/api/cameras/${encodeURIComponent(c.name)}`, { method: "DELETE" }); refresh(); } } }, "remove"),
      ] : null))));
    if (!cams.length) tbody.append(el("tr", {}, el("td", { colspan: 8, class: "muted", text: "No cameras." })));
  };
  await refresh();
  every(2000, refresh);
}

function cameraForm(onAdded) {
  const name = el("input", { id: "camera-name", placeholder: "hall", size: 12, required: true });
  const url = el("input", { id: "camera-url", placeholder: "rtsp://user:password@host:554/stream", size: 40, required: true, autocomplete: "off" });
  const fps = el("input", { id: "camera-fps", type: "number", min: 0.1, max: 60, step: "any", value: 10, style: "width:80px" });
  const exercise = el("select", {}, el("option", { value: "", text: "none" }), EXERCISES.map((x) => el("option", { value: x, text: x })));
  const message = el("div", { class: "muted" });
  return el("div", { class: "card" }, el("h2", { text: "Add a camera" }),
    el("form", {
      class: "row",
      onsubmit: async (e) => {
        e.preventDefault();
        try {
          await api("/api/cameras", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ name: name.value, url: url.value, fps: Number(fps.value), exercise: exercise.value || null }) });
          message.className = "muted";
          message.textContent = `Added ${name.value}; the ingester starts it within seconds.`;
          url.value = "";
          onAdded();
        } catch (err) { message.className = "error"; message.textContent = err.message; }
      },
    }, el("label", {}, "name", name), el("label", {}, "URL (stored encrypted)", url), el("label", {}, "fps", fps), el("label", {}, "exercise", exercise), el("button", { type: "submit", id: "cameras-add" }, "Add")),
    message);
}

// ---------- live ----------
// A grid of every camera. Each tile asks for its camera's latest analysed frame (skeletons and
// track ids drawn by the server) with a long poll: the request returns as soon as a frame newer
// than the one shown exists, so the picture follows the analysis rate. Pictures are fetched
// with the token (an <img> cannot send it) and shown from blob: URLs; asking is also what tells
// the workers someone watches, so a closed page costs them nothing within seconds.
async function viewLive() {
  const grid = el("div", { class: "live-grid", id: "live-grid" });
  fill(main(),
    el("h1", { text: "Live" }),
    el("p", { class: "muted" }, "The latest analysed frame of each camera, at the analysis rate, with each person's track id, exercise and reps. A red banner shows while a fall is open."),
    grid);
  const route = state.route;
  const tiles = new Map();
  const refresh = async () => {
    const cams = await getJson("/api/cameras");
    if (route !== state.route) return;
    const names = new Set(cams.map((c) => c.name));
    for (const [name, tile] of tiles) if (!names.has(name)) { tile.stop(); tile.node.remove(); tiles.delete(name); }
    for (const c of cams) {
      if (!tiles.has(c.name)) { const tile = liveTile(c, route); tiles.set(c.name, tile); grid.append(tile.node); }
      tiles.get(c.name).setCamera(c);
    }
    const empty = grid.querySelector(".live-empty");
    if (!cams.length && !empty) grid.append(el("p", { class: "muted live-empty", text: "No cameras: add one on the Cameras page." }));
    if (cams.length && empty) empty.remove();
  };
  await refresh();
  every(5000, refresh);
}

function liveTile(initial, route) {
  const name = initial.name;
  const img = el("img", { class: "live-img", alt: `${name}: live picture` });
  const banner = el("div", { class: "live-banner", hidden: true });
  const status = el("span", { class: "badge" });
  const people = el("ul", { class: "live-people" });
  const note = el("div", { class: "muted live-note", text: "Waiting for a picture…" });
  const node = el("div", { class: "card live-tile", "data-camera": name },
    el("div", { class: "live-head" }, el("strong", { text: name }), status),
    el("div", { class: "live-frame" }, img, banner), people, note);
  const controller = new AbortController();
  state.aborts.push(controller);
  let shownUrl = null;
  const show = (response, blob) => {
    const url = URL.createObjectURL(blob);
    img.onload = () => { if (shownUrl && shownUrl !== url) URL.revokeObjectURL(shownUrl); shownUrl = url; };
    img.src = url;
    const live = JSON.parse(response.headers.get("X-Live-State"));
    img.dataset.seq = String(live.seq);
    const falls = live.tracks.filter((t) => t.fall_open);
    banner.hidden = !falls.length;
    node.classList.toggle("fall", falls.length > 0);
    banner.textContent = falls.length ? `FALL — ${falls.map((t) => `#${t.track_id}`).join(", ")} is down` : "";
    fill(people, live.tracks.map((t) => el("li", { "data-track": t.track_id },
      el("strong", { text: `#${t.track_id}` }), " ",
      t.exercise ? `${t.exercise.replace("_", " ")} · ${t.reps} rep${t.reps === 1 ? "" : "s"}` : "no exercise",
      t.fall_open ? el("span", { class: "badge fall", text: "fall" }) : null)));
    if (!live.tracks.length) people.append(el("li", { class: "muted", text: "nobody tracked" }));
    note.textContent = `frame ${live.seq} at ${fmt(live.t_s, 1)} s · ${fmt(live.age_s, 2)} s behind the camera`;
    return live.seq;
  };
  let camera = initial;
  const loop = async () => {
    let after = null;
    let session = null;
    while (route === state.route && !controller.signal.aborted) {
      if (camera && camera.session_video_id !== session) { session = camera.session_video_id; after = null; } // a new session counts frames from 0
      if (!camera || !camera.session_video_id || camera.state !== "online") {
        // Not receiving frames: nothing to ask for until the camera list shows it online.
        note.textContent = camera ? `Not streaming (${camera.state}).` : "Waiting for a picture…";
        img.removeAttribute("data-seq");
        after = null;
        await new Promise((ok) => setTimeout(ok, LIVE_RETRY_MS));
        continue;
      }
      try {
        const query = `wait=${LIVE_WAIT_S}${after === null ? "" : `&after=${after}`}`;
        const response = await api(`/api/cameras/${encodeURIComponent(name)}/live.jpg?${query}`, { signal: controller.signal });
        if (response.status === 204) continue; // no newer frame yet: ask again
        after = show(response, await response.blob());
      } catch (err) {
        if (controller.signal.aborted || route !== state.route) break;
        note.textContent = err.status === 409 ? "Not streaming." : `No picture: ${err.message}`;
        img.removeAttribute("data-seq");
        after = null;
        await new Promise((ok) => setTimeout(ok, LIVE_RETRY_MS));
      }
    }
    if (shownUrl) URL.revokeObjectURL(shownUrl);
  };
  loop();
  return {
    node,
    stop: () => controller.abort(),
    setCamera: (c) => { camera = c; status.className = `badge ${c.state}`; status.textContent = c.state; },
  };
}

window.addEventListener("hashchange", render);
window.addEventListener("DOMContentLoaded", render);
