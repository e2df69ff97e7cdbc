// Canvas charts: the mini charts of the stat cards and the large interactive chart (events over
// time by type: per hour of a day, per hour of a short range or per day of a long one, top sources, top trails, threat types, severity split). Every drawn element
// registers a hit region; clicking it hands a search term to main.js, which adds it as a filter.
// Where it sits: main.js passes the `stats` summary the worker computed for the filtered view.

import { fmt } from './dom.js';
import { typeColour } from './grid.js';
import { quoteValue } from './query.js';

const SEV_COLOURS = ['#8a99ab', '#f5a524', '#f0435e'];
const PALETTE = ['#4cc3f0', '#f0435e', '#f5a524', '#2ecc8f', '#8b5cf6', '#e879f9', '#14b8a6', '#eab308', '#64748b', '#94a3b8'];

const DAY = 86400;

/** Axis ticks for a time grid ({base, step, bins, days}): [{i, label, major}] (i = bucket index). */
export function timeTicks(grid) {
  const g = grid || { base: 0, step: 3600, bins: 24, days: 1 };
  const day = (sec) => new Date(sec * 1000).toISOString().slice(5, 10);
  const ticks = [];
  if (g.bins === 24 && g.step === 3600) {
    for (let hr = 0; hr < 24; hr += 4) ticks.push({ i: hr, label: `${String(hr).padStart(2, '0')}h`, major: hr === 0 });
  } else if (g.step < DAY) {
    const perDay = DAY / g.step;
    for (let i = 0; i < g.bins; i += perDay / 2) {
      const major = i % perDay === 0;
      if (major || g.days <= 2) ticks.push({ i, label: major ? day(g.base + i * g.step) : '12h', major });
    }
  } else {
    const every = Math.max(1, Math.ceil(g.bins / 10));
    for (let i = 0; i < g.bins; i += every) ticks.push({ i, label: day(g.base + i * g.step), major: true });
  }
  return ticks;
}

/** A round axis maximum >= max whose quarters are whole, round numbers (1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 x 10^k each). */
export function niceMax(max) {
  const raw = Math.max(1, max) / 4;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10].map((m) => m * mag).find((v) => v >= raw && Number.isInteger(v)) || Math.ceil(raw);
  return step * 4;
}

/** "per hour" / "per day" / "per N days" for a time grid. */
export function stepName(grid) {
  if (!grid || grid.step <= 3600) return 'per hour';
  return grid.step === DAY ? 'per day' : `per ${grid.step / DAY} days`;
}

function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

function setup(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || canvas.width, h = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  ctx.font = `11px ${getComputedStyle(document.body).fontFamily}`;
  return { ctx, w, h };
}

function donut(ctx, cx, cy, r, parts, colours, hits, filters) {
  const total = parts.reduce((a, b) => a + b, 0) || 1;
  let a0 = -Math.PI / 2;
  parts.forEach((v, i) => {
    const a1 = a0 + (v / total) * Math.PI * 2;
    ctx.beginPath(); ctx.moveTo(cx, cy); ctx.arc(cx, cy, r, a0, a1); ctx.closePath();
    ctx.fillStyle = colours[i % colours.length]; ctx.fill();
    if (hits && filters[i]) hits.push({ kind: 'arc', cx, cy, r, a0, a1, filter: filters[i] });
    a0 = a1;
  });
  ctx.beginPath(); ctx.arc(cx, cy, r * 0.55, 0, Math.PI * 2); ctx.fillStyle = css('--panel'); ctx.fill();
}

