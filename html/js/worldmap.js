// World view: /geo country counts as bubbles on an equirectangular graticule (approximate
// country centroids), a ranked list beside it, and arcs to HOME when the server sets one.
// Clicking a bubble or a list entry is reported to main.js (it shows the country code).
// Where it sits: main.js fetches /geo for the shown day and calls drawWorld.

import { fmt } from './dom.js';

// Approximate centroids [lat, lon] (public geographic facts, rounded).
const CENTROIDS = {
  US: [39, -98], CA: [57, -101], MX: [23, -102], BR: [-10, -52], AR: [-35, -65], CL: [-31, -71], CO: [4, -73],
  PE: [-10, -75], VE: [7, -66], GB: [54, -2], IE: [53, -8], FR: [46, 2], DE: [51, 10], NL: [52, 5.5], BE: [50.6, 4.6],
  LU: [49.8, 6.1], CH: [46.8, 8.2], AT: [47.5, 14.5], IT: [42.8, 12.5], ES: [40, -3.7], PT: [39.6, -8], SE: [62, 15],
  NO: [61, 9], FI: [64, 26], DK: [56, 10], PL: [52, 19], CZ: [49.8, 15.5], SK: [48.7, 19.7], HU: [47.2, 19.5],
  RO: [45.9, 25], BG: [42.7, 25.5], GR: [39, 22], TR: [39, 35], UA: [49, 32], BY: [53.7, 28], RU: [61, 99],
  LT: [55.2, 24], LV: [56.9, 24.6], EE: [58.6, 25], RS: [44, 21], HR: [45.1, 15.2], SI: [46.1, 14.8], MD: [47, 28.4],
  IL: [31, 35], IR: [32, 53], IQ: [33, 44], SA: [24, 45], AE: [24, 54], QA: [25.3, 51.2], EG: [26.8, 30.8],
  MA: [31.8, -7], DZ: [28, 2.6], TN: [34, 9], NG: [9, 8], ZA: [-29, 24], KE: [0, 38], ET: [9, 40], GH: [7.9, -1],
  IN: [22, 79], PK: [30, 70], BD: [24, 90], CN: [35, 104], HK: [22.3, 114.2], TW: [23.7, 121], JP: [36, 138],
  KR: [36, 128], KP: [40, 127], VN: [16, 108], TH: [15, 101], MY: [4, 102], SG: [1.35, 103.8], ID: [-2, 118],
  PH: [12, 122], AU: [-25, 134], NZ: [-41, 174], KZ: [48, 67], UZ: [41, 64], SC: [-4.7, 55.5], PA: [8.5, -80],
  BZ: [17.2, -88.5], VG: [18.4, -64.6], CY: [35, 33], MT: [35.9, 14.4], IS: [65, -18], GE: [42.3, 43.4], AM: [40.1, 45],
  AZ: [40.4, 47.6],
};

function proj(lat, lon, w, h) { return [((lon + 180) / 360) * w, ((90 - lat) / 180) * h]; }

/** Draws and returns hit regions [{x, y, r, cc}]. */
export function drawWorld(canvas, geo) {
  const dpr = window.devicePixelRatio || 1;
  const W = canvas.clientWidth || 1200, H = canvas.clientHeight || 420;
  canvas.width = W * dpr; canvas.height = H * dpr;
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  const style = getComputedStyle(document.documentElement);
  const line = style.getPropertyValue('--line'), text = style.getPropertyValue('--text'), muted = style.getPropertyValue('--muted');
  ctx.font = `11px ${getComputedStyle(document.body).fontFamily}`;
  const mapW = Math.min(W - 240, H * 2), mapH = mapW / 2;
  ctx.strokeStyle = line;
  for (let lon = -180; lon <= 180; lon += 30) { const [x] = proj(0, lon, mapW, mapH); ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, mapH); ctx.stroke(); }
  for (let lat = -90; lat <= 90; lat += 30) { const [, y] = proj(lat, 0, mapW, mapH); ctx.beginPath(); ctx.moveTo(0, y); ctx.lineTo(mapW, y); ctx.stroke(); }
  const counts = (geo && geo.counts) || {};
  const entries = Object.entries(counts).sort((a, b) => b[1] - a[1]);
  const max = Math.max(1, ...entries.map((e) => e[1]));
  const hits = [];
  const home = geo && geo.home && Array.isArray(geo.home) ? geo.home : geo && geo.home && geo.home.lat != null ? [geo.home.lat, geo.home.lon] : null;
  const [hx, hy] = home ? proj(home[0], home[1], mapW, mapH) : [0, 0];
  for (const [cc, n] of entries) {
    const c = CENTROIDS[cc.toUpperCase()];
    if (!c) continue;
    const [x, y] = proj(c[0], c[1], mapW, mapH);
    const r = 3 + 18 * Math.sqrt(n / max);
    if (home) {
      ctx.strokeStyle = 'rgba(240,67,94,.35)'; ctx.beginPath(); ctx.moveTo(x, y);
      ctx.quadraticCurveTo((x + hx) / 2, Math.min(y, hy) - 40, hx, hy); ctx.stroke();
    }
    ctx.fillStyle = 'rgba(240,67,94,.55)'; ctx.beginPath(); ctx.arc(x, y, r, 0, Math.PI * 2); ctx.fill();
    ctx.fillStyle = text; ctx.fillText(cc, x + r + 2, y);
    hits.push({ x, y, r, cc });
  }
  if (home) { ctx.fillStyle = '#2ecc8f'; ctx.beginPath(); ctx.arc(hx, hy, 5, 0, Math.PI * 2); ctx.fill(); }
  ctx.fillStyle = muted;
  ctx.fillText(`mapped ${fmt(geo && geo.mapped)} · unmapped ${fmt(geo && geo.unmapped)}`, mapW + 16, 12);
  entries.slice(0, 22).forEach(([cc, n], i) => {
    const y = 32 + i * 17;
    ctx.fillStyle = text; ctx.fillText(cc, mapW + 16, y);
    ctx.fillStyle = 'rgba(240,67,94,.7)'; ctx.fillRect(mapW + 46, y - 6, (150 * n) / max, 10);
    ctx.fillStyle = muted; ctx.fillText(fmt(n), mapW + 52 + (150 * n) / max, y);
  });
  if (!entries.length) { ctx.fillStyle = muted; ctx.fillText('no geolocated events for this day', 20, mapH / 2); }
  return hits;
}
