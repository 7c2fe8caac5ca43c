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

  const notice = model.notice;
  body.classList.toggle("has-notice", Boolean(notice));
  setText("notice-primary", notice ? notice.primary : "");
  setText("notice-secondary", notice ? notice.secondary : "");
  byId("notice-secondary").hidden = !(notice && notice.secondary);

  const recent = byId("recent");
  recent.replaceChildren(...model.recent.slice(0, hallLayout.recentRows).map((call) => {
    const row = el("li");
    row.append(el("span", "number", call.number), el("span", "counter", "➜ " + counterLine(call)));
    return row;
  }));

  const grid = byId("counters");
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
  services.replaceChildren(...model.services.map((service) => {
    const row = el("li");
    const names = el("div", "svc");
    names.append(el("div", "svc-primary", service.primary));
    if (service.secondary) names.append(el("div", "svc-secondary", service.secondary));
    const count = el("div", "count");
    count.append(el("span", "total", String(service.total)));
    if (service.priority) count.append(el("span", "prio", model.labels.priority.primary + " " + service.priority));
    row.append(names, count);
    return row;
  }));
}

// ---- layout: the hall page's proportions from the hall's size ----------------------------------------------
// Sizes in vh (hundredths of the screen's height; 10.8 px at 1080p). READABLE is the smallest text a citizen
// must read from across the hall (service names and counts, counter names, ticket numbers): 3.5vh is 38 px
// at 1080p; on a 55" TV its capitals are 1.7 cm tall, 6 minutes of arc at 10 m, where normal sight reads 5.
// The second language's line may be smaller (SECOND). The footer (counters, waiting counts) grows until its
// content fits at these sizes; the middle (newest call, recent calls) takes what is left and scales down,
// showing fewer recent calls rather than smaller ones. Heights are sums of font size × line-height (the CSS
// sets every line-height), so nothing here depends on the font; widths only on the measured boxes.
const READABLE = 3.5;
const SECOND = 2.4;
const FOOTER_MIN = 36;
const FOOTER_MAX = 60; // the middle keeps 28vh: a newest number ~10vh (110 px) tall and three recent calls
// Up to four services: two lines each, the name above its second language and the count above the priority
// lane's count. More: one line each, all inline.
const ROOMY_SERVICES = 4;
const SERVICE_ROWS = {
  roomy: { svc: 3.8, svc2: 2.6, count: 4.4, lines: (f) => Math.max(f.svc * 1.3, f.count * 1.2) + f.svc2 * 1.3 },
  dense: { svc: READABLE, svc2: SECOND, count: 3.8, lines: (f) => Math.max(f.svc * 1.3, f.count * 1.2) },
};
const SERVICE_ROW_EXTRA = 0.4 + 0.2; // padding and border
// A tile: the counter's name (READABLE) above its number, numMin to numMax tall; padding 0.4vh, gaps 0.8vh
// between rows and 0.8vw between columns (display.css).
const TILE = { extra: 0.8, gap: 0.8, nameLine: 1.3, numLine: 1.15, numMin: 4.2, numMax: 8 };
const TILE_NUMBER_EM = 4.5 * 0.72; // the width of a typical number ("A015", "UB001") in ems of the bold font
const TILE_MIN_COLUMNS = 3;
const RECENT = { line: 1.22, border: 0.2, max: 6.4, min: 4.2 };
const SLACK = 0.5; // boxes are rounded to whole pixels: a little room so that the sums never come out short
// The middle never has less than this: the newest number ~10vh (110 px) tall and three recent calls. A long
// notice makes the header taller; then the footer gives up room too, and its text shrinks a little.
const MIDDLE_MIN = 28;
// The notice: the first language from `max` down to READABLE, the second from `secondMax` down to SECOND, each
// the largest size at which it takes at most `lines` lines. Longer text wraps further at the smallest size:
// it is shown whole, never cut.
const NOTICE = { max: 5.6, line: 1.25, secondMax: 3.4, secondLine: 1.3, lines: 2, step: 0.2 };

const hallLayout = { key: null, recentRows: 10 };

function vhOf(px) { return px / (window.innerHeight / 100); }