export function drawMini(canvases, s) {
  let { ctx, w, h } = setup(canvases.threats);
  donut(ctx, w - 20, h / 2, 18, [s.sev[0], s.sev[1], s.sev[2]], SEV_COLOURS);
  ({ ctx, w, h } = setup(canvases.events));
  const max = Math.max(1, ...s.types.flatMap((t) => t.hist));
  s.types.slice(0, 5).forEach((t) => {
    ctx.strokeStyle = typeColour(t.type); ctx.lineWidth = 1.2; ctx.beginPath();
    const n = Math.max(2, t.hist.length) - 1;
    t.hist.forEach((v, i) => { const x = (i / n) * (w - 2) + 1, y = h - 2 - (v / max) * (h - 4); if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y); });
    ctx.stroke();
  });
  ({ ctx, w, h } = setup(canvases.severity));
  const total = s.sev[0] + s.sev[1] + s.sev[2] || 1;
  let x = 0;
  for (const k of [2, 1, 0]) { const bw = (s.sev[k] / total) * w; ctx.fillStyle = SEV_COLOURS[k]; ctx.fillRect(x, 0, Math.max(0, bw - 2), h); x += bw; }
  ({ ctx, w, h } = setup(canvases.sources));
  const smax = Math.max(1, ...s.topSources.map((e) => e[1]));
  const bw = w / 14;
  s.topSources.forEach(([, v], i) => { const bh = Math.max(1, (v / smax) * h); ctx.fillStyle = PALETTE[i % PALETTE.length]; ctx.fillRect(i * bw, h - bh, bw - 2, bh); });
  ({ ctx, w, h } = setup(canvases.trails));
  donut(ctx, w - 20, h / 2, 18, s.topTrails.map((e) => e[1]), PALETTE);
}

