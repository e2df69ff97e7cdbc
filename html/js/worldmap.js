// World view: country outlines (data/world.json: Natural Earth 1:110m admin-0 countries, public
// domain, built once by tools/build_worldmap.py) shaded by the events of the current view per
// country, a ranked list beside them, and arcs to HOME when the server sets one. Countries too
// small for the 110m outlines are dots at their centre. A threat is placed by query.js
// `placedAddress` (the server's /geo rule; the worker's `places` sums the view's events per
// address) and the server's country table (AddressInfo), so the map follows the active search, and clicking a country adds `country:XX`, which selects the
// same threats. Without a country table on the server the map says so and how to get one.
// Where it sits: main.js loads the outlines, counts the view's rows and draws; hitWorld answers clicks.

import { fmt } from './dom.js';

const TOP = 84, BOTTOM = -58;   // latitudes shown (Antarctica left out)
// Centres [lon, lat] of countries with events but no 110m outline (public geographic facts).
const SMALL = {
  SG: [103.8, 1.35], HK: [114.2, 22.3], MT: [14.4, 35.9], BH: [50.6, 26], SC: [55.5, -4.7], VG: [-64.6, 18.4],
  MO: [113.5, 22.2], MU: [57.6, -20.3], MV: [73.5, 3.2], AD: [1.5, 42.5], MC: [7.4, 43.7], LI: [9.55, 47.15],
  SM: [12.45, 43.94], BB: [-59.5, 13.2], GI: [-5.35, 36.14], IM: [-4.5, 54.2], JE: [-2.1, 49.2], GG: [-2.6, 49.45],
  KY: [-81.2, 19.3], BM: [-64.75, 32.3], AG: [-61.8, 17.1], LC: [-61, 13.9], GD: [-61.7, 12.1], KN: [-62.75, 17.3],
  DM: [-61.35, 15.4], VC: [-61.2, 13.25], AW: [-70, 12.5], CW: [-69, 12.2], TO: [-175.2, -21.2], WS: [-172, -13.75],
  FM: [158.2, 6.9], MH: [171.2, 7.1], PW: [134.5, 7.5], KI: [173, 1.4], NR: [166.9, -0.5], TV: [179.2, -8.5],
  CV: [-23.6, 15.1], ST: [6.6, 0.2], KM: [43.3, -11.7], RE: [55.5, -21.1], GU: [144.8, 13.4], AS: [-170.7, -14.3],
};

/** The bundled outlines: [{cc, name, c: [lon, lat], rings: [[lon, lat, ...], ...]}] (main.js keeps them). */
export async function loadWorld() {
  const r = await fetch('data/world.json', { credentials: 'same-origin' });
  if (!r.ok) throw new Error(`data/world.json: HTTP ${r.status}`);
  const data = await r.json();
  return data.countries.map((c) => ({ cc: c.cc, name: c.name, c: c.c, rings: c.p.map((ring) => {
    const out = new Float32Array(ring.length);
    let x = 0, y = 0;
    for (let i = 0; i < ring.length; i += 2) { x += ring[i]; y += ring[i + 1]; out[i] = x * data.scale; out[i + 1] = y * data.scale; }
    return out;
  }) }));
}

/** Events per country from the worker's `places` ([[address, events], ...], '' for threats with no
 *  placed address), the countries asked of the server in batches (AddressInfo).
 *  -> {counts, mapped, unmapped}. */
export async function countryCounts(places, addrinfo) {
  await addrinfo.lookup(places.map(([a]) => a).filter(Boolean));
  const counts = {};
  let mapped = 0, unmapped = 0;
  for (const [a, n] of places) {
    const info = a ? addrinfo.get(a) : null;
    const cc = info && info.country;
    if (cc) { counts[cc] = (counts[cc] || 0) + n; mapped += n; } else unmapped += n;
  }
  return { counts, mapped, unmapped };
}

/** Shade of a count: 0 (none) .. 1 (the largest), on a log scale. */
export function shade(n, max) { return n > 0 ? 0.2 + 0.8 * (Math.log1p(n) / Math.log1p(Math.max(1, max))) : 0; }

/** Draw the map: `view` = {counts, mapped, unmapped, table (false: no country table), home,
 *  failed}. Returns the hit regions for hitWorld: {shapes: [{cc, name, path, n}], dots, list}. */