// The columns and the largest tile number for `rows` rows of `count` tiles in a grid `width` vh wide and
// `height` vh tall; `byWidth`: the largest number the width allows. One row has at least TILE_MIN_COLUMNS
// columns (a lone counter's tile is not the width of the screen).
function tileSizes(count, rows, width, height, gapX, gapY) {
  const cols = rows === 1 ? Math.max(TILE_MIN_COLUMNS, count) : Math.ceil(count / rows);
  const tileWidth = (width - (cols - 1) * gapX) / cols;
  const byWidth = (tileWidth - 1.25 * gapX) / TILE_NUMBER_EM; // the tile's side padding is 0.5vw, gapX 0.8vw
  const byHeight = ((height - (rows - 1) * gapY) / rows - TILE.extra - READABLE * TILE.nameLine) / TILE.numLine;
  return { cols, num: Math.min(byHeight, byWidth, TILE.numMax), byWidth };
}

function tileHeight(num) { return READABLE * TILE.nameLine + num * TILE.numLine + TILE.extra; }

function fitLines(node, name, max, min, line) {
  for (let size = max; ; size = Math.max(min, size - NOTICE.step)) {
    body.style.setProperty(name, size.toFixed(2) + "vh");
    if (size <= min || vhOf(node.getBoundingClientRect().height) <= NOTICE.lines * size * line + 0.1) return;
  }
}

// Sizes the notice (if any) and returns the header's height, in vh.
function layoutNotice() {
  if (model.notice) {
    fitLines(byId("notice-primary"), "--notice", NOTICE.max, READABLE, NOTICE.line);
    if (model.notice.secondary) {
      fitLines(byId("notice-secondary"), "--notice-secondary", NOTICE.secondMax, SECOND, NOTICE.secondLine);
    }
  }
  return vhOf(document.querySelector(".top").getBoundingClientRect().height);
}