/** Big chart; returns the hit regions [{kind, ..., filter}] for click handling. */
export function drawChart(canvas, kind, s) {
  const { ctx, w, h } = setup(canvas);
  const hits = [];
  const text = css('--text'), muted = css('--muted'), line = css('--line');
  ctx.textBaseline = 'middle';
  const legend = (items, x0) => {
    items.forEach(([label, colour, filter], i) => {
      const y = 16 + i * 18;
      ctx.fillStyle = colour; ctx.fillRect(x0, y - 4, 14, 8);
      ctx.fillStyle = text;
      const shown = label.length > 48 ? label.slice(0, 47) + '…' : label;
      ctx.fillText(shown, x0 + 20, y);
      hits.push({ kind: 'rect', x: x0, y: y - 9, w: 26 + ctx.measureText(shown).width, h: 18, filter });
    });
  };
  if (kind === 'events') {
    const types = s.types.slice(0, 5);
    const max = niceMax(Math.max(1, ...types.flatMap((t) => t.hist)));
    const L = 56, R = w - 260, T = 12, B = h - 24;
    ctx.strokeStyle = line; ctx.fillStyle = muted;
    for (let k = 0; k <= 4; k++) {
      const y = B - (k / 4) * (B - T);
      ctx.beginPath(); ctx.moveTo(L, y); ctx.lineTo(R, y); ctx.stroke();
      ctx.fillText(fmt(Math.round((max * k) / 4)), 4, y);
    }
    const bins = (s.grid && s.grid.bins) || 24;
    const xOf = (i) => L + (i / Math.max(1, bins - 1)) * (R - L);
    ctx.textAlign = 'center';
    for (const tk of timeTicks(s.grid)) {
      const x = xOf(tk.i);
      if (tk.major && tk.i > 0 && bins !== 24) {       // day boundaries of a range
        ctx.strokeStyle = line; ctx.setLineDash([3, 4]);
        ctx.beginPath(); ctx.moveTo(x, T); ctx.lineTo(x, B); ctx.stroke(); ctx.setLineDash([]);
      }
      ctx.fillStyle = muted;
      ctx.fillText(tk.label, Math.max(L + 12, Math.min(R - 12, x)), h - 10);
    }
    ctx.textAlign = 'left';
    types.forEach((t) => {
      ctx.strokeStyle = typeColour(t.type); ctx.lineWidth = bins > 60 ? 1.5 : 2; ctx.beginPath();
      t.hist.forEach((v, i) => { const x = xOf(i), y = B - (v / max) * (B - T); if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y); });
      ctx.stroke();
    });
    ctx.lineWidth = 1;
    legend(types.map((t) => [`${t.type} (${fmt(t.hist.reduce((a, b) => a + b, 0))})`, typeColour(t.type), `type:${quoteValue(t.type)}`]), R + 24);
  } else if (kind === 'sources') {
    const items = s.topSources;
    const max = Math.max(1, ...items.map((e) => e[1]));
    const L = 150, R = w - 80, rowH = Math.min(17, (h - 8) / Math.max(1, items.length));
    items.forEach(([src, v], i) => {
      const y = 4 + i * rowH;
      ctx.fillStyle = text; ctx.fillText(src || '-', 4, y + rowH / 2);
      const bw = ((R - L) * v) / max;
      ctx.fillStyle = PALETTE[i % PALETTE.length]; ctx.fillRect(L, y + 2, bw, rowH - 4);
      ctx.fillStyle = muted; ctx.fillText(fmt(v), L + bw + 6, y + rowH / 2);
      if (src) hits.push({ kind: 'rect', x: 0, y, w: R, h: rowH, filter: `src:${quoteValue(src)}` });
    });
  } else if (kind === 'trails' || kind === 'threats') {
    const items = kind === 'trails'
      ? s.topTrails.map(([trail, v]) => [trail, v, `trail:${quoteValue(trail)}`])
      : s.types.map((t) => [t.type, t.hist.reduce((a, b) => a + b, 0), `type:${quoteValue(t.type)}`]);
    const shown = items.reduce((a, e) => a + e[1], 0);
    const other = Math.max(0, s.events - shown);
    const parts = items.map((e) => e[1]).concat(other ? [other] : []);
    const colours = kind === 'threats' ? items.map((e) => typeColour(e[0])).concat(['#475569']) : PALETTE;
    donut(ctx, h / 2 + 10, h / 2, h / 2 - 12, parts, colours, hits, items.map((e) => e[2]));
    legend(items.map((e, i) => [`${e[0]} (${fmt(e[1])})`, colours[i % colours.length], e[2]])
      .concat(other ? [[`other (${fmt(other)})`, colours[items.length % colours.length], null]] : []), h + 40);
  } else if (kind === 'severity') {
    const total = s.sev[0] + s.sev[1] + s.sev[2] || 1;
    const names = ['low', 'medium', 'high'];
    legend([2, 1, 0].map((k) => [`${names[k]}: ${fmt(s.sev[k])} threats, ${fmt(s.sevEvents[k])} events`, SEV_COLOURS[k], `sev:${names[k]}`]), 10);
    let x = 10;
    for (const k of [2, 1, 0]) {
      const bw = ((w - 20) * s.sev[k]) / total;
      ctx.fillStyle = SEV_COLOURS[k]; ctx.fillRect(x, 80, Math.max(0, bw - 3), 60);
      if (bw > 100) { ctx.fillStyle = '#111'; ctx.fillText(`${names[k]} ${fmt(s.sev[k])}`, x + 8, 110); }
      hits.push({ kind: 'rect', x, y: 80, w: bw, h: 60, filter: `sev:${names[k]}` });
      x += bw;
    }
  }
  return hits;
}

export function hitTest(hits, x, y) {
  for (const hh of hits) {
    if (hh.kind === 'rect' && x >= hh.x && x <= hh.x + hh.w && y >= hh.y && y <= hh.y + hh.h) return hh.filter;
    if (hh.kind === 'arc') {
      const dx = x - hh.cx, dy = y - hh.cy;
      if (dx * dx + dy * dy > hh.r * hh.r) continue;
      let a = Math.atan2(dy, dx);
      if (a < -Math.PI / 2) a += Math.PI * 2;
      if (a >= hh.a0 && a <= hh.a1) return hh.filter;
    }
  }
  return null;
}
