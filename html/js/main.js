// The page controller: login and session UI, day/range selection, talking to the data worker,
// search box and chips, cards and charts, the grid, drawer, context menu, live mode, exports,
// keyboard shortcuts, theme and text size; the dialogs (help, retro-hunt, saved views, whitelist,
// aliases) are dialogs.js. State lives in this object and in the URL hash (bookmarkable views);
// analyst notes live in localStorage (store.js).
// Where it sits: loaded by index.html as a module; everything heavy runs in worker.js (the
// messages between the two: docs/web-client.md).

import { $, clear, download, el, fmt } from './dom.js';
import { AddressInfo } from './addrinfo.js';
import { eventStore, login, logout, whoami, geo as fetchGeo } from './api.js';
import { Beeper } from './beep.js';
import { Calendar, addDays, isoDay } from './calendar.js';
import { drawChart, drawMini, hitTest, stepName } from './charts.js';
import { Dialogs } from './dialogs.js';
import { Drawer } from './drawer.js';
import { Grid } from './grid.js';
import { lookupLinks, lookupTarget } from './classify.js';
import { chipsOf, parseQuery, quoteValue, withoutChip } from './query.js';
import { LocalStore } from './store.js';
import { countryCounts, drawWorld, hitWorld, loadWorld } from './worldmap.js';

var IP_ALIASES = {};   // rewritten by the server from IP_ALIASES in maltrail.conf

const meta = (name) => { const m = document.querySelector(`meta[name="${name}"]`); return m ? m.content : ''; };

class App {
  constructor() {
    this.store = new LocalStore();
    this.eventStore = null;      // /store: {kind: 'clickhouse' | 'files'}, asked once a session starts
    this.worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
    this.seq = 0;
    this.waiting = new Map();
    this.worker.onmessage = (ev) => this.onWorker(ev.data);
    this.worker.onerror = (ev) => this.setStatus(`worker error: ${ev.message || 'failed to start'}`);
    const tz = parseInt(meta('mt-tzoffset'), 10);
    this.tzOffset = Number.isFinite(tz) ? tz : -new Date().getTimezoneOffset();
    this.today = this.serverToday();
    this.state = { from: this.today, to: this.today, q: '', sev: '', sort: 'sev', dir: 'desc', chart: '', hidden: false };
    this.stats = null;
    this.hits = [];
    this.loadInfo = {};
    this.timing = { loadStart: 0, firstRows: 0, done: 0, lastFilterMs: 0 };
    this.liveOn = false;
    this.newCount = 0;
    this.onlyNew = false;        // the "N new" pill shows only the threats that arrived while live
    this.beeper = new Beeper();
    this.loadGen = 0;            // one per load: an answer asked for under an older one is dropped
    this.notifyOn = this.store.prefs.notify === true;
    this.searchDelay = 120;      // ms of typing pause before a search applies (Enter applies at once)
  }

  /** The server's current wall-clock time as seconds (log times are written in server local time). */
  serverNowWall() { return Date.now() / 1000 + this.tzOffset * 60; }
  serverToday() { return isoDay(new Date(this.serverNowWall() * 1000)); }

  // --- worker plumbing -------------------------------------------------------------------------

  ask(msg) {
    const reqId = ++this.seq;
    return new Promise((resolve) => { this.waiting.set(reqId, resolve); this.worker.postMessage({ ...msg, reqId }); });
  }

  onWorker(msg) {
    if (msg.reqId && this.waiting.has(msg.reqId)) { const done = this.waiting.get(msg.reqId); this.waiting.delete(msg.reqId); done(msg); return; }
    if (msg.op === 'progress') this.onProgress(msg);
    else if (msg.op === 'live') this.onLive(msg);
    else if (msg.op === 'livestatus') { this.liveStatus = msg.status; this.renderStatus(); }
    else if (msg.op === 'error') this.setStatus(`error: ${msg.error}`);
  }

  // --- boot and session --------------------------------------------------------------------------

  /** HEADER_LOGO (operator HTML, put in the page by the server) replaces the built-in brand. The
   * page's Content-Security-Policy still applies: images from html/ or data: URLs, no scripts. */
  applyLogo() {
    const logo = $('#header-logo');
    if (logo && logo.innerHTML.trim()) $('#top .brand').replaceChildren(logo.content.cloneNode(true));
  }

  async boot() {
    this.applyLogo();
    this.applyPrefs();
    this.readHash();
    this.bindUi();
    let who;
    try { who = await whoami(); } catch (err) { this.setStatus(`server unreachable: ${err.message}`); return; }
    this.showDefaultPw(who.defaultPassword || meta('mt-defaultpw') === '1');
    if (!who.user) { this.showLogin(); return; }
    this.startSession(who.user);
  }

