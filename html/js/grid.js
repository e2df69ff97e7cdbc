// The threats grid: a virtual-scrolling table (only visible rows exist in the DOM), sortable
// headers, severity, time sparkline (24 hours, or the whole range), LAN markers, ellipsis tooltips and keyboard selection.
// Where it sits: main.js gives it the row count of the current view and a fetchRows(from, to)
// that asks the worker; rows are rendered with createElement/textContent only.

import { el, clear, fmt, hue, age } from './dom.js';
import { isPrivate, RISKY_PORTS, SERVICES, SEV_NAMES } from './classify.js';
import { classIcon } from './addrinfo.js';

// `grow`: the share of spare width a column takes. `gives`: when the content of every column does
// not fit, the long-text columns (1) give up width first, widest first, down to GIVE_FIRST
// characters; then all the columns that give (1 and 2) share what is left, widest first, down to
// SHARED_MIN characters; the others keep their content's width unless even that does not fit.
export const COLUMNS = [
  { key: 'uid', label: 'Threat' }, { key: 'sensor', label: 'Sensor', gives: 2 }, { key: 'count', label: 'Events' },
  { key: 'sev', label: 'Severity' }, { key: null, label: 'Sparkline' }, { key: 'src', label: 'Source', gives: 2 },
  { key: 'dst', label: 'Destination', gives: 2 }, { key: 'port', label: 'Port', gives: 1 },
  { key: 'proto', label: 'Proto' }, { key: 'type', label: 'Type' }, { key: 'trail', label: 'Trail', gives: 1, grow: 3 },
  { key: 'info', label: 'Info', gives: 1, grow: 2 }, { key: 'first', label: 'First seen' },
  { key: null, label: 'Tags', gives: 2, grow: 1 },
];
const GIVE_FIRST = 10;  // characters
const SHARED_MIN = 5;   // characters

/** Width in px of a cell's content laid out on one line (badges and padding included), however
 *  narrow the cell is. */
function contentWidth(cell, range) {
  range.selectNodeContents(cell);
  return Math.ceil(range.getBoundingClientRect().width) + 1;
}

const sum = (a) => a.reduce((x, y) => x + y, 0);

/** Column widths that fit `avail` px: each column its content (`want`); spare width goes first to
 *  every column a little, then to the growing columns; when short, the columns that give width
 *  are capped stage by stage (one cap per stage, so the widest give first; `ch` px a character),
 *  then every column shrinks in proportion. */
export function fitWidths(want, avail, ch) {
  const total = sum(want);
  if (total <= avail) {   // breathing room for every column first (at most 10 px), the rest to the growing ones
    const pad = Math.min(10, (avail - total) / (2 * want.length));
    const spare = avail - total - pad * want.length;
    const weight = sum(COLUMNS.map((c) => c.grow || 0));
    return want.map((w, i) => w + pad + (spare * (COLUMNS[i].grow || 0)) / weight);
  }
  let widths = want.slice();
  for (const [tiers, min] of [[[1], GIVE_FIRST * ch], [[1, 2], SHARED_MIN * ch]]) {
    const inTier = (i) => tiers.includes(COLUMNS[i].gives);
    const capped = (cap) => widths.map((w, i) => (inTier(i) ? Math.min(w, Math.max(cap, min)) : w));
    if (sum(capped(0)) > avail) { widths = capped(0); continue; }
    let lo = 0, hi = Math.max(...widths);
    for (let k = 0; k < 30; k++) { const mid = (lo + hi) / 2; if (sum(capped(mid)) <= avail) lo = mid; else hi = mid; }
    return capped(lo);
  }
  const all = sum(widths);
  return widths.map((w) => (w * avail) / all);
}

const TYPE_COLOURS = { DNS: '#2f6fd1', IP: '#d6431f', IPORT: '#9b6b52', URL: '#d98c00', HTTP: '#1f9d55', UA: '#8b5cf6', PATH: '#0e9aa7', PORT: '#b83280', CERT: '#64748b', JA3: '#475569', JA3S: '#475569', JA4: '#475569' };

export function typeColour(type) { return TYPE_COLOURS[type] || `hsl(${hue(type)} 55% 45%)`; }

/** Sum a histogram into at most `cols` columns (a long range's hourly buckets into pixels). */
export function fold(hist, cols) {
  const n = hist.length;
  if (n <= cols) return Array.from(hist);
  const out = new Array(cols).fill(0);
  for (let i = 0; i < n; i++) out[Math.floor((i * cols) / n)] += hist[i];
  return out;
}

