// hallq hall display: renders the screen model pushed by the display service over Server-Sent Events.
// Events: "screen" (the whole model, also sent first on every (re)connect), "call" (flash it), "announce"
// (play this WAV; announcements play one after another, never over each other).
// EventSource reconnects by itself when the display service restarts; if the browser gives up (the
// service answered with an error), we open a new one after a short pause.
// window.hallq exposes what was rendered and played, for the test suite and the latency benchmark.
"use strict";

const body = document.body;
const VIEW = body.dataset.view; // "hall" or "counter"
const COUNTER_ID = VIEW === "counter" ? decodeURIComponent(location.pathname.split("/").filter(Boolean)[1] || "") : null;
const params = new URLSearchParams(location.search);
const AUDIO = params.has("audio") ? params.get("audio") !== "0" : VIEW === "hall";

const hallq = (window.hallq = { screens: 0, seq: 0, rendered: {}, flashed: [], played: [], connected: false });
let model = null;
let flashTimer = null;

function now() { return performance.timeOrigin + performance.now(); }
function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}
function byId(id) { return document.getElementById(id); }
function setText(id, text) { const node = byId(id); if (node) node.textContent = text == null ? "" : text; }

// ---- rendering ---------------------------------------------------------------------------------------------

function renderLabels(labels) {
  for (const node of document.querySelectorAll("[data-label]")) {
    const label = labels[node.dataset.label];
    if (!label) continue;
    node.replaceChildren(document.createTextNode(label.primary));
    if (label.secondary) node.appendChild(el("span", "secondary", label.secondary));
  }
}

function renderBanner() {
  const banner = byId("banner");
  const offline = !hallq.connected || (model && !model.connected);
  body.classList.toggle("offline", Boolean(offline && model));
  body.classList.toggle("waiting-board", Boolean(!model || (!model.ready && !offline)));
  if (!model) { banner.textContent = "Đang kết nối… · Connecting…"; return; }
  const label = offline ? model.labels.offline : model.labels.waiting_board;
  banner.textContent = label.primary + (label.secondary ? " · " + label.secondary : "");
}

function counterLine(call) {
  return call.counter_name || (model.labels.counter.primary + " " + call.counter);
}

function renderHall() {
  setText("hall-primary", model.hall.primary);
  setText("hall-secondary", model.hall.secondary);
  const newest = model.newest;
  setText("newest-number", newest ? newest.number : "—");
  setText("newest-counter-name", newest ? counterLine(newest) : "");
  const secondary = model.labels.counter.secondary;
  setText("newest-counter-secondary", newest && secondary ? secondary + " " + newest.counter : "");
  byId("newest").classList.toggle("recall", Boolean(newest && newest.recall));

  const recent = byId("recent");
  recent.replaceChildren(...model.recent.map((call) => {
    const row = el("li");
    row.append(el("span", "number", call.number), el("span", "counter", "➜ " + counterLine(call)));
    return row;
  }));

  const grid = byId("counters");
  const count = model.counters.length;
  const rows = Math.min(4, Math.max(1, Math.ceil(count / 7)));
  grid.style.setProperty("--cols", String(Math.max(3, Math.ceil(count / rows))));
  grid.className = "counter-grid rows-" + rows;
  grid.replaceChildren(...model.counters.map((counter) => {
    const tile = el("div", "tile " + counter.status);
    tile.dataset.counter = counter.counter;
    tile.append(el("div", "name", counter.name));
    let shown = counter.number || "—";
    if (counter.status !== "open") shown = model.labels[counter.status].primary;
    tile.append(el("div", "number", shown));
    return tile;
  }));

  const services = byId("services");
  services.classList.toggle("dense", model.services.length > 4);
  services.replaceChildren(...model.services.map((service) => {
    const row = el("li");
    const names = el("div", "svc");
    names.append(el("div", "svc-primary", service.primary));
    if (service.secondary) names.append(el("div", "svc-secondary", service.secondary));
    const count = el("div", "count", String(service.total));
    if (service.priority) count.append(el("span", "prio", model.labels.priority.primary + " " + service.priority));
    row.append(names, count);
    return row;
  }));
}

function renderCounter() {
  const counter = model.counters.find((c) => c.counter === COUNTER_ID);
  setText("one-name", counter ? counter.name : model.labels.counter.primary + " " + COUNTER_ID);
  setText("one-number", counter && counter.number && counter.status === "open" ? counter.number : "—");
  let status = "";
  if (counter && counter.status !== "open") {
    const label = model.labels[counter.status];
    status = label.primary + (label.secondary ? " · " + label.secondary : "");
  }
  setText("one-status", status);
}