export function drawWorld(canvas, countries, view) {
  const dpr = window.devicePixelRatio || 1;
  const W = canvas.clientWidth || 1200, H = canvas.clientHeight || 420;
  canvas.width = W * dpr; canvas.height = H * dpr;
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  const style = getComputedStyle(document.documentElement);
  const v = (name) => style.getPropertyValue(name).trim();
  ctx.font = `11px ${getComputedStyle(document.body).fontFamily}`;
  const mapW = Math.min(W - 240, (H * 360) / (TOP - BOTTOM)), mapH = (mapW * (TOP - BOTTOM)) / 360;
  const proj = (lon, lat) => [((lon + 180) / 360) * mapW, ((TOP - lat) / (TOP - BOTTOM)) * mapH];
  const counts = view.counts || {};
  const entries = Object.entries(counts).sort((a, b) => b[1] - a[1]);
  const max = entries.length ? entries[0][1] : 1;
  // probe: a context with the identity transform, for hit tests in CSS px
  const hits = { shapes: [], dots: [], list: [], probe: document.createElement('canvas').getContext('2d') };
  const drawn = new Set();
  ctx.lineWidth = 0.6;
  ctx.strokeStyle = v('--line');
  ctx.save();
  ctx.beginPath(); ctx.rect(0, 0, mapW, mapH); ctx.clip();
  for (const c of countries) {
    if (c.cc === 'AQ') continue;
    const path = new Path2D();
    for (const ring of c.rings) {
      let lo = Infinity, hi = -Infinity;
      for (let i = 0; i < ring.length; i += 2) { lo = Math.min(lo, ring[i]); hi = Math.max(hi, ring[i]); }
      // a ring past the antimeridian (unwrapped by the build) is drawn again on the other side
      for (const shift of [0, hi > 180 ? -360 : 0, lo < -180 ? 360 : 0].filter((v, k) => k === 0 || v)) {
        for (let i = 0; i < ring.length; i += 2) {
          const [x, y] = proj(ring[i] + shift, ring[i + 1]);
          if (i) path.lineTo(x, y); else path.moveTo(x, y);
        }
        path.closePath();
      }
    }
    const n = (c.cc && counts[c.cc]) || 0;
    ctx.fillStyle = v('--chip');
    ctx.fill(path);
    if (n) { ctx.fillStyle = `rgba(240,67,94,${shade(n, max).toFixed(3)})`; ctx.fill(path); }
    ctx.stroke(path);
    hits.shapes.push({ cc: c.cc, name: c.name, path, n, c: proj(c.c[0], c.c[1]) });
    if (c.cc) drawn.add(c.cc);
  }
  ctx.restore();
  for (const [cc, n] of entries) {
    if (drawn.has(cc) || !SMALL[cc]) continue;
    const [x, y] = proj(SMALL[cc][0], SMALL[cc][1]);
    ctx.fillStyle = `rgba(240,67,94,${Math.max(0.5, shade(n, max)).toFixed(3)})`;
    ctx.beginPath(); ctx.arc(x, y, 4, 0, Math.PI * 2); ctx.fill();
    hits.dots.push({ x, y, r: 6, cc });
  }
  const home = view.home && view.home.lat != null ? proj(view.home.lon, view.home.lat) : null;
  if (home) {
    ctx.strokeStyle = 'rgba(240,67,94,.35)';
    for (const [cc] of entries.slice(0, 30)) {
      const s = hits.shapes.find((h) => h.cc === cc) || hits.dots.find((d) => d.cc === cc);
      if (!s) continue;
      const [x, y] = s.c || [s.x, s.y];
      ctx.beginPath(); ctx.moveTo(x, y); ctx.quadraticCurveTo((x + home[0]) / 2, Math.min(y, home[1]) - 40, home[0], home[1]); ctx.stroke();
    }
    ctx.fillStyle = v('--ok'); ctx.beginPath(); ctx.arc(home[0], home[1], 5, 0, Math.PI * 2); ctx.fill();
  }
  ctx.fillStyle = v('--muted');
  ctx.fillText(`placed ${fmt(view.mapped)} · not placed ${fmt(view.unmapped)} events`, mapW + 16, 12);
  entries.slice(0, 22).forEach(([cc, n], i) => {
    const y = 32 + i * 17;
    ctx.fillStyle = v('--text'); ctx.fillText(cc, mapW + 16, y);
    ctx.fillStyle = 'rgba(240,67,94,.7)'; ctx.fillRect(mapW + 46, y - 6, (150 * n) / max, 10);
    ctx.fillStyle = v('--muted'); ctx.fillText(fmt(n), mapW + 52 + (150 * n) / max, y);
    hits.list.push({ x: mapW + 10, y: y - 10, w: 230, h: 15, cc });
  });
  const say = view.table === false
    ? ['No country table on the server, so no event can be placed.',
      'Run `python3 -m core.update` on the server: it fetches the RIRs\' delegated statistics (ip2cc.csv.gz beside the trails file).']
    : view.failed ? [`Countries unavailable: ${view.failed}`] : !entries.length ? ['No placed events in this view.'] : [];
  ctx.fillStyle = v('--text');
  say.forEach((line, i) => ctx.fillText(line, 20, mapH / 2 + i * 16));
  return hits;
}

/** The country under a point of the canvas (CSS px), or ''. */
export function hitWorld(hits, x, y) {
  if (!hits) return '';
  for (const h of hits.list) if (x >= h.x && x <= h.x + h.w && y >= h.y && y <= h.y + h.h) return h.cc;
  for (const d of hits.dots) if (Math.hypot(x - d.x, y - d.y) <= d.r) return d.cc;
  for (const s of hits.shapes) if (s.cc && hits.probe.isPointInPath(s.path, x, y)) return s.cc;
  return '';
}
