// Folds parsed events into threats (the original's aggregation keys) and keeps every event in
// compact columns so the drawer can list a threat's events.
// Where it sits: worker.js owns one Aggregator per load; logparse.js records go in through add();
// the view layer (view.js) reads `threats` and the columns.
//
// Keys: DNS exhaustion -> info + trail; DGA -> src + info; heuristic -> src + trail + info;
// default -> src + normalized trail; a normalized trail seen from more than FLOOD_SOURCES distinct
// sources becomes one "flood" threat. UID = murmur3(key, 13) in hex; special kinds end in N0/F0/D0.

import { classOf, isPrivate, murmur3, severityOf } from './classify.js';

export const SET_CAP = 100;            // distinct values kept per threat and field
export const FLOOD_SOURCES = 50;
export const EVENT_CAP = 5000000;      // events kept in columns (aggregation itself has no cap)

const KIND_SUFFIX = { dns: 'N0', flood: 'F0', dga: 'D0' };

export function normalizeTrail(trail) {
  return trail.toLowerCase().replace(/[()]/g, '').replace(/\s+/g, ' ').trim();
}

function kindOf(rec) {
  if (/dns exhaustion/i.test(rec.info)) return 'dns';
  if (/\bdga\b|(entropy|consonant) threshold no such domain/i.test(rec.info)) return 'dga';
  if (/\(heuristic\)/i.test(rec.ref)) return 'heur';
  return 'default';
}

function keyOf(kind, rec, norm) {
  switch (kind) {
    case 'dns': return rec.info + '\u0001' + norm;
    case 'dga': return rec.src + '\u0001' + rec.info;
    case 'heur': return rec.src + '\u0001' + rec.trail + '\u0001' + rec.info;
    case 'flood': return 'flood\u0001' + norm;
    default: return rec.src + '\u0001' + norm;
  }
}

export function uidOf(key, kind) {
  const hex = murmur3(key, 13).toString(16).padStart(8, '0');
  const suffix = KIND_SUFFIX[kind];
  return suffix ? hex.slice(0, 6) + suffix : hex;
}

class Threat {
  constructor(id, key, kind, rec) {
    this.id = id;
    this.key = key;
    this.kind = kind;
    this.uid = uidOf(key, kind);
    this.type = rec.type;
    this.trail = rec.trail;
    this.info = rec.info;
    this.ref = rec.ref;
    this.cls = classOf(rec.info);
    this.sev = severityOf(rec.info, rec.ref);
    this.count = 0;
    this.first = Infinity;
    this.last = -Infinity;
    this.hist = new Uint32Array(24);
    this.src = new Set(); this.sport = new Set(); this.dst = new Set(); this.dport = new Set();
    this.proto = new Set(); this.sensor = new Set();
    this.over = 0;           // bit mask of sets that hit SET_CAP
    this.alias = -1;         // merged into another threat (flood) when >= 0
    this.lan = false;
  }
}

const FIELD_BITS = { src: 1, sport: 2, dst: 4, dport: 8, proto: 16, sensor: 32 };

function addTo(threat, field, value) {
  if (!value) return;
  const set = threat[field];
  if (value.indexOf(',') >= 0) {
    for (const part of value.split(',')) addTo(threat, field, part.trim());
    return;
  }
  if (set.has(value)) return;
  if (set.size >= SET_CAP) { threat.over |= FIELD_BITS[field]; return; }
  set.add(value);
}

export class Aggregator {
  constructor() {
    this.threats = [];
    this.byKey = new Map();
    this.trailSources = new Map();   // normalized trail -> Set of sources (up to FLOOD_SOURCES + 1)
    this.trailThreats = new Map();   // normalized trail -> default-kind threat ids
    this.events = 0;
    this.minT = Infinity;
    this.maxT = -Infinity;
    // event columns
    this.cap = 0;
    this.n = 0;
    this.strings = [''];
    this.stringIds = new Map([['', 0]]);
    this.colT = new Float64Array(0);
    this.colThreat = new Uint32Array(0);
    this.colSensor = new Uint32Array(0);
    this.colSrc = new Uint32Array(0);
    this.colSport = new Uint32Array(0);
    this.colDst = new Uint32Array(0);
    this.colDport = new Uint32Array(0);
    this.colProto = new Uint32Array(0);
    this.colInfo = new Uint32Array(0);
    this.dropped = 0;
  }

  intern(s) {
    let id = this.stringIds.get(s);
    if (id === undefined) { id = this.strings.length; this.strings.push(s); this.stringIds.set(s, id); }
    return id;
  }

  grow() {
    const cap = Math.min(Math.max(this.cap * 2, 65536), EVENT_CAP);
    const g = (old, Type) => { const a = new Type(cap); a.set(old); return a; };
    this.colT = g(this.colT, Float64Array);
    for (const name of ['colThreat', 'colSensor', 'colSrc', 'colSport', 'colDst', 'colDport', 'colProto', 'colInfo']) {
      this[name] = g(this[name], Uint32Array);
    }
    this.cap = cap;
  }