  showDefaultPw(on) {
    const b = $('#banner');
    b.textContent = 'Warning: the default password is in use. Change USERS in maltrail.conf before exposing this server.';
    b.hidden = !on;
  }

  showLogin() {
    $('#login').hidden = false;
    $('#login-user').focus();
  }

  async doLogin(ev) {
    ev.preventDefault();
    const err = $('#login-error');
    err.textContent = '';
    $('#login-submit').disabled = true;
    try {
      const r = await login($('#login-user').value, $('#login-pass').value, () => {
        err.textContent = 'This account is under attack: proving work before logging in…';
      });
      if (!r.ok) { err.textContent = r.status === 429 ? r.message : 'Login failed'; return; }
      err.textContent = '';
      $('#login-pass').value = '';
      $('#login').hidden = true;
      const who = await whoami();
      this.showDefaultPw(r.defaultPassword || who.defaultPassword);
      this.startSession(who.user || $('#login-user').value);
    } catch (e) {
      err.textContent = `Login error: ${e.message}`;
    } finally {
      $('#login-submit').disabled = false;
    }
  }

  async startSession(user) {
    this.user = user;
    $('#who').textContent = user === '?' ? '' : user;
    $('#logout').hidden = user === '?';
    this.postLocal();
    // with ClickHouse as the event store the day comes as a threat summary (/threats)
    try { this.eventStore = await eventStore(); } catch (err) { this.eventStore = { kind: 'files' }; }
    this.load();
  }

  async doLogout(ev) {
    ev.preventDefault();
    this.stopLive();
    await logout();
    location.hash = '';
    location.reload();
  }

  // --- hash state --------------------------------------------------------------------------------

  readHash() {
    const p = new URLSearchParams(location.hash.slice(1));
    const day = /^\d{4}-\d{2}-\d{2}$/;
    const s = this.state;
    if (day.test(p.get('from') || '')) s.from = p.get('from');
    if (day.test(p.get('to') || '')) s.to = p.get('to');
    if (day.test(p.get('date') || '')) s.from = s.to = p.get('date');
    if (s.to < s.from) [s.from, s.to] = [s.to, s.from];
    s.q = p.get('q') ?? p.get('filter') ?? '';
    s.sev = ['0', '1', '2'].includes(p.get('sev')) ? p.get('sev') : '';
    s.sort = p.get('sort') || 'sev';
    s.dir = p.get('dir') === 'asc' ? 'asc' : 'desc';
    s.chart = ['events', 'threats', 'severity', 'sources', 'trails'].includes(p.get('chart')) ? p.get('chart') : '';
  }

  writeHash() {
    const s = this.state;
    const p = new URLSearchParams();
    if (s.from === s.to) p.set('date', s.from); else { p.set('from', s.from); p.set('to', s.to); }
    if (s.q) p.set('q', s.q);
    if (s.sev) p.set('sev', s.sev);
    if (s.sort !== 'sev') p.set('sort', s.sort);
    if (s.dir !== 'desc') p.set('dir', s.dir);
    if (s.chart) p.set('chart', s.chart);
    const hash = '#' + p.toString();
    if (location.hash !== hash) history.replaceState(null, '', hash);
  }

  // --- loading -----------------------------------------------------------------------------------

  load() {
    const s = this.state;
    const date = s.from === s.to ? s.from : `${s.from}_${s.to}`;
    this.stopLive();
    this.loadGen++;
    this.onlyNew = false;
    this.timing = { loadStart: performance.now(), firstRows: 0, done: 0, lastFilterMs: 0 };
    this.loadInfo = { done: false };
    this.refitColumns = false;
    this.countriesThreats = -1;      // ensureCountries: asked again for the new load
    document.body.dataset.ready = 'loading';
    document.body.dataset.loadSeq = String((+document.body.dataset.loadSeq || 0) + 1);
    this.newCount = 0;
    this.renderNew();
    this.renderDay();
    this.writeHash();
    $('#progress-bar').style.transform = 'scaleX(0)';
    const summary = !!this.eventStore && this.eventStore.kind === 'clickhouse';
    const path = summary ? 'threats' : 'events';
    this.worker.postMessage({ op: 'load', url: new URL(`${path}?date=${encodeURIComponent(date)}`, document.baseURI).href, base: document.baseURI, date,
      severity: meta('mt-severity'), summary });
    this.grid.setCount(0, true);
    if (!$('#world-panel').hidden) this.showWorld();
  }

