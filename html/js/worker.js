// The data engine, run as a module Web Worker so the page never blocks.
// Where it sits: main.js posts requests; this worker streams /events (fetch + ReadableStream),
// splits its bytes into lines (logparse.js), folds them into threats (aggregate.js), and answers
// view requests (filter with query.js, sort, chart aggregates, row windows, drawer details,
// exports). Live mode (SSE on /live, or Range polling of /events) appends to the same aggregate.
// With ClickHouse as the server's event store main.js asks for the threat summary instead
// (`summary`: /threats JSON, Aggregator.addSummary) and a threat's lines come from /threat when
// its drawer opens; live mode is off for a summary.

import { Aggregator, timeGrid } from './aggregate.js';
import { Severity } from './classify.js';
import { ByteLineParser, LineParser } from './logparse.js';
import { memberLists, narrowEvents, sharesTrail } from './members.js';
import { compileQuery, memberTest, parseQuery, threatPlace } from './query.js';
import { exportView } from './export.js';

const state = {
  agg: new Aggregator(),
  parser: new ByteLineParser(),
  loadId: 0,
  date: '',
  bytes: 0,          // bytes of the current day file consumed (complete lines) for live resume
  loading: false,
  view: new Int32Array(0),
  narrow: null,      // threat id -> {count, hist}: a view's events narrowed to the members a trail: term names
  viewTotal: 0,
  local: { tags: {}, notes: {}, triage: {}, hidden: {}, whitelist: [] },
  live: null,
  summary: false,    // the load is a server summary (/threats)
  liveTimer: 0,
  pending: '',
  base: '',
  newMark: 0,
  order: new Int32Array(0),
  orderKey: '',
  seenHigh: 0,
  views: new Map(),  // the last VIEW_CACHE answers by viewKey(): going back to a search (or clearing it) is a lookup
  version: 0,        // bumped when the aggregate or the local state changes without new events
  waiter: null,      // a load waiting for the page's first view, then its rows: {op, resolve} (requested)
};

const VIEW_CACHE = 8;
const BYTES_PER_EVENT = 110;    // a typical log line: sizes the event columns from Content-Length
const SLICE = 1 << 18;          // bytes parsed between two looks at the clock (about 2,000 lines)
const FIRST_VIEW_WAIT = 100;    // ms the load waits after its first progress for the page's first view

/** A promise resolved in a new task: requests that came in meanwhile (a view, rows) run first. */
function nextTask() { return new Promise((resolve) => { setTimeout(resolve, 0); }); }

/** Resolves once a request of `op` has been answered, or after `ms`. */
function requested(op, ms) {
  return new Promise((resolve) => {
    state.waiter = { op, resolve };
    setTimeout(() => { if (state.waiter && state.waiter.resolve === resolve) state.waiter = null; resolve(); }, ms);
  });
}

/** The load's first view and then its rows (asked once the page has the view), each up to `ms`. */
async function firstRowsServed(ms) {
  await requested('view', ms);
  if (state.view.length) await requested('rows', ms);
}

function answered(op) {
  if (state.waiter && state.waiter.op === op) { const { resolve } = state.waiter; state.waiter = null; resolve(); }
}

const post = (msg) => self.postMessage(msg);

function progress(extra) {
  const a = state.agg;
  post({ op: 'progress', loadId: state.loadId, bytes: state.bytes, lines: state.parser.lines,
    bad: state.parser.bad, events: a.events, threats: a.threats.length, ...extra });
}

/** The server's severity pattern as a rule; one the browser cannot compile is reported and rates all medium. */
function severityRule(pattern) {
  try {
    return new Severity(pattern || '');
  } catch (err) {
    post({ op: 'error', error: `REMOTE_SEVERITY_REGEX is not usable in the browser (${err.message}): every threat is rated medium` });
    return new Severity('');
  }
}