  threatFor(rec) {
    const norm = normalizeTrail(rec.trail);
    let kind = kindOf(rec);
    if (kind === 'default') {
      let sources = this.trailSources.get(norm);
      if (sources === undefined) { sources = new Set(); this.trailSources.set(norm, sources); }
      if (sources.size <= FLOOD_SOURCES && !sources.has(rec.src)) {
        sources.add(rec.src);
        if (sources.size > FLOOD_SOURCES) this.mergeFlood(norm, rec);
      }
      if (sources.size > FLOOD_SOURCES) kind = 'flood';
    }
    const key = keyOf(kind, rec, norm);
    let threat = this.byKey.get(key);
    if (threat === undefined) {
      threat = new Threat(this.threats.length, key, kind, rec);
      this.threats.push(threat);
      this.byKey.set(key, threat);
      if (kind === 'default') {
        const ids = this.trailThreats.get(norm);
        if (ids === undefined) this.trailThreats.set(norm, [threat.id]); else ids.push(threat.id);
      }
    }
    return threat;
  }

  /** A trail crossed FLOOD_SOURCES sources: fold its per-source threats into one flood threat. */
  mergeFlood(norm, rec) {
    const key = keyOf('flood', rec, norm);
    const flood = new Threat(this.threats.length, key, 'flood', rec);
    this.threats.push(flood);
    this.byKey.set(key, flood);
    for (const id of this.trailThreats.get(norm) || []) {
      const t = this.threats[id];
      t.alias = flood.id;
      this.byKey.delete(t.key);
      flood.count += t.count;
      flood.first = Math.min(flood.first, t.first);
      flood.last = Math.max(flood.last, t.last);
      for (let h = 0; h < 24; h++) flood.hist[h] += t.hist[h];
      for (const f of ['src', 'sport', 'dst', 'dport', 'proto', 'sensor']) for (const v of t[f]) addTo(flood, f, v);
      flood.over |= t.over;
      flood.lan = flood.lan || t.lan;
      flood.sev = Math.max(flood.sev, t.sev);
    }
    this.trailThreats.delete(norm);
  }

  add(rec) {
    const threat = this.threatFor(rec);
    const t = rec.t;
    threat.count++;
    if (threat.sev < 2 && (rec.info !== threat.info || rec.ref !== threat.ref)) {
      const sev = severityOf(rec.info, rec.ref);
      if (sev > threat.sev) threat.sev = sev;
    }
    if (t < threat.first) threat.first = t;
    if (t > threat.last) threat.last = t;
    threat.hist[Math.floor((t % 86400) / 3600)]++;
    addTo(threat, 'src', rec.src);
    addTo(threat, 'sport', rec.sport);
    addTo(threat, 'dst', rec.dst);
    addTo(threat, 'dport', rec.dport);
    addTo(threat, 'proto', rec.proto);
    addTo(threat, 'sensor', rec.sensor);
    if (!threat.lan && (isPrivate(rec.src) || isPrivate(rec.dst))) threat.lan = true;
    this.events++;
    if (t < this.minT) this.minT = t;
    if (t > this.maxT) this.maxT = t;
    if (this.n >= this.cap) {
      if (this.cap >= EVENT_CAP) { this.dropped++; return; }
      this.grow();
    }
    const i = this.n++;
    this.colT[i] = t;
    this.colThreat[i] = threat.id;
    this.colSensor[i] = this.intern(rec.sensor);
    this.colSrc[i] = this.intern(rec.src);
    this.colSport[i] = this.intern(rec.sport);
    this.colDst[i] = this.intern(rec.dst);
    this.colDport[i] = this.intern(rec.dport);
    this.colProto[i] = this.intern(rec.proto);
    this.colInfo[i] = rec.info === threat.info ? 0 : this.intern(rec.info);
  }

  /** The live (not merged) threat a stored threat id resolves to. */
  resolve(id) {
    let t = this.threats[id];
    while (t.alias >= 0) t = this.threats[t.alias];
    return t;
  }

  /** Events of one threat (newest last), at most `limit`, as plain objects. */
  eventsOf(threat, limit) {
    const out = [];
    const s = this.strings;
    for (let i = 0; i < this.n; i++) {
      const owner = this.colThreat[i];
      if (owner !== threat.id && this.resolve(owner) !== threat) continue;
      out.push({
        t: this.colT[i], sensor: s[this.colSensor[i]], src: s[this.colSrc[i]], sport: s[this.colSport[i]],
        dst: s[this.colDst[i]], dport: s[this.colDport[i]], proto: s[this.colProto[i]],
        info: this.colInfo[i] ? s[this.colInfo[i]] : threat.info,
      });
      if (out.length >= limit) break;
    }
    return out;
  }
}