function layoutHall() {
  const grid = byId("counters");
  const services = byId("services");
  const recent = byId("recent");
  const counterCount = model.counters.length;
  const serviceCount = model.services.length;
  const notice = model.notice ? [model.notice.primary, model.notice.secondary] : [];
  const key = JSON.stringify([window.innerWidth, window.innerHeight, counterCount, serviceCount, model.recent.length,
    ...notice]);
  if (key === hallLayout.key) return false;
  hallLayout.key = key;
  const top = layoutNotice();

  // The boxes around the lists (headings, padding), measured: each list fills what its section leaves.
  const height = (node) => node.getBoundingClientRect().height;
  const chrome = (list) => vhOf(height(list.parentElement) - height(list));
  const gridChrome = chrome(grid);
  const servicesChrome = chrome(services);
  const recentChrome = chrome(recent);
  const gridWidth = vhOf(grid.getBoundingClientRect().width);
  const gapX = vhOf(window.innerWidth * 0.008);
  const gapY = TILE.gap;

  const mode = serviceCount <= ROOMY_SERVICES ? "roomy" : "dense";
  const row = SERVICE_ROWS[mode];
  const rowHeight = row.lines(row) + SERVICE_ROW_EXTRA;
  const servicesNeed = servicesChrome + serviceCount * rowHeight + SLACK;

  // Counters: the fewest rows whose tiles are wide enough for numbers at TILE.numMin.
  let countersNeed = gridChrome + SLACK;
  for (let rows = 1; rows <= counterCount; rows += 1) {
    const { byWidth, cols } = tileSizes(counterCount, rows, gridWidth, Infinity, gapX, gapY);
    const need = rows * tileHeight(Math.min(TILE.numMin, byWidth)) + (rows - 1) * gapY;
    if (byWidth >= TILE.numMin || cols <= TILE_MIN_COLUMNS) {
      countersNeed += need;
      break;
    }
  }
  const footer = Math.min(FOOTER_MAX, 100 - top - MIDDLE_MIN, Math.max(FOOTER_MIN, servicesNeed, countersNeed));
  const middle = 100 - top - footer;
  const set = (node, name, value) => node.style.setProperty(name, value.toFixed(2) + "vh");
  set(body, "--top-h", top);
  set(body, "--footer-h", footer);

  // Waiting counts: smaller only in a hall larger than this page is designed for, or under a long notice
  // (never larger: long names would lose their ends). The rows' padding and border keep their size.
  const perRow = serviceCount ? (footer - servicesChrome - SLACK) / serviceCount : rowHeight;
  const scale = Math.min(1, (perRow - SERVICE_ROW_EXTRA) / row.lines(row));
  services.classList.toggle("dense", mode === "dense");
  set(services, "--svc", row.svc * scale);
  set(services, "--svc2", row.svc2 * scale);
  set(services, "--count", row.count * scale);

  // Counters: the arrangement with the largest numbers in the footer's height; once numbers reach numMin,
  // another row only for numbers at least 10 % larger (four counters in a row, not three and one below).
  let tiles = { cols: TILE_MIN_COLUMNS, num: TILE.numMax };
  if (counterCount > 0) {
    let best = null;
    for (let rows = 1; rows <= counterCount; rows += 1) {
      if ((rows - 1) * Math.ceil(counterCount / rows) >= counterCount) break; // a row would stay empty
      const sizes = tileSizes(counterCount, rows, gridWidth, footer - gridChrome - SLACK, gapX, gapY);
      const better = best === null || sizes.num > (best.num < TILE.numMin ? best.num : best.num * 1.1);
      if (better) best = sizes;
    }
    tiles = best;
  }
  grid.style.setProperty("--cols", String(tiles.cols));
  set(grid, "--num", tiles.num);
  set(grid, "--name", READABLE);

  // The newest call: label, number, counter, counter in the second language. All but the number have a small
  // hall's sizes (its middle is 52vh), scaled down with the middle to their floors; the number takes the rest.
  const shrink = Math.min(1, middle / 52);
  const label = Math.max(READABLE, 4.8 * shrink);
  const counter = Math.max(4.6, 8 * shrink);
  const second = Math.max(SECOND, 3.4 * shrink);
  const number = Math.min(26, (middle - 2 - SLACK - label * 1.3 - counter * 1.25 - second * 1.25) / 1.2);
  set(body, "--newest-label", label);
  set(body, "--newest-counter", counter);
  set(body, "--newest-secondary", second);
  set(body, "--newest-number", number);

  // Recent calls: as many as fit at RECENT.min or larger, up to the configured count.
  const room = middle - recentChrome - SLACK;
  let rows = Math.max(1, model.recent.length);
  let size = (room / rows - RECENT.border) / RECENT.line;
  if (size < RECENT.min) {
    rows = Math.max(1, Math.floor(room / (RECENT.min * RECENT.line + RECENT.border)));
    size = (room / rows - RECENT.border) / RECENT.line;
  }
  hallLayout.recentRows = rows;
  set(body, "--recent", Math.min(RECENT.max, size));
  return true;
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

// Text that must stay whole shrinks until it fits its box: numbers (UB1234 on a narrow tile) down to 55 %.
// A counter's name on its tile shrinks by up to 15 % if that makes it whole; a longer one keeps its size and
// ends in an ellipsis. Text width is proportional to the font size, so one measurement gives the size;
// passes that read every box, then write every size, keep this to a few layouts however many tiles there are.
const FIT = {
  hall: [["#newest-number", 0.55], [".newest-counter", 0.55], [".tile .number", 0.55], [".tile .name", 0.85, "…"]],
  counter: [["#one-number", 0.55], ["#one-name", 0.55]],
};

function fitAll() {
  const items = [];
  for (const [selector, least, ellipsis] of FIT[VIEW]) {
    for (const node of document.querySelectorAll(selector)) {
      node.style.fontSize = "";
      items.push({ node, least, ellipsis: Boolean(ellipsis), base: 0, size: 0 });
    }
  }
  for (const item of items) item.base = item.size = parseFloat(getComputedStyle(item.node).fontSize);
  for (let pass = 0; pass < 3; pass += 1) {
    const resized = [];
    for (const item of items) {
      const { node } = item;
      if (node.scrollWidth <= node.clientWidth + 1 || item.size <= item.base * item.least) continue;
      const size = item.size * Math.min(0.97, (node.clientWidth - 1) / node.scrollWidth);
      if (item.ellipsis && size < item.base * item.least) continue;
      resized.push([item, Math.max(item.base * item.least, size)]);
    }
    if (!resized.length) break;
    for (const [item, size] of resized) {
      item.size = size;
      item.node.style.fontSize = size + "px";
    }
  }
  if (VIEW !== "hall") return;
  // A service's second-language name squeezed behind a long first one ("L…"): rather none than a stub.
  const squeezed = [...document.querySelectorAll("#services.dense .svc-secondary")]
    .filter((node) => node.clientWidth < node.scrollWidth / 2);
  for (const node of squeezed) node.hidden = true;
}

function render(next) {
  model = next;
  renderLabels(model.labels);
  if (VIEW === "hall") {
    renderHall();
    // A new shape (first screen, another number of counters or services): size everything, then draw again
    // with the number of recent calls that fits.
    if (layoutHall()) renderHall();
  } else {
    renderCounter();
  }
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
    // A clip that stalled and starts late must not talk over the next announcement.
    audio.pause();
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

window.addEventListener("resize", () => {
  hallLayout.key = null;
  if (model) render(model);
});
renderBanner();
connect();
setInterval(renderClock, 1000);