async function load(msg) {
  stopLive();
  const loadId = ++state.loadId;
  const [from, to] = String(msg.date || '').split('_');
  state.agg = new Aggregator(/^\d{4}-\d{2}-\d{2}$/.test(from) ? timeGrid(from, to || from) : timeGrid(), severityRule(msg.severity));
  state.view = new Int32Array(0);   // indices into the old aggregate: never read against the new one
  state.narrow = null;
  state.parser = new ByteLineParser();
  state.bytes = 0;
  state.date = msg.date;
  state.base = msg.base;
  state.loading = true;
  state.newMark = 0;
  state.summary = !!msg.summary;
  const started = performance.now();
  let total = 0;
  if (state.summary) { loadSummary(msg, loadId, started); return; }
  try {
    const resp = await fetch(msg.url, { credentials: 'same-origin', cache: 'no-store' });
    if (resp.status === 401 || resp.status === 403) throw new Error('unauthorized');
    if (!resp.ok && resp.status !== 204) throw new Error(`HTTP ${resp.status}`);
    total = +(resp.headers.get('Content-Length') || 0);
    state.agg.reserve(Math.ceil(total / BYTES_PER_EVENT));
    let lastPost = 0;
    if (resp.body && resp.status !== 204) {
      const reader = resp.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (loadId !== state.loadId) { reader.cancel(); return; }
        if (done) break;
        // a body read while the worker was busy comes as one big chunk: parsed in slices, so a
        // progress (and the first view) never waits for the whole of it
        for (let off = 0; off < value.length; off += SLICE) {
          const part = value.length <= SLICE ? value : value.subarray(off, off + SLICE);
          state.parser.push(part, state.agg);
          state.bytes += part.length;
          const now = performance.now();
          if (now - lastPost > 150) {
            // a read with data at hand resolves at once, so a fast body never lets the page's
            // requests in by itself: after each progress they get a turn (the first view waits
            // for its request, and then its rows for theirs, up to FIRST_VIEW_WAIT ms each, so
            // the first rows come at once)
            const first = lastPost === 0;
            lastPost = now;
            progress({ total, done: false });
            await (first ? firstRowsServed(FIRST_VIEW_WAIT) : nextTask());
            if (loadId !== state.loadId) { reader.cancel(); return; }
          }
        }
      }
    }
    state.parser.end(state.agg);
    state.loading = false;
    state.newMark = state.agg.threats.length;
    progress({ total, done: true, ms: performance.now() - started });
  } catch (err) {
    state.loading = false;
    state.newMark = state.agg.threats.length;
    if (loadId === state.loadId) progress({ total, done: true, error: String(err.message || err) });
  }
}

async function loadSummary(msg, loadId, started) {
  try {
    const resp = await fetch(msg.url, { credentials: 'same-origin', cache: 'no-store' });
    if (resp.status === 401 || resp.status === 403) throw new Error('unauthorized');
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    const body = await resp.json();
    if (loadId !== state.loadId) return;
    for (const entry of body.threats) state.agg.addSummary(entry);
    state.loading = false;
    state.newMark = state.agg.threats.length;
    progress({ total: 0, done: true, ms: performance.now() - started, summary: true, truncated: !!body.truncated });
  } catch (err) {
    state.loading = false;
    state.newMark = state.agg.threats.length;
    if (loadId === state.loadId) progress({ total: 0, done: true, error: String(err.message || err) });
  }
}

/** A summary threat's lines from /threat, parsed (at most what the server sends). */
async function summaryRecords(t) {
  const q = new URLSearchParams({ date: state.date, ...t.summary });
  const resp = await fetch(new URL(`threat?${q}`, state.base).href, { credentials: 'same-origin', cache: 'no-store' });
  if (!resp.ok) throw new Error(`threat: HTTP ${resp.status}`);
  const records = [];
  const parser = new LineParser();
  parser.push(await resp.text(), (rec) => records.push(rec));
  parser.end((rec) => records.push(rec));
  return records;
}

// --- live mode ------------------------------------------------------------------------------------

function stopLive() {
  if (state.live) { state.live.close(); state.live = null; }
  clearInterval(state.liveTimer);
  state.liveTimer = 0;
}