/** Bars of a threat's time histogram: one per bucket (24 hours of a day, or the whole range). */
export function drawSpark(canvas, hist, colour) {
  const dpr = window.devicePixelRatio || 1;
  const w = 56, h = 18;
  if (canvas.width !== w * dpr) { canvas.width = w * dpr; canvas.height = h * dpr; }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const bars = fold(hist, w / 2);
  const max = Math.max(1, ...bars);
  ctx.fillStyle = colour;
  const bw = w / bars.length;
  for (let i = 0; i < bars.length; i++) {
    if (!bars[i]) continue;
    const bh = Math.max(1, (bars[i] / max) * (h - 1));
    ctx.fillRect(i * bw, h - bh, Math.max(1, bw - (bw > 2 ? 1 : 0)), bh);
  }
}

export class Grid {
  constructor({ head, body, rowsBox, spacer, empty, fetchRows, onOpen, onSort, onContext, tooltip, local, cssVar }) {
    Object.assign(this, { head, body, rowsBox, spacer, empty, fetchRows, onOpen, onSort, onContext, tooltip, local, cssVar });
    this.count = 0;
    this.rows = new Map();          // index -> row data (current window)
    this.selected = -1;
    this.sort = 'sev';
    this.dir = 'desc';
    this.nowWall = 0;
    this.reqSeq = 0;
    this.want = null;               // widest content per column since the view or text size changed
    this.renderHead();
    body.addEventListener('scroll', () => this.schedule());
    window.addEventListener('resize', () => this.schedule());
    rowsBox.addEventListener('mouseover', (ev) => this.hover(ev));
    rowsBox.addEventListener('mouseout', () => { this.tooltip.hidden = true; });
  }

  rowHeight() { return parseFloat(getComputedStyle(document.documentElement).getPropertyValue('--rowh')) || 30; }

  renderHead() {
    clear(this.head);
    for (const col of COLUMNS) {
      const arrow = col.key && col.key === this.sort ? (this.dir === 'asc' ? ' ▲' : ' ▼') : '';
      const span = el('span', { text: col.label + arrow, dataset: { key: col.key || '' } });
      if (col.key === this.sort) span.classList.add('sorted');
      if (col.key) span.addEventListener('click', () => this.onSort(col.key));
      this.head.append(span);
    }
  }

  setSort(sort, dir) { this.sort = sort; this.dir = dir; this.renderHead(); }

  /** A new view of `count` rows, the scroll position kept; `reset`: back to the top; `refit`:
   *  columns sized afresh to its rows. */
  setCount(count, reset, refit = false) {
    this.count = count;
    this.reqSeq++;                  // rows asked for under the previous view are not painted
    this.rows.clear();
    this.spacer.style.height = `${count * this.rowHeight()}px`;
    this.empty.hidden = count > 0;
    if (reset) { this.body.scrollTop = 0; this.selected = count ? 0 : -1; }
    if (reset || refit) this.want = null;
    if (this.selected >= count) this.selected = count - 1;
    this.schedule(true);
  }