// Long numbers (UB1005) and narrow tiles: shrink the text until it fits its box, never below 55 %.
function fit(node) {
  node.style.fontSize = "";
  const base = parseFloat(getComputedStyle(node).fontSize);
  let size = base;
  while (node.scrollWidth > node.clientWidth + 1 && size > base * 0.55) {
    size *= 0.93;
    node.style.fontSize = size + "px";
  }
}

function fitAll() {
  const selectors = VIEW === "hall"
    ? "#newest-number, .newest-counter, .tile .number"
    : "#one-number, #one-name";
  for (const node of document.querySelectorAll(selectors)) fit(node);
}

function render(next) {
  model = next;
  renderLabels(model.labels);
  if (VIEW === "hall") renderHall(); else renderCounter();
  fitAll();
  renderBanner();
  renderClock();
  hallq.screens += 1;
  const seq = model.newest ? model.newest.seq : 0;
  if (seq !== hallq.seq) {
    hallq.seq = seq;
    // The frame that shows it: the time the benchmark compares with the moment the counter pressed "next".
    requestAnimationFrame(() => { hallq.rendered[seq] = now(); });
  }
}

function restartAnimation(node, cls, seconds) {
  node.classList.remove(cls);
  void node.offsetWidth; // restart the CSS animation even if the class was already there (a recall)
  node.classList.add(cls);
  return setTimeout(() => node.classList.remove(cls), seconds * 1000);
}

function flash(call) {
  const target = VIEW === "hall" ? byId("newest") : (call.counter === COUNTER_ID ? byId("one-counter") : null);
  if (!target || !call.flash_s) return;
  hallq.flashed.push(call.seq);
  clearTimeout(flashTimer);
  flashTimer = restartAnimation(target, "flash", call.flash_s);
  if (VIEW === "hall") {
    const tile = document.querySelector(`.tile[data-counter="${CSS.escape(call.counter)}"]`);
    if (tile) restartAnimation(tile, "flash", call.flash_s);
  }
}

function renderClock() {
  if (!model) return;
  const at = new Date();
  const zone = model.time_zone;
  setText("clock-time", at.toLocaleTimeString("vi-VN", { timeZone: zone, hour: "2-digit", minute: "2-digit" }));
  const date = at.toLocaleDateString("vi-VN", { timeZone: zone, weekday: "long", day: "numeric", month: "numeric", year: "numeric" });
  setText("clock-date", date.charAt(0).toUpperCase() + date.slice(1));
}

// ---- announcements: one at a time, in order --------------------------------------------------------------

const audioQueue = [];
let playing = false;

function announce(item) {
  if (!AUDIO) return;
  audioQueue.push(item);
  if (!playing) playNext();
}

function playNext() {
  const item = audioQueue.shift();
  if (!item) { playing = false; return; }
  playing = true;
  const record = { seq: item.seq, number: item.number, start: now(), end: null, error: null };
  hallq.played.push(record);
  const audio = new Audio(item.url);
  let done = false;
  const finish = (error) => {
    if (done) return;
    done = true;
    record.end = now();
    record.error = error;
    playNext();
  };
  audio.addEventListener("ended", () => finish(null));
  audio.addEventListener("error", () => finish("error"));
  // If playback is refused (a browser without the autoplay flag), wait the announcement's length anyway
  // so that the next one still starts after it would have ended.
  audio.play().catch((err) => setTimeout(() => finish(String(err && err.name)), item.duration_s * 1000));
  // A stalled stream must not block the queue forever.
  setTimeout(() => finish("timeout"), (item.duration_s + 5) * 1000);
}

// ---- the event stream ----------------------------------------------------------------------------------------

let source = null;
function connect() {
  source = new EventSource("/events");
  source.addEventListener("open", () => { hallq.connected = true; renderBanner(); });
  source.addEventListener("screen", (event) => { hallq.connected = true; render(JSON.parse(event.data)); });
  source.addEventListener("call", (event) => flash(JSON.parse(event.data)));
  source.addEventListener("announce", (event) => announce(JSON.parse(event.data)));
  source.addEventListener("error", () => {
    hallq.connected = false;
    renderBanner();
    if (source.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
  });
}

renderBanner();
connect();
setInterval(renderClock, 1000);