function mergePending() {
  if (!state.pending) return;
  const before = state.agg.threats.length;
  state.parser.pushText(state.pending, state.agg);
  state.pending = '';
  const fresh = [];
  for (let i = before; i < state.agg.threats.length; i++) {
    const t = state.agg.threats[i];
    if (t.alias < 0 && t.sev === 2) fresh.push({ uid: t.uid, trail: t.trail, info: t.info, src: text(t.src) || '' });
  }
  let newThreats = 0;     // threats since the load or the last `seen`, as the grid lists them (not merged ones)
  for (let i = state.newMark; i < state.agg.threats.length; i++) if (state.agg.threats[i].alias < 0) newThreats++;
  post({ op: 'live', events: state.agg.events, threats: state.agg.threats.length, newThreats, high: fresh });
}

function startLive(msg) {
  stopLive();
  if (state.summary) { post({ op: 'livestatus', status: 'off (threat summary from the event store)' }); return; }
  const mode = msg.mode || 'sse';
  if (mode === 'sse' && typeof EventSource !== 'undefined') {
    const es = new EventSource(new URL(`live?date=${encodeURIComponent(state.date)}&pos=${state.bytes}`, state.base).href);
    state.live = es;
    es.onmessage = (ev) => {
      state.pending += ev.data + '\n';
      if (ev.lastEventId) state.bytes = +ev.lastEventId || state.bytes;
    };
    es.onopen = () => post({ op: 'livestatus', status: 'sse' });
    es.onerror = () => {
      // 204 (refused or restricted) or a dropped connection: fall back to polling.
      if (es.readyState === EventSource.CLOSED) { es.close(); state.live = null; startPolling(); }
      else post({ op: 'livestatus', status: 'reconnecting' });
    };
    state.liveTimer = setInterval(mergePending, 100);
  } else {
    startPolling();
  }
}

function startPolling() {
  clearInterval(state.liveTimer);
  post({ op: 'livestatus', status: 'polling' });
  const poll = async () => {
    try {
      const resp = await fetch(new URL(`events?date=${encodeURIComponent(state.date)}`, state.base).href, {
        headers: { Range: `bytes=${state.bytes}-2147483647` }, cache: 'no-store', credentials: 'same-origin' });
      if (resp.status === 206 || (resp.status === 200 && state.bytes === 0)) {
        const buf = new Uint8Array(await resp.arrayBuffer());
        const lastNl = buf.lastIndexOf(10);
        if (lastNl >= 0) {
          state.bytes += lastNl + 1;
          state.pending += new TextDecoder().decode(buf.subarray(0, lastNl + 1));
          mergePending();
        }
      }
    } catch (err) {
      post({ op: 'livestatus', status: 'error: ' + String(err.message || err) });
    }
  };
  state.liveTimer = setInterval(poll, 5000);
  poll();
}

// --- views ----------------------------------------------------------------------------------------

function first(set) { for (const v of set) return v; return 0; }
/** A threat's first source (string id), kept on the threat once known: sets only grow. */
function firstSrc(t) { if (!t.src0) t.src0 = first(t.src); return t.src0; }

/** The `n` entries of `map` with the largest values, largest first (one pass, no full sort). */
function top(map, n) {
  const out = [];
  for (const entry of map) {
    if (out.length === n && entry[1] <= out[n - 1][1]) continue;
    let k = out.length === n ? n - 1 : out.length;
    while (k > 0 && out[k - 1][1] < entry[1]) { out[k] = out[k - 1]; k--; }
    out[k] = entry;
  }
  return out;
}
function cmpText(a, b) { return a < b ? -1 : a > b ? 1 : 0; }
const text = (set) => state.agg.strings[first(set)];