  schedule(force) {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.refresh(force); });
  }

  async refresh() {
    const rh = this.rowHeight();
    const top = this.body.scrollTop;
    const from = Math.max(0, Math.floor(top / rh) - 5);
    const to = Math.min(this.count, Math.ceil((top + this.body.clientHeight) / rh) + 5);
    const seq = ++this.reqSeq;
    const reply = await this.fetchRows(from, to);
    if (seq !== this.reqSeq || !reply.rows) return;   // a newer window was asked for, or the worker failed
    this.rows.clear();
    reply.rows.forEach((r, i) => this.rows.set(reply.from + i, r));
    this.paint(from, to, rh);
  }

  paint(from, to, rh) {
    clear(this.rowsBox);
    const frag = document.createDocumentFragment();
    for (let i = from; i < to; i++) {
      const r = this.rows.get(i);
      if (!r) continue;
      const row = this.renderRow(r, i);
      row.style.transform = `translateY(${i * rh}px)`;
      frag.append(row);
    }
    this.rowsBox.append(frag);
    this.fitColumns();
  }

  /** Size the columns to the widest content on screen (header included) since the last reset
   *  (a new view, a text size change), fitted to the grid's width: no sideways scroll. */
  fitColumns() {
    const range = document.createRange();
    const want = this.want || COLUMNS.map(() => 0);
    const measureRow = (row) => { for (let i = 0; i < row.children.length && i < want.length; i++) want[i] = Math.max(want[i], contentWidth(row.children[i], range)); };
    measureRow(this.head);
    for (const row of this.rowsBox.children) measureRow(row);
    this.want = want;
    const style = getComputedStyle(this.head);
    const scrollbar = this.body.offsetWidth - this.body.clientWidth;
    const side = parseFloat(style.paddingLeft);   // rows and header: the same padding each side
    this.head.style.paddingRight = `${side + scrollbar}px`;
    const avail = this.body.clientWidth - 2 * side - parseFloat(style.columnGap) * (COLUMNS.length - 1) - 1;
    const ch = parseFloat(getComputedStyle(document.documentElement).getPropertyValue('--fs')) * 0.6 || 8;
    const widths = fitWidths(want, avail, ch);
    const cols = widths.map((w) => `${Math.max(0, Math.floor(w))}px`).join(' ');
    if (cols !== this.cols) { this.cols = cols; this.head.parentElement.style.setProperty('--cols', cols); }
  }

  /** Text size changed: measure the columns again. */
  resetColumns() { this.want = null; this.schedule(); }

  renderRow(r, index) {
    const local = this.local;
    const row = el('div.grow.row', { dataset: { index: String(index), uid: r.uid } });
    if (index === this.selected) row.classList.add('sel');
    const status = local.triage[r.uid];
    if (status === 'resolved' || status === 'false-positive') row.classList.add('triaged');
    if (r.fresh) row.classList.add('fresh');
    const uid = el('span.uid', { text: r.uid });
    uid.style.background = `hsl(${hue(r.uid)} 65% 60%)`;
    const spark = el('canvas.spark');
    drawSpark(spark, r.hist, r.sev === 2 ? '#f0435e' : r.sev === 1 ? '#f5a524' : '#8a99ab');
    const typ = el('span.typ', { text: r.type || '-' });
    typ.style.background = typeColour(r.type);
    const port = r.dport[0] || '';
    const portCell = el('span.cell', { title: r.dport.join(', ') },
      port ? `${port}${SERVICES[port] ? `/${SERVICES[port]}` : ''}` : '',
      r.dportN > 1 ? ` +${r.dportN - 1}` : '',
      RISKY_PORTS.has(+port) ? el('span.risky', { text: '⚠', title: 'commonly abused port' }) : null);
    const tags = (local.tags[r.uid] || []).map((t) => el('span.tag', { text: t }));
    row.append(
      el('span.cell', null, uid),
      this.multi(r.sensor, r.sensorN),
      el('span.cell', null, el('span.cnt', { text: fmt(r.matched ?? r.count) + '×',
        title: r.matched != null ? `${fmt(r.matched)} of its ${fmt(r.count)} events have a trail the search names` : null })),
      el('span.cell.sev.sev' + r.sev, { text: SEV_NAMES[r.sev] }),
      el('span.cell', null, spark),
      this.ipCell(r.src, r.srcN),
      this.ipCell(r.dst, r.dstN),
      portCell,
      el('span.cell', { text: r.proto.join(',') }),
      el('span.cell', null, classIcon(r.type, r.ref), typ),
      el('span.cell', { text: r.trail }),
      el('span.cell', { text: r.info }),
      el('span.cell.muted', { text: age(r.first, this.nowWall), title: new Date(r.first * 1000).toISOString().slice(0, 19).replace('T', ' ') }),
      el('span.cell', null, status ? el('span.status-badge', { text: status + ' ' }) : null, tags),
    );
    row.addEventListener('click', () => { this.select(index); this.onOpen(r.uid); });
    row.addEventListener('contextmenu', (ev) => { ev.preventDefault(); this.select(index); this.onContext(ev, r); });
    return row;
  }

  /** The first value and how many more (all of them in the tooltip), as for addresses. */
  multi(values, n) {
    return el('span.cell', { text: (values[0] || '') + (n > 1 ? ` +${n - 1}` : ''), title: values.join(', ') + (n > values.length ? ', …' : '') });
  }

  ipCell(values, n) {
    const v = values[0] || '';
    const alias = this.aliases && this.aliases[v];
    return el('span.cell', null,
      v && isPrivate(v) ? el('span.lan', { text: '⌂', title: 'LAN address' }) : null,
      alias ? `${alias} (${v})` : v,
      this.addrinfo ? this.addrinfo.badge(v) : null,
      n > 1 ? el('span.muted', { text: ` +${n - 1}` }) : null);
  }

  hover(ev) {
    const cell = ev.target.closest('.cell');
    if (!cell || cell.scrollWidth <= cell.clientWidth + 1) { this.tooltip.hidden = true; return; }
    this.tooltip.textContent = cell.title || cell.textContent;
    const rect = cell.getBoundingClientRect();
    this.tooltip.style.left = `${Math.min(rect.left, window.innerWidth - 580)}px`;
    this.tooltip.style.top = `${rect.bottom + 4}px`;
    this.tooltip.hidden = false;
  }

  select(index) {
    if (index < 0 || index >= this.count) return;
    this.selected = index;
    const rh = this.rowHeight();
    const top = index * rh;
    if (top < this.body.scrollTop) this.body.scrollTop = top;
    else if (top + rh > this.body.scrollTop + this.body.clientHeight) this.body.scrollTop = top + rh - this.body.clientHeight;
    for (const node of this.rowsBox.children) node.classList.toggle('sel', +node.dataset.index === index);
  }

  selectedRow() { return this.rows.get(this.selected); }

  move(delta) { this.select(Math.max(0, Math.min(this.count - 1, this.selected + delta))); this.schedule(); }

  page(delta) { this.move(delta * Math.max(1, Math.floor(this.body.clientHeight / this.rowHeight()) - 1)); }
}
