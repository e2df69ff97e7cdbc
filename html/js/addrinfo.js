// Context beside addresses and a class icon per threat type: a country flag (emoji regional
// indicators built from the alpha-2 code, or the code itself where the browser has no flag
// glyphs), the ASN and its holder, and what the server knows locally of the address.
// Where it sits: main.js makes one AddressInfo; grid.js and drawer.js put its badges beside
// addresses, main.js's world map asks it for countries. Data comes only from the server:
// `POST check_ip` with `addresses=` (batched: the country from the server's RIR table, the
// datacenter name and worst-ASN mark from its lists; all local to the server) and, only when
// the page's `mt-ripe` meta says the server asks RIPEstat (DISABLE_RIPE_LOOKUPS false),
// `ripe?address=&kind=asn`, at most two at a time. Otherwise (or when RIPEstat has no answer) the
// badge falls back to the datacenter name; with no country table it shows no flag.

import { el } from './dom.js';
import { isPrivate } from './classify.js';

const BATCH = 2000;

/** Emoji flag of an ISO 3166 alpha-2 code ('' when it is not two letters). */
export function flagText(cc) {
  const code = String(cc || '').toUpperCase();
  if (!/^[A-Z]{2}$/.test(code)) return '';
  return String.fromCodePoint(...[...code].map((c) => 0x1f1e6 + c.charCodeAt(0) - 65));
}

/** Whether this browser draws flag emoji (a colour glyph), tested on a canvas. */
export function flagsRender() {
  let flagGlyphs = false;
  try {
    const c = document.createElement('canvas');
    c.width = c.height = 24;
    const ctx = c.getContext('2d', { willReadFrequently: true });
    ctx.font = '20px sans-serif';
    ctx.textBaseline = 'top';
    ctx.fillStyle = '#000';
    ctx.fillText(flagText('DE'), 0, 0);
    const px = ctx.getImageData(0, 0, 24, 24).data;
    for (let i = 0; i < px.length; i += 4) if (px[i + 3] && (px[i] !== px[i + 1] || px[i + 1] !== px[i + 2])) { flagGlyphs = true; break; }
  } catch { flagGlyphs = false; }
  return flagGlyphs;
}

/** A flag for a country code: the emoji where `glyphs` (flagsRender), else the code in a small box. */
export function flagNode(cc, glyphs) {
  const code = String(cc || '').toUpperCase();
  if (!flagText(code)) return null;
  return glyphs ? el('span.flag', { text: flagText(code), title: code, dataset: { cc: code } })
    : el('span.flag.cc', { text: code, title: code, dataset: { cc: code } });
}

// --- class icons ----------------------------------------------------------------------------------

const ICONS = {
  dns: 'M8 1.5a6.5 6.5 0 1 0 0 13 6.5 6.5 0 0 0 0-13M1.5 8h13M8 1.5c-2.5 2-2.5 11 0 13M8 1.5c2.5 2 2.5 11 0 13',
  ip: 'M2 2.5h12v4.5H2zM2 9h12v4.5H2zM4.5 4.75h1M4.5 11.25h1',
  url: 'M6.5 9.5l3-3M7 11.5l-1.5 1.5a2.5 2.5 0 0 1-3.5-3.5L3.5 8M9 4.5L10.5 3a2.5 2.5 0 0 1 3.5 3.5L12.5 8',
  ua: 'M8 7a2.5 2.5 0 1 0 0-5 2.5 2.5 0 0 0 0 5M3 14c0-3 2.2-5 5-5s5 2 5 5',
  cert: 'M3.5 7h9v7h-9zM5.5 7V5a2.5 2.5 0 0 1 5 0v2M8 10v1.5',
  ja3: 'M4 13c0-5 1-8 4-8s4 3 4 8M6.5 14c0-3.5.5-5.5 1.5-5.5s1.5 2 1.5 5.5M2 9c.5-4 2.5-6.5 6-6.5s5.5 2.5 6 6.5',
  port: 'M6 1.5v4M10 1.5v4M4 5.5h8v3a4 4 0 0 1-8 0zM8 12.5v2',
  heuristic: 'M1.5 8h3l2-5 3 10 2-5h3',
};
const ICON_OF_TYPE = { DNS: 'dns', IP: 'ip', IPORT: 'ip', URL: 'url', HTTP: 'url', PATH: 'url', UA: 'ua', CERT: 'cert',
  JA3: 'ja3', JA3S: 'ja3', JA4: 'ja3', PORT: 'port' };
const ICON_TITLES = { dns: 'domain name', ip: 'address', url: 'URL / HTTP', ua: 'User-Agent', cert: 'certificate',
  ja3: 'TLS fingerprint', port: 'port', heuristic: 'heuristic detection' };

/** The icon class of a threat: heuristic findings by their reference, else by trail type. */
export function iconClass(type, ref) {
  if (/\(heuristic\)/i.test(String(ref || ''))) return 'heuristic';
  return ICON_OF_TYPE[String(type || '').toUpperCase()] || 'ip';
}