const SORTS = {
  sev: (a, b) => a.sev - b.sev || a.count - b.count,
  count: (a, b) => a.count - b.count,
  uid: (a, b) => cmpText(a.uid, b.uid),
  first: (a, b) => a.first - b.first,
  last: (a, b) => a.last - b.last,
  src: (a, b) => cmpText(state.agg.strings[firstSrc(a)], state.agg.strings[firstSrc(b)]),
  dst: (a, b) => cmpText(text(a.dst), text(b.dst)),
  port: (a, b) => (+state.agg.portText(first(a.dport)) || 0) - (+state.agg.portText(first(b.dport)) || 0),
  proto: (a, b) => cmpText(text(a.proto), text(b.proto)),
  sensor: (a, b) => cmpText(text(a.sensor), text(b.sensor)),
  type: (a, b) => cmpText(a.type, b.type),
  trail: (a, b) => cmpText(a.trail, b.trail),
  info: (a, b) => cmpText(a.info, b.info),
};

/** All threat indices in sort order; cached until the data or the sort changes (filters reuse it). */
function sortedOrder(sort, dir) {
  const a = state.agg;
  const key = `${state.loadId}|${sort}|${dir}|${a.events}|${a.threats.length}`;
  if (state.orderKey === key) return state.order;
  const threats = a.threats;
  const cmp = SORTS[sort] || SORTS.sev;
  const sign = dir === 'asc' ? 1 : -1;
  const ids = [];
  for (let i = 0; i < threats.length; i++) if (threats[i].alias < 0) ids.push(i);
  ids.sort((x, y) => sign * cmp(threats[x], threats[y]) || threats[y].count - threats[x].count || x - y);
  state.order = Int32Array.from(ids);
  state.orderKey = key;
  return state.order;
}

/** What a view's answer depends on: the request, and the data it was computed from. */
function viewKey(msg) {
  const a = state.agg;
  return [msg.query || '', msg.sev ?? '', msg.sort, msg.dir, !!msg.showHidden, !!msg.onlyNew, state.newMark, state.loadId,
    a.events, a.threats.length, state.version, state.loading].join('\u0001');
}

/** The view's answer, from the cache when nothing it depends on changed. */
function view(msg) {
  const started = performance.now();
  const key = viewKey(msg);
  let hit = state.views.get(key);
  if (hit) state.views.delete(key);
  else {
    hit = computeView(msg);
    if (hit.error) return { ...hit, reqId: msg.reqId };
  }
  state.views.set(key, hit);
  if (state.views.size > VIEW_CACHE) state.views.delete(state.views.keys().next().value);
  state.view = hit.ids;
  state.narrow = hit.narrow;
  return { op: 'view', reqId: msg.reqId, count: hit.ids.length, stats: hit.stats, ms: performance.now() - started,
    loading: state.loading };
}

function computeView(msg) {
  let pred, ast;
  try {
    ast = parseQuery(msg.query || '');
    pred = compileQuery(ast, state.agg);
  } catch (err) {
    return { op: 'view', error: String(err.message || err), pos: err.pos ?? -1 };
  }
  const local = state.local;
  const hidden = local.hidden || {};
  const hiding = !msg.showHidden && Object.keys(hidden).length > 0;   // else no lookup per threat
  const wl = new Set(local.whitelist || []);
  const sevWanted = msg.sev == null || msg.sev === '' ? -1 : +msg.sev;
  const threats = state.agg.threats;
  const order = sortedOrder(msg.sort, msg.dir);
  const ids = [];
  const sevAll = [0, 0, 0];
  let hiddenN = 0, whitelistedN = 0;
  for (let k = 0; k < order.length; k++) {
    const i = order[k];
    const t = threats[i];
    if (t.alias >= 0) continue;
    if (hiding && hidden[t.uid]) { hiddenN++; continue; }
    if (wl.size && (wl.has(t.trail) || wl.has(state.agg.strings[firstSrc(t)]))) { whitelistedN++; continue; }
    if (msg.onlyNew && t.id < state.newMark) continue;
    if (!pred(t, local)) continue;
    sevAll[t.sev]++;
    if (sevWanted >= 0 && t.sev !== sevWanted) continue;
    ids.push(i);
  }
  let view = Int32Array.from(ids);
  const members = memberTest(ast, state.agg);
  const narrow = members ? narrowEvents(state.agg, view, members) : null;
  if (narrow && narrow.size && (msg.sort === 'count' || msg.sort === 'sev' || !SORTS[msg.sort])) view = byNarrowedCount(view, narrow, msg);
  const stats = summarize(view, narrow, members);
  stats.sevAll = sevAll;
  stats.allThreats = order.length;   // threats a view can show: grouped members are not threats of their own
  stats.hidden = hiddenN;
  stats.whitelisted = whitelistedN;
  return { ids: view, stats, narrow };
}