  onProgress(msg) {
    this.loadInfo = msg;
    const pct = msg.total ? Math.min(100, (100 * msg.bytes) / msg.total) : msg.done ? 100 : 50;
    $('#progress-bar').style.transform = `scaleX(${msg.done ? 0 : pct / 100})`;
    if (msg.done) {
      this.timing.done = performance.now() - this.timing.loadStart;
      // columns fitted to rows of partial views while loading (other threats led then) are
      // fitted again to the rows of the whole day's view (refresh)
      this.refitColumns = true;
    }
    if (msg.error === 'unauthorized') { this.showLogin(); return; }
    this.renderStatus();
    // while loading, repaint often enough to feel live but leave the worker time to parse:
    // the first rows at once, then at most every 700 ms or 8x the last view computation
    const delay = msg.done ? 0 : this.timing.firstRows ? Math.max(700, 8 * (this.timing.workerMs || 0)) : 0;
    this.refreshSoon(delay);
  }

  renderStatus() {
    const m = this.loadInfo;
    let text = '';
    if (m.error) text = `load failed: ${m.error}`;
    else if (m.done === false) text = `loading… ${fmt(m.events)} events · ${fmt(Math.round((m.bytes || 0) / 1048576))} MB`;
    else if (m.done) text = `${fmt(m.events)} events loaded in ${(m.ms / 1000).toFixed(1)} s${m.bad ? ` · ${fmt(m.bad)} malformed lines skipped` : ''}`;
    if (m.done && m.summary) text += ` · threat summary from the event store${m.truncated ? ' (the largest threats only)' : ''}`;
    if (this.liveOn) text += ` · live: ${this.liveStatus || 'connecting'}`;
    this.setStatus(text);
  }

  setStatus(text) { $('#status').textContent = text; }

  refreshSoon(delay) {
    if (this.refreshTimer) { if (delay) return; clearTimeout(this.refreshTimer); }
    this.refreshTimer = setTimeout(() => { this.refreshTimer = 0; this.refresh(false); }, delay);
  }

  // --- the view ----------------------------------------------------------------------------------