/** A small inline SVG icon (stroked in the text colour) for a threat's class. */
export function classIcon(type, ref) {
  const name = iconClass(type, ref);
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 16 16');
  svg.setAttribute('class', 'ticon');
  svg.dataset.cls = name;
  const title = document.createElementNS(ns, 'title');
  title.textContent = ICON_TITLES[name];
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('d', ICONS[name]);
  svg.append(title, path);
  return svg;
}

// --- address context --------------------------------------------------------------------------------

const publicAddress = (a) => !!a && /^[0-9a-f:.[\]]+$/i.test(a) && /[.:]/.test(a) && !isPrivate(a);

export class AddressInfo {
  /** `ripe`: the server asks RIPEstat for ASNs; `onChange`: new answers arrived (badges updated). */
  constructor({ ripe, onChange }) {
    this.ripe = !!ripe;
    this.onChange = onChange || (() => {});
    this.info = new Map();      // address -> {country, ipcat, worst_asns} | null (not an address)
    this.pending = new Set();
    this.waiters = [];
    this.asns = new Map();      // address -> {asn, holder} | null (no answer) | 'asking'
    this.asnQueue = [];
    this.asking = 0;
    this.badges = new Set();
    this.failed = '';
    this.flagGlyphs = null;      // flagsRender(), tested on the first flag
  }

  get(address) { return this.info.get(address); }

  /** Ask for the countries of these addresses (batched); resolves when all are known. */
  lookup(addresses) {
    for (const a of addresses) if (publicAddress(a) && !this.info.has(a)) this.pending.add(a);
    if (!this.pending.size) return Promise.resolve();
    const done = new Promise((resolve) => this.waiters.push(resolve));
    if (!this.timer) this.timer = setTimeout(() => this.flush(), 20);
    return done;
  }

  async flush() {
    this.timer = 0;
    const waiters = this.waiters.splice(0);
    while (this.pending.size) {
      const batch = [...this.pending].slice(0, BATCH);
      for (const a of batch) this.pending.delete(a);
      try {
        const resp = await fetch('check_ip', { method: 'POST', credentials: 'same-origin', cache: 'no-store',
          body: new URLSearchParams({ addresses: batch.join(',') }) });
        if (!resp.ok) throw new Error(`check_ip: HTTP ${resp.status}`);
        const answer = await resp.json();
        for (const a of batch) this.info.set(a, answer[a] || null);
        this.failed = '';
      } catch (err) {
        this.failed = String(err && err.message || err);
        for (const a of batch) this.info.set(a, null);
      }
    }
    waiters.forEach((w) => w());
    this.update();
  }

  /** The ASN of an address from the server's RIPEstat proxy; never asked with DISABLE_RIPE_LOOKUPS. */
  asn(address) {
    if (!this.ripe || !publicAddress(address)) return null;
    if (!this.asns.has(address)) { this.asns.set(address, 'asking'); this.asnQueue.push(address); this.pumpAsn(); }
    const v = this.asns.get(address);
    return v === 'asking' ? null : v;
  }

  pumpAsn() {
    while (this.asking < 2 && this.asnQueue.length) {
      const a = this.asnQueue.shift();
      this.asking++;
      fetch(`ripe?address=${encodeURIComponent(a)}&kind=asn`, { credentials: 'same-origin', cache: 'no-store' })
        .then((r) => (r.status === 200 ? r.json() : null))
        .catch(() => null)
        .then((v) => { this.asns.set(a, v && v.asn ? v : null); this.asking--; this.pumpAsn(); this.update(); });
    }
  }

  /** A span beside an address: flag, then the ASN (RIPEstat) or the datacenter name (local), and
   *  a mark for a worst-ASN range. Fills itself as answers arrive. */
  badge(address) {
    if (!publicAddress(address)) return null;
    const span = el('span.abadge', { dataset: { addr: address } });
    this.fill(span);
    if (!this.info.has(address)) this.lookup([address]);
    if (this.badges.size > 4000) for (const b of this.badges) if (!b.isConnected) this.badges.delete(b);
    this.badges.add(span);
    return span;
  }

  fill(span) {
    const a = span.dataset.addr;
    const info = this.info.get(a);
    const asn = this.asn(a);
    const parts = [];
    if (info && info.country) {
      if (this.flagGlyphs === null) this.flagGlyphs = flagsRender();
      parts.push(flagNode(info.country, this.flagGlyphs));
    }
    if (asn) parts.push(el('span.asn', { text: `AS${asn.asn}`, title: asn.holder || '' }));
    else if (info && info.ipcat) parts.push(el('span.asn.local', { text: info.ipcat, title: 'datacenter range (server lists)' }));
    if (info && info.worst_asns) parts.push(el('span.worst', { text: '⚑', title: 'in a worst-ASN range (server lists)' }));
    span.replaceChildren(...parts);
    span.dataset.state = info === undefined ? 'asking' : 'done';
  }

  update() {
    for (const b of this.badges) { if (b.isConnected) this.fill(b); else this.badges.delete(b); }
    this.onChange();
  }
}