/** A view sorted by events (or severity, then events) again with the narrowed counts of its
 *  grouped threats: the events the search names, as the grid's Events column shows them. The
 *  sort is stable, so ties keep the view's own order. */
function byNarrowedCount(view, narrow, msg) {
  const threats = state.agg.threats;
  const sign = msg.dir === 'asc' ? 1 : -1;
  const count = (t) => { const part = narrow.get(t.id); return part ? part.count : t.count; };
  const bySev = msg.sort !== 'count';
  const ids = Array.from(view).sort((x, y) => {
    const a = threats[x], b = threats[y];
    return sign * ((bySev ? a.sev - b.sev : 0) || count(a) - count(b));
  });
  return Int32Array.from(ids);
}

/** The summary of a view; `narrow` (members.js narrowEvents): grouped threats count only the events
 *  of the members a `trail:` search names (`members`, the test over trail ids). The trails counted
 *  and ranked are every member of a grouped threat, as `trail:` searches them. */
function summarize(view, narrow = null, members = null) {
  const threats = state.agg.threats;
  const byType = new Map();
  const bySrc = new Map();
  const byTrail = new Map();
  const sev = [0, 0, 0];
  const sevEvents = [0, 0, 0];
  const bins = state.agg.grid.bins;
  const total = new Array(bins).fill(0);
  let events = 0;
  for (let k = 0; k < view.length; k++) {
    const t = threats[view[k]];
    const part = narrow && narrow.get(t.id);     // a grouped threat: only its members' events the search names
    const count = part ? part.count : t.count;
    events += count;
    sev[t.sev]++;
    sevEvents[t.sev] += count;
    let hist = byType.get(t.type);
    if (!hist) { hist = new Array(bins).fill(0); byType.set(t.type, hist); }
    const th = part ? part.hist : t.hist;
    for (let h = 0; h < bins; h++) { const v = th[h]; if (v) { hist[h] += v; total[h] += v; } }
    const src = firstSrc(t);
    bySrc.set(src, (bySrc.get(src) || 0) + count);   // keyed by string id
    if (t.members === null) byTrail.set(t.trailId, (byTrail.get(t.trailId) || 0) + count);
    else for (const [id, n] of t.members) if (!members || members(id)) byTrail.set(id, (byTrail.get(id) || 0) + n);
  }
  const types = [...byType.entries()].sort((a, b) => b[1].reduce((x, y) => x + y, 0) - a[1].reduce((x, y) => x + y, 0));
  return {
    threats: view.length, events, sev, sevEvents, sources: bySrc.size, trails: byTrail.size,
    hourly: total, types: types.slice(0, 6).map(([type, hist]) => ({ type, hist })),
    topSources: top(bySrc, 14).map(([id, n]) => [state.agg.strings[id], n]),
    topTrails: top(byTrail, 9).map(([id, n]) => [state.agg.strings[id], n]),
    range: [state.agg.minT, state.agg.maxT], grid: state.agg.grid, allEvents: state.agg.events, allThreats: state.agg.threats.length,
    dropped: state.agg.dropped, bad: state.parser.bad,
  };
}