  async refresh(reset) {
    const s = this.state;
    const started = performance.now();
    const gen = this.loadGen;
    this.busy = (this.busy || 0) + 1;
    document.body.dataset.busy = String(this.busy);
    if (/(^|[\s(!-])country:/i.test(s.q)) await this.ensureCountries();
    const reply = await this.ask({ op: 'view', query: s.q, sev: s.sev, sort: s.sort, dir: s.dir, showHidden: s.hidden,
      onlyNew: this.onlyNew });
    this.busy--;
    document.body.dataset.busy = String(this.busy);
    if (gen !== this.loadGen) return;   // the day changed while this view was computed: it is the old day's
    if (reply.error) { this.badQuery(reply.error); return; }
    this.searchError('');
    this.stats = reply.stats;
    this.grid.nowWall = this.serverNowWall();
    const refit = this.refitColumns && !reply.loading;     // the first view of the whole day
    if (refit) this.refitColumns = false;
    this.grid.setCount(reply.count, reset, refit);
    this.renderCards(reply.stats);
    this.renderChips();
    this.timing.lastFilterMs = performance.now() - started;
    this.timing.workerMs = reply.ms;
    if (!this.timing.firstRows && reply.count) this.timing.firstRows = performance.now() - this.timing.loadStart;
    if (!$('#world-panel').hidden) this.showWorld();
    document.body.dataset.ready = this.loadInfo.done ? 'done' : 'loading';
    document.body.dataset.viewSeq = String((+document.body.dataset.viewSeq || 0) + 1);
  }

  renderCards(st) {
    $('#c-threats').textContent = fmt(st.threats);
    $('#c-events').textContent = fmt(st.events);
    $('#c-sources').textContent = fmt(st.sources);
    $('#c-trails').textContent = fmt(st.trails);
    const worst = st.sev[2] ? 'high' : st.sev[1] ? 'medium' : st.sev[0] ? 'low' : '—';
    $('#c-sev').textContent = worst;
    $('#c-sev-sub').textContent = `${fmt(st.sev[2])} hi · ${fmt(st.sev[1])} md · ${fmt(st.sev[0])} lo`;
    const s = this.state;
    $('#c-events-sub').textContent = s.from === s.to ? 'across 24h' : `${stepName(st.grid)} · ${s.from.slice(5)} → ${s.to.slice(5)}`;
    const removed = [st.hidden ? `${fmt(st.hidden)} hidden` : '', st.whitelisted ? `${fmt(st.whitelisted)} whitelisted` : '']
      .filter(Boolean).join(', ');
    $('#c-threats-sub').textContent = (st.allThreats !== st.threats ? `of ${fmt(st.allThreats)} threats` : 'distinct threats')
      + (removed ? ` (${removed})` : '');
    $('#p-high').textContent = fmt(st.sevAll[2]);
    $('#p-med').textContent = fmt(st.sevAll[1]);
    $('#p-low').textContent = fmt(st.sevAll[0]);
    $('#count').textContent = `${fmt(st.threats)} threats`;
    for (const b of document.querySelectorAll('#sev-pills .pill')) b.classList.toggle('active', b.dataset.sev === s.sev);
    drawMini({ threats: $('#m-threats'), events: $('#m-events'), severity: $('#m-sev'), sources: $('#m-sources'), trails: $('#m-trails') }, st);
    for (const c of document.querySelectorAll('.card')) c.classList.toggle('active', c.dataset.chart === s.chart);
    $('#chart-panel').hidden = !s.chart;
    if (s.chart) {
      $('#chart-title').textContent = { events: s.from === s.to ? 'Events per hour by type' : `Events ${stepName(st.grid)} by type, ${s.from} → ${s.to}`, threats: 'Events by threat type', severity: 'Severity split', sources: 'Top sources', trails: 'Top trails' }[s.chart];
      this.hits = drawChart($('#chart'), s.chart, st);
    }
  }

  renderChips() {
    const box = $('#chips');
    clear(box);
    let chips;
    try { chips = chipsOf(this.state.q); } catch { chips = []; }
    chips.forEach((chip, i) => {
      box.append(el('span.chip', { title: chip.text }, el('span', { text: chip.text }),
        el('button', { text: '×', title: 'remove filter', onclick: () => this.setQuery(withoutChip(this.state.q, i)) })));
    });
  }

  /** A query that does not parse: say why, and show no rows rather than the previous query's. */
  badQuery(text) {
    this.searchError(text);
    this.grid.setCount(0, true);
    document.body.dataset.viewSeq = String((+document.body.dataset.viewSeq || 0) + 1);
  }

  searchError(text) {
    $('.searchbox').classList.toggle('bad', !!text);
    if (text) this.setStatus(`search: ${text}`); else this.renderStatus();
  }

  setQuery(q) {
    this.state.q = q;
    $('#q').value = q;
    this.writeHash();
    this.refresh(true);
  }

  addFilter(term) {
    const q = this.state.q.trim();
    if (q.split(/\s+/).includes(term)) return;
    const needsParens = /\s(OR|\|\|)\s/i.test(q);
    this.setQuery(q ? `${needsParens ? `(${q})` : q} ${term}` : term);
  }

  /** Typing: the search applies once the typing pauses (`searchDelay` ms); an emptied box at once. */
  onSearchInput() {
    clearTimeout(this.searchTimer);
    if (!$('#q').value.trim()) { this.applySearch(); return; }
    this.searchTimer = setTimeout(() => this.applySearch(), this.searchDelay);
  }

  /** The search box's text becomes the view's query now (Enter, an emptied box, the pause after typing). */
  applySearch() {
    clearTimeout(this.searchTimer);
    const q = $('#q').value;
    try { parseQuery(q); } catch (err) { this.badQuery(`${err.message}${err.pos >= 0 ? ` (at ${err.pos + 1})` : ''}`); return; }
    this.state.q = q;
    this.writeHash();
    this.refresh(true);
  }

  // --- day selection -----------------------------------------------------------------------------

  renderDay() {
    const s = this.state;
    const d = new Date(s.from + 'T00:00:00Z');
    const mon = d.toLocaleString('en-US', { month: 'short', timeZone: 'UTC' }).toUpperCase();
    if (s.from === s.to) {
      $('#day-main').textContent = `${mon} ${String(d.getUTCDate()).padStart(2, '0')}`;
      $('#day-sub').textContent = String(d.getUTCFullYear());
    } else {
      $('#day-main').textContent = `${s.from.slice(5)} → ${s.to.slice(5)}`;
      $('#day-sub').textContent = `${s.from.slice(0, 4)} · ${Math.round((Date.parse(s.to) - Date.parse(s.from)) / 864e5) + 1} days`;
    }
    $('#day-next').disabled = s.to >= this.today;
    $('#live').disabled = s.to !== this.today;
  }

  setDays(from, to) {
    this.state.from = from;
    this.state.to = to;
    this.load();
  }

  shiftDay(n) {
    const s = this.state;
    const span = Math.round((Date.parse(s.to) - Date.parse(s.from)) / 864e5);
    let to = addDays(s.to, n * (span + 1));
    if (to > this.today) to = this.today;
    this.setDays(addDays(to, -span), to);
  }

  // --- live ------------------------------------------------------------------------------------

  toggleLive() {
    if (this.liveOn) { this.stopLive(); return; }
    if (this.state.to !== this.today || this.state.from !== this.state.to) return;
    this.liveOn = true;
    $('#live').classList.add('on');
    this.worker.postMessage({ op: 'live', mode: typeof EventSource === 'undefined' ? 'poll' : (this.store.prefs.liveMode || 'sse') });
    this.renderStatus();
  }

  stopLive() {
    if (!this.liveOn) return;
    this.liveOn = false;
    $('#live').classList.remove('on');
    this.worker.postMessage({ op: 'stoplive' });
  }

  onLive(msg) {
    if (msg.newThreats > this.newCount && this.store.prefs.beep === true) this.beeper.beep();
    this.newCount = msg.newThreats;
    this.renderNew();
    this.loadInfo = { ...this.loadInfo, events: msg.events };
    this.refreshSoon(300);
    if (this.notifyOn && msg.high.length && typeof Notification !== 'undefined' && Notification.permission === 'granted') {
      const first = msg.high[0];
      new Notification(`Maltrail: ${msg.high.length} new high-severity threat(s)`, { body: `${first.src} → ${first.trail} (${first.info})`, tag: 'maltrail' });
    }
  }

  renderNew() {
    const pill = $('#new-pill');
    pill.hidden = !this.newCount && !this.onlyNew;
    pill.textContent = this.onlyNew ? `● ${fmt(this.newCount)} new · only new ×` : `● ${fmt(this.newCount)} new`;
    pill.title = this.onlyNew ? 'show every threat (the new ones are then seen)' : 'show only the new threats';
    pill.classList.toggle('only', this.onlyNew);
  }

  /** The pill: first only the threats that arrived while live (marked in the grid), then every
   *  threat again with those counted as seen (their mark goes). */
  onNewPill() {
    if (!this.onlyNew && this.newCount) {
      this.onlyNew = true;
    } else {
      this.onlyNew = false;
      this.newCount = 0;
      this.worker.postMessage({ op: 'seen' });
    }
    this.renderNew();
    this.refresh(true);
  }

  toggleBeep() {
    const on = this.store.prefs.beep !== true;
    this.store.setPref('beep', on);
    if (on) this.beeper.arm();       // made in a click, so the browser lets it sound later
    $('#beep').classList.toggle('on', on);
  }

  async toggleNotify() {
    if (!this.notifyOn && typeof Notification !== 'undefined' && Notification.permission !== 'granted') {
      await Notification.requestPermission();
    }
    this.notifyOn = !this.notifyOn;
    this.store.setPref('notify', this.notifyOn);
    $('#notify').classList.toggle('on', this.notifyOn);
  }

  // --- drawer, context menu --------------------------------------------------------------------------

  async openThreat(uid) {
    const gen = this.loadGen;
    const reply = await this.ask({ op: 'detail', uid, limit: 500 });
    if (gen !== this.loadGen) return;
    if (reply.op === 'error') { this.setStatus(`error: ${reply.error}`); return; }
    if (reply.missing) return;
    this.drawer.show(reply);
  }

  /** A saved view: its URL hash becomes the state, then the view's days load. */
  openView(hash) {
    history.replaceState(null, '', hash);
    this.readHash();
    $('#q').value = this.state.q;
    this.grid.setSort(this.state.sort, this.state.dir);
    this.load();
  }

  /** Browser-local state to the worker, with the countries of addresses known so far (`country:`). */
  postLocal() {
    this.worker.postMessage({ op: 'local', local: { ...this.store.forWorker(), countries: this.countries || {} } });
  }

  /** New countries from the server's table since the last post: post them (true) or not (false). */
  syncCountries() {
    const info = this.addrinfo.info;
    if (info.size === this.countriesFrom) return false;
    this.countriesFrom = info.size;
    this.countries = {};
    for (const [a, v] of info) if (v && v.country) this.countries[a] = v.country;
    this.postLocal();
    return true;
  }

  /** `country:` needs the country of every threat's placed address: ask the server for them all
   *  (once per load and whenever the day grew). */
  async ensureCountries() {
    if (this.countriesThreats === this.loadInfo.threats) return;
    const reply = await this.ask({ op: 'places', all: true });
    await countryCounts(reply.places, this.addrinfo);
    this.countriesThreats = this.loadInfo.threats;
    this.syncCountries();
  }

  localChanged() {
    this.postLocal();
    this.refresh(false);
  }

  contextMenu(ev, r) {
    const m = $('#ctx');
    clear(m);
    const src = r.src[0] || '';
    const item = (text, fn) => el('button', { text, onclick: () => { m.hidden = true; fn(); } });
    const s = this.store;
    const links = lookupLinks(lookupTarget(r.trail));
    m.append(
      item('open details', () => this.openThreat(r.uid)),
      item(s.hidden[r.uid] ? 'unhide threat' : 'hide threat', () => { s.toggleHidden(r.uid); this.localChanged(); }),
      el('hr'),
      ...['investigating', 'resolved', 'false-positive', 'new'].map((st) => item(`triage: ${st === 'new' ? 'clear' : st}`, () => { s.setTriage(r.uid, st); this.localChanged(); })),
      el('hr'),
      src ? item(`only source ${src}`, () => this.addFilter(`src:${quoteValue(src)}`)) : null,
      src ? item(`exclude source ${src}`, () => this.addFilter(`-src:${quoteValue(src)}`)) : null,
      item('only this trail', () => this.addFilter(`trail:${quoteValue(r.trail)}`)),
      item('exclude this trail', () => this.addFilter(`-trail:${quoteValue(r.trail)}`)),
      item(`only type ${r.type}`, () => this.addFilter(`type:${quoteValue(r.type)}`)),
      el('hr'),
      src ? item('whitelist source (this browser)', () => { s.addWhitelist(src); this.localChanged(); }) : null,
      item('whitelist trail (this browser)', () => { s.addWhitelist(r.trail); this.localChanged(); }),
      src ? item('alias source…', () => this.dialogs.alias(src)) : null,
      item('copy row', () => navigator.clipboard && navigator.clipboard.writeText([r.uid, r.src.join(','), r.dst.join(','), r.dport.join(','), r.type, r.trail, r.info].join('\t'))),
      links.length ? el('hr') : null,
      ...links.map(([name, href]) => this.extLink(name, href)),
    );
    m.hidden = false;
    m.style.left = `${Math.min(ev.clientX, window.innerWidth - 240)}px`;
    m.style.top = `${Math.min(ev.clientY, window.innerHeight - m.offsetHeight - 8)}px`;
  }

  extLink(name, href) {
    return el('button', { text: `lookup on ${name} ↗`, onclick: () => { $('#ctx').hidden = true; window.open(href, '_blank', 'noopener,noreferrer'); } });
  }

  /** A term for the retro-hunt box from the search: a single value (`src:1.2.3.4` -> 1.2.3.4). */
  huntTerm() {
    const q = this.state.q.trim();
    const m = /^(?:[a-z]+:)?"?([^\s"]{3,})"?$/i.exec(q);
    if (m && !q.startsWith('-') && !/[*,<>:]/.test(m[1])) return m[1];
    const r = this.grid.selectedRow && this.grid.selectedRow();
    return r ? r.trail : '';
  }

  async doExport(format) {
    $('#export-menu').hidden = true;
    const reply = await this.ask({ op: 'export', format });
    const s = this.state;
    const name = `maltrail-${s.from === s.to ? s.from : `${s.from}_${s.to}`}.${reply.ext}`;
    download(name, reply.text, reply.mime);
    this.setStatus(`exported ${fmt(reply.count)} rows as ${name}`);
  }

  /** /geo without its day scan: whether the server has a country table, and HOME (null on failure). */
  geoState() { return fetchGeo(this.state.to, false).catch(() => null); }

  /** The world map of the current view (its threats placed by country); redrawn after each view. */
  async showWorld() {
    $('#world-panel').hidden = false;
    if (this.worldBusy) { this.worldAgain = true; return; }
    this.worldBusy = true;
    try {
      if (!this.outlines) this.outlines = loadWorld().catch((err) => { this.outlines = null; throw err; });
      const [countries, g, reply] = await Promise.all([this.outlines, this.geoState(),
        this.ask({ op: 'places' })]);
      const placed = await countryCounts(reply.places, this.addrinfo);
      this.syncCountries();
      const table = g ? g.table !== false : true;
      this.worldView = { ...placed, table, home: g && g.home, failed: this.addrinfo.failed };
      this.worldHits = drawWorld($('#worldmap'), countries, this.worldView);
      $('#world-note').textContent = !table
        ? 'no country table on the server: run python3 -m core.update there (it fetches ip2cc.csv.gz)'
        : `${fmt(Object.keys(placed.counts).length)} countries · click one to filter`;
    } catch (err) {
      $('#world-note').textContent = String(err.message || err);
    } finally {
      this.worldBusy = false;
      document.body.dataset.worldSeq = String((+document.body.dataset.worldSeq || 0) + 1);
      if (this.worldAgain) { this.worldAgain = false; this.showWorld(); }
    }
  }

  // --- preferences -------------------------------------------------------------------------------------

  applyPrefs() {
    const p = this.store.prefs;
    document.documentElement.dataset.theme = p.theme === 'light' ? 'light' : 'dark';
    const scale = Math.min(1.6, Math.max(0.7, +p.scale || 1));
    document.documentElement.style.setProperty('--fs', `${Math.round(13 * scale)}px`);
    document.documentElement.style.setProperty('--rowh', `${Math.round(30 * scale)}px`);
    $('#notify').classList.toggle('on', p.notify === true);
    $('#beep').classList.toggle('on', p.beep === true);
  }

  scale(delta) {
    const p = this.store.prefs;
    this.store.setPref('scale', Math.min(1.6, Math.max(0.7, (+p.scale || 1) + delta)));
    this.applyPrefs();
    this.grid.resetColumns();
    this.grid.setCount(this.grid.count, false);
  }

  toggleTheme() {
    this.store.setPref('theme', this.store.prefs.theme === 'light' ? 'dark' : 'light');
    this.applyPrefs();
    if (this.stats) this.renderCards(this.stats);
    this.grid.schedule();
  }

  // --- wiring ------------------------------------------------------------------------------------------

  bindUi() {
    $('#version').textContent = meta('mt-version').startsWith('<!') ? '' : meta('mt-version');
    this.grid = new Grid({
      head: $('#grid-head'), body: $('#grid-body'), rowsBox: $('#grid-rows'), spacer: $('#grid-spacer'), empty: $('#grid-empty'),
      tooltip: $('#tooltip'), local: this.store,
      fetchRows: (from, to) => this.ask({ op: 'rows', from, to }),
      onOpen: (uid) => this.openThreat(uid),
      onSort: (key) => { const s = this.state; s.dir = s.sort === key && s.dir === 'desc' ? 'asc' : 'desc'; s.sort = key; this.grid.setSort(s.sort, s.dir); this.writeHash(); this.refresh(true); },
      onContext: (ev, r) => this.contextMenu(ev, r),
    });
    this.grid.aliases = { ...IP_ALIASES, ...this.store.aliases };
    // flags, ASNs (only when the server asks RIPEstat: mt-ripe) and local address data
    this.addrinfo = new AddressInfo({ ripe: meta('mt-ripe') === '1', onChange: () => this.grid.fitColumns() });
    this.grid.addrinfo = this.addrinfo;
    this.grid.setSort(this.state.sort, this.state.dir);
    this.drawer = new Drawer($('#drawer'), { store: this.store, addFilter: (t) => this.addFilter(t), onChange: () => this.localChanged(), onClose: () => $('#grid').focus() });
    this.drawer.addrinfo = this.addrinfo;
    this.calendar = new Calendar($('#calendar'), { today: this.today, onPick: (a, b) => this.setDays(a, b) });
    this.dialogs = new Dialogs({ store: this.store, today: this.today, on: {
      openDay: (day) => this.setDays(day, day),
      openView: (hash) => this.openView(hash),
      localChanged: () => this.localChanged(),
      aliasesChanged: () => { this.grid.aliases = { ...IP_ALIASES, ...this.store.aliases }; this.grid.schedule(); },
    } });
    $('#q').value = this.state.q;
    $('#login-form').addEventListener('submit', (ev) => this.doLogin(ev));
    $('#logout').addEventListener('click', (ev) => this.doLogout(ev));
    $('#q').addEventListener('input', () => this.onSearchInput());
    $('#q').addEventListener('keydown', (ev) => { if (ev.key === 'Enter') this.applySearch(); });
    $('#q-clear').addEventListener('click', () => this.setQuery(''));
    $('#q-help').addEventListener('click', () => this.dialogs.help());
    $('#q-hunt').addEventListener('click', () => this.dialogs.hunt(this.huntTerm()));
    $('#shortcuts').addEventListener('click', () => this.dialogs.help());
    $('#day-prev').addEventListener('click', () => this.shiftDay(-1));
    $('#day-next').addEventListener('click', () => this.shiftDay(1));
    $('#day-face').addEventListener('click', (ev) => { ev.stopPropagation(); if ($('#calendar').hidden) this.calendar.open($('#day-face'), this.state.from, this.state.to); else this.calendar.close(); });
    $('#font-down').addEventListener('click', () => this.scale(-0.1));
    $('#font-up').addEventListener('click', () => this.scale(0.1));
    $('#theme').addEventListener('click', () => this.toggleTheme());
    $('#world').addEventListener('click', () => { if ($('#world-panel').hidden) this.showWorld(); else $('#world-panel').hidden = true; });
    $('#world-close').addEventListener('click', () => { $('#world-panel').hidden = true; });
    $('#worldmap').addEventListener('click', (ev) => {
      const r = ev.target.getBoundingClientRect();
      const cc = hitWorld(this.worldHits, ev.clientX - r.left, ev.clientY - r.top);
      if (cc) this.addFilter(`country:${cc}`);
    });
    $('#live').addEventListener('click', () => this.toggleLive());
    $('#notify').addEventListener('click', () => this.toggleNotify());
    $('#new-pill').addEventListener('click', () => this.onNewPill());
    $('#beep').addEventListener('click', () => this.toggleBeep());
    $('#show-hidden').addEventListener('click', () => { this.state.hidden = !this.state.hidden; $('#show-hidden').classList.toggle('on', this.state.hidden); this.refresh(true); });
    $('#wl-btn').addEventListener('click', () => this.dialogs.whitelist());
    $('#views-btn').addEventListener('click', () => this.dialogs.views());
    $('#export-btn').addEventListener('click', (ev) => { ev.stopPropagation(); $('#export-menu').hidden = !$('#export-menu').hidden; });
    for (const b of document.querySelectorAll('#export-menu button')) b.addEventListener('click', () => this.doExport(b.dataset.format));
    for (const b of document.querySelectorAll('#sev-pills .pill')) b.addEventListener('click', () => { this.state.sev = b.dataset.sev; this.writeHash(); this.refresh(true); });
    for (const c of document.querySelectorAll('.card')) c.addEventListener('click', () => { this.state.chart = this.state.chart === c.dataset.chart ? '' : c.dataset.chart; this.writeHash(); if (this.stats) this.renderCards(this.stats); });
    $('#chart-close').addEventListener('click', () => { this.state.chart = ''; this.writeHash(); if (this.stats) this.renderCards(this.stats); });
    $('#chart').addEventListener('click', (ev) => {
      const r = ev.target.getBoundingClientRect();
      const filter = hitTest(this.hits, ev.clientX - r.left, ev.clientY - r.top);
      if (filter) this.addFilter(filter);
    });
    document.addEventListener('click', (ev) => {
      if (!ev.target.closest('#ctx')) $('#ctx').hidden = true;
      if (!ev.target.closest('.menuwrap')) $('#export-menu').hidden = true;
      if (!ev.target.closest('#calendar') && !ev.target.closest('#day-face')) this.calendar.close();
    });
    window.addEventListener('hashchange', () => {
      this.readHash();
      $('#q').value = this.state.q;
      this.grid.setSort(this.state.sort, this.state.dir);   // the arrow follows the hash's sort
      this.load();
    });
    document.addEventListener('keydown', (ev) => this.onKey(ev));
  }

  onKey(ev) {
    const typing = ev.target.closest && ev.target.closest('input, textarea');
    if (ev.key === 'Escape') {
      if (this.dialogs.isOpen) this.dialogs.close();
      else if (!$('#ctx').hidden) $('#ctx').hidden = true;
      else if (!$('#calendar').hidden) this.calendar.close();
      else if (!$('#drawer').hidden) this.drawer.close();
      else if (typing && ev.target.id === 'q') { this.setQuery(''); ev.target.blur(); }
      return;
    }
    if (typing || !$('#login').hidden || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const g = this.grid;
    const keys = {
      '/': () => $('#q').focus(), '?': () => this.dialogs.help(),
      ArrowDown: () => g.move(1), ArrowUp: () => g.move(-1), ArrowRight: () => g.page(1), ArrowLeft: () => g.page(-1),
      PageUp: () => this.shiftDay(-1), PageDown: () => this.shiftDay(1),
      Enter: () => { const r = g.selectedRow(); if (r) this.openThreat(r.uid); },
      t: () => this.toggleTheme(), l: () => this.toggleLive(),
      h: () => { const r = g.selectedRow(); if (r) { this.store.toggleHidden(r.uid); this.localChanged(); } },
    };
    const fn = keys[ev.key];
    if (fn) { ev.preventDefault(); fn(); }
  }
}

const app = new App();
window.maltrail = app;        // for the console, the browser tests and the benchmark
app.boot();