function rowOf(t) {
  const a = state.agg;
  const part = state.narrow && state.narrow.get(t.id);
  return {
    id: t.id, uid: t.uid, kind: t.kind, sev: t.sev, count: t.count, type: t.type, trail: t.trail, info: t.info,
    ref: t.ref, cls: t.cls, first: t.first, last: t.last, hist: Array.from(t.hist), lan: t.lan,
    src: a.values(t, 'src', 5), srcN: t.src.size, dst: a.values(t, 'dst', 5), dstN: t.dst.size,
    dport: a.values(t, 'dport', 5), dportN: t.dport.size, proto: a.values(t, 'proto'), sensor: a.values(t, 'sensor', 3),
    sensorN: t.sensor.size, over: t.over, fresh: !state.loading && t.id >= state.newMark, members: t.members ? t.members.size : 1, matched: part ? part.count : null,
  };
}

function rows(msg) {
  const out = [];
  const view = state.view;
  const to = Math.min(msg.to, view.length);
  for (let k = Math.max(0, msg.from); k < to; k++) out.push(rowOf(state.agg.threats[view[k]]));
  return { op: 'rows', reqId: msg.reqId, from: msg.from, rows: out, count: view.length };
}

async function detail(msg) {
  const agg = state.agg;
  const t = agg.threats.find((x) => x.uid === msg.uid && x.alias < 0);
  if (!t) return { op: 'detail', reqId: msg.reqId, missing: true };
  const records = t.summary ? await summaryRecords(t) : null;
  const events = records ? agg.summaryEvents(t, records, msg.limit || 500) : agg.eventsOf(t, msg.limit || 500);
  if (t.summary) state.version++;    // the threat's sets grew: cached views may differ now
  const row = rowOf(t);
  for (const f of ['src', 'dst', 'dport', 'sport', 'sensor']) row[f] = agg.values(t, f);
  let sameSrc = 0, sameTrail = 0;
  const trails = new Set(t.members ? t.members.keys() : [t.trailId]);
  const src0 = first(t.src);
  for (const o of agg.threats) {
    if (o === t || o.alias >= 0) continue;
    if (o.src.has(src0)) sameSrc++;
    if (sharesTrail(o, trails)) sameTrail++;
  }
  return { op: 'detail', reqId: msg.reqId, threat: row, events, sameSrc, sameTrail, members: memberLists(agg, t, records) };
}

/** Events per placed address (query.js placedAddress; '' for none) of the current view's threats,
 *  or with `all` of every threat: the world map and `country:` ask the server for their countries. */
function places(msg) {
  const a = state.agg, out = new Map(), inTrail = new Map();
  const add = (t) => { const p = threatPlace(t, a.strings, inTrail); out.set(p, (out.get(p) || 0) + t.count); };
  if (msg.all) { for (const t of a.threats) if (t.alias < 0) add(t); } else for (const i of state.view) add(a.threats[i]);
  return { op: 'places', reqId: msg.reqId, places: [...out] };
}

self.onmessage = (ev) => {
  const msg = ev.data;
  try {
    switch (msg.op) {
      case 'load': load(msg); break;
      case 'local': state.local = msg.local; state.version++; break;
      case 'view':
        post(view(msg));
        answered('view');
        break;
      case 'rows': post(rows(msg)); answered('rows'); break;
      case 'detail':
        detail(msg).then(post, (err) => post({ op: 'error', reqId: msg.reqId, error: String(err && err.message || err) }));
        break;
      case 'places': post(places(msg)); break;
      case 'export': post({ op: 'export', reqId: msg.reqId, ...exportView(state.agg, state.view, msg.format, state.local) }); break;
      case 'live': startLive(msg); break;
      case 'stoplive': stopLive(); post({ op: 'livestatus', status: 'off' }); break;
      case 'seen': state.newMark = state.agg.threats.length; break;
      case 'memory': post({ op: 'memory', reqId: msg.reqId, events: state.agg.events, strings: state.agg.strings.length }); break;
      default: post({ op: 'error', reqId: msg.reqId, error: `unknown op ${msg.op}` });
    }
  } catch (err) {
    post({ op: 'error', reqId: msg.reqId, error: String(err && err.stack || err) });
  }
};
