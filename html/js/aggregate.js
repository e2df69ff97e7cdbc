// Folds parsed events into threats (the original's aggregation keys) and keeps every event in
// compact columns so the drawer can list a threat's events.
// Where it sits: worker.js owns one Aggregator per load; logparse.js records go in through add();
// the worker's view code reads `threats`, the string table and the columns.
//
// Keys: DNS exhaustion -> info + trail; DGA -> src + info; heuristic -> src + trail + info;
// default -> src + normalized trail; a normalized trail seen from more than FLOOD_SOURCES distinct
// sources becomes one "flood" threat. UID = murmur3(key, 13) in hex; special kinds end in N0/F0/D0.
//
// Server summaries (EVENT_STORE on ClickHouse): addSummary() makes one threat per /threats entry
// (type, trail, info, reference) with its count, first/last seen, sources and per-hour counts; such
// a threat keeps no event columns (`summary` holds the entry, worker.js loads its lines on demand).
//
// Speed: every field is interned once into `strings` (ids are small ints); threat keys are
// numbers built from ids, per-threat sets hold ids, and per-string facts (normalized trail, kind,
// severity, private address, comma list) are computed once per distinct string. A day streamed
// from /events arrives as bytes (logparse.js ByteLineParser -> addScanned): fields are looked up
// by their bytes (bytetable.js), so only a value never seen before becomes a string.

import { classOf, isPrivate, murmur3, Severity } from './classify.js';
import { ByteTable } from './bytetable.js';
import { parseRange, newRecord, wallSeconds } from './logparse.js';
import { addMember, mergeMembers } from './members.js';

export const SET_CAP = 100;            // distinct values kept per threat and field (but destinations and ports)
export const FLOOD_SOURCES = 50;
export const EVENT_CAP = 5000000;      // events kept in columns (aggregation itself has no cap)
const K = 67108864;                   // 2^26: numeric key = a * K + b (ids stay far below 2^26)
export const PORT_BASE = 65537;       // port codes above this are string ids (see Aggregator.port)
const LAN_CHECKED = 1, PRIVATE = 2, COMMA = 4;   // Aggregator.flags bits per string id
const BAD_TAIL = 0x7fffffff;          // tailTable value of a tail that does not parse

const KIND_SUFFIX = { dns: 'N0', flood: 'F0', dga: 'D0' };
const KINDS = ['default', 'dns', 'dga', 'heur'];

export const HOURLY_DAYS = 4;         // ranges up to this many days get one bucket per hour
export const MAX_BINS = 168;          // longer ranges: one bucket per day (or per N days beyond this)

/**
 * The time buckets of a load: {base, step, bins, days}. `base` is the range's first midnight in
 * wall-clock seconds (the log's own clock, as logparse.js reads it). A single day is 24 hours;
 * up to HOURLY_DAYS days one bucket per hour of the whole range; longer ranges one per day, or
 * per N days when that would exceed MAX_BINS. No argument: one day folded by hour of day.
 */
export function timeGrid(from, to) {
  if (!from) return { base: 0, step: 3600, bins: 24, days: 1, fold: true };
  const base = Date.parse(from + 'T00:00:00Z') / 1000;
  const last = Date.parse((to || from) + 'T00:00:00Z') / 1000;
  const days = Math.max(1, Math.round((last - base) / 86400) + 1);
  if (days <= HOURLY_DAYS) return { base, step: 3600, bins: days * 24, days, fold: false };
  const per = Math.ceil(days / MAX_BINS);
  return { base, step: 86400 * per, bins: Math.ceil(days / per), days, fold: false };
}

export function normalizeTrail(trail) {
  return trail.toLowerCase().replace(/[()]/g, '').replace(/\s+/g, ' ').trim();
}

function kindOf(info, ref) {
  if (/dns exhaustion/i.test(info)) return 1;
  if (/\bdga\b|(entropy|consonant) threshold no such domain/i.test(info)) return 2;
  if (/\(heuristic\)/i.test(ref)) return 3;
  return 0;
}

export function uidOf(key, kind) {
  const hex = murmur3(key, 13).toString(16).padStart(8, '0');
  const suffix = KIND_SUFFIX[kind];
  return suffix ? hex.slice(0, 6) + suffix : hex;
}

/** A detached copy of a (possibly sliced) string, so a kept value does not pin a whole chunk. */
function detach(s) { return s.length > 12 ? (' ' + s).slice(1) : s; }

class Threat {
  constructor(id, key, kind, ids, strings, bins, sev) {
    this.id = id;
    this.kind = kind;
    this.uid = uidOf(key, kind);
    this.type = strings[ids.type];
    this.trail = strings[ids.trail];
    this.info = strings[ids.info];
    this.ref = strings[ids.ref];
    this.infoId = ids.info;
    this.refId = ids.ref;
    this.trailId = ids.trail;
    this.typeId = ids.type;
    this.cls = classOf(strings[ids.info]);
    this.sev = sev;          // 2 high, 1 medium, 0 low: the highest of its events
    this.count = 0;
    this.first = Infinity;
    this.last = -Infinity;
    this.hist = new Uint32Array(bins);   // events per time bucket (Aggregator.grid)
    this.src = new Set(); this.sport = new Set(); this.dst = new Set(); this.dport = new Set();
    this.proto = new Set(); this.sensor = new Set();
    this.over = 0;           // bit mask of sets that hit SET_CAP
    this.alias = -1;         // merged into another threat (flood) when >= 0
    this.lan = false;
    this.members = null;     // trail id -> events, once the threat holds a second trail (members.js)
    this.summary = null;     // a server summary's entry (addSummary): its lines load on demand
    this.src0 = 0;           // the first source's string id once the view code asked (worker.js firstSrc)
    // the values of its last event (addEvent adds a field to its set only when it changed)
    this.lastSrc = -1; this.lastSport = -1; this.lastDst = -1; this.lastDport = -1; this.lastProto = -1; this.lastSensor = -1;
  }
}

export const FIELD_BITS = { src: 1, sport: 2, dst: 4, dport: 8, proto: 16, sensor: 32 };
// A scan's targets and ports are its members: all kept, so a search finds every one of them.
const FIELD_CAP = { src: SET_CAP, sport: SET_CAP, dst: Infinity, dport: Infinity, proto: SET_CAP, sensor: SET_CAP };
// FIELD_CAP as a bit mask of the uncapped fields, for addTo (which knows a field by its bit)
const UNCAPPED = Object.keys(FIELD_CAP).reduce((m, f) => (FIELD_CAP[f] === Infinity ? m | FIELD_BITS[f] : m), 0);

export class Aggregator {
  /** `severity`: the Severity rule of classify.js (the server's pattern); without one, all medium. */
  constructor(grid = timeGrid(), severity = new Severity('')) {
    this.grid = grid;
    this.severity = severity;
    this.sevOfPair = new Map();      // info id * K + ref id -> severity
    this.threats = [];
    this.maps = [new Map(), new Map(), new Map(), new Map()];   // per kind: id -> Map(id -> Threat)
    this.floods = new Map();         // normalized trail id -> flood Threat
    this.trailSources = new Map();   // normalized trail id -> Set of src ids (up to FLOOD_SOURCES + 1)
    this.trailThreats = new Map();   // normalized trail id -> default-kind threats
    this.normOf = new Map();         // trail id -> normalized trail id
    this.classOfPair = new Map();    // info id * K + ref id -> kind
    this.tails = new Map();          // raw "trail info reference" text -> {trail, info, ref, norm, kind} ids
    this.ids = { sensor: 0, src: 0, sport: 0, dst: 0, dport: 0, proto: 0, type: 0, trail: 0, info: 0, ref: 0, norm: 0, kind: 0 };
    this.events = 0;
    this.minT = Infinity;
    this.maxT = -Infinity;
    this.strings = [''];
    this.stringIds = new Map([['', 0]]);
    this.flags = new Uint8Array(1024);   // per string id: LAN_CHECKED, PRIVATE, COMMA bits
    this.flags[0] = LAN_CHECKED;
    this.byteIds = new ByteTable(14);    // field bytes -> string id
    this.bytePorts = new ByteTable(12);  // port bytes -> port code
    this.byteTails = new ByteTable(14);  // tail bytes -> index into tailList (BAD_TAIL: malformed)
    this.tailList = [];
    this.tailRec = newRecord();
    this.decoder = new TextDecoder('utf-8');
    // event columns
    this.cap = 0;
    this.n = 0;
    this.colT = new Float64Array(0);
    this.colThreat = new Uint32Array(0);
    this.colSensor = new Uint32Array(0);
    this.colSrc = new Uint32Array(0);
    this.colSport = new Uint32Array(0);
    this.colDst = new Uint32Array(0);
    this.colDport = new Uint32Array(0);
    this.colProto = new Uint32Array(0);
    this.colInfo = new Uint32Array(0);
    this.colTrail = new Uint32Array(0);   // each event's own trail (a grouped threat holds many)
    this.dropped = 0;
    this.valuesKey = -1;               // valueIndex(): the data it was built from, and the index
    this.valuesIdx = null;
  }

  /** The time bucket of a wall-clock time; times outside the range land in the first/last bucket. */
  bucket(t) {
    const g = this.grid;
    if (g.fold) return Math.floor((((t % 86400) + 86400) % 86400) / 3600);
    const b = Math.floor((t - g.base) / g.step);
    return b < 0 ? 0 : b >= g.bins ? g.bins - 1 : b;
  }

  intern(s) {
    let id = this.stringIds.get(s);
    if (id === undefined) {
      const kept = detach(s);
      id = this.strings.length;
      this.strings.push(kept);
      this.stringIds.set(kept, id);
      if (id >= this.flags.length) {
        const bigger = new Uint8Array(this.flags.length * 2);
        bigger.set(this.flags);
        this.flags = bigger;
      }
      if (kept.indexOf(',') >= 0) this.flags[id] = COMMA;
    }
    return id;
  }

  /** The string id of the UTF-8 bytes buf[start:end) (`-` is empty). */
  idAt(buf, start, end) {
    if (end - start === 1 && buf[start] === 45) return 0;
    const table = this.byteIds;
    const id = table.get(buf, start, end);
    return id >= 0 ? id : table.set(buf, start, end, this.intern(this.decoder.decode(buf.subarray(start, end))));
  }

  /** The port code (see port()) of the bytes buf[start:end); a plain number is read in place. */
  portAt(buf, start, end) {
    const n = end - start;
    if (n > 0 && n <= 5 && (n === 1 || buf[start] !== 48)) {
      let v = 0, i = start;
      for (; i < end; i++) {
        const c = buf[i] - 48;
        if (c < 0 || c > 9) break;
        v = v * 10 + c;
      }
      if (i === end && v <= 65535) return v + 1;
    }
    if (n === 1 && buf[start] === 45) return 0;
    const table = this.bytePorts;
    const code = table.get(buf, start, end);
    return code >= 0 ? code : table.set(buf, start, end, this.port(this.decoder.decode(buf.subarray(start, end))));
  }

  /** The tail entry (tailIds) of the bytes buf[start:end), or null when that tail does not parse. */
  tailAt(buf, start, end) {
    const table = this.byteTails;
    let k = table.get(buf, start, end);
    if (k < 0) {
      const text = this.decoder.decode(buf.subarray(start, end));
      const rec = parseRange(text, 0, text.length, this.tailRec, 6);
      if (rec) { k = this.tailList.length; this.tailList.push(this.tailIds(rec)); } else k = BAD_TAIL;
      table.set(buf, start, end, k);
    }
    return k === BAD_TAIL ? null : this.tailList[k];
  }

  str(id) { return this.strings[id]; }

  isLan(id) {
    let f = this.flags[id];
    if (!(f & LAN_CHECKED)) { f |= LAN_CHECKED | (isPrivate(this.strings[id]) ? PRIVATE : 0); this.flags[id] = f; }
    return (f & PRIVATE) !== 0;
  }

  /** Room in the event columns for `events` (a size known up front spares the copies of growing). */
  reserve(events) { if (events > this.cap) this.grow(events); }

  grow(want = 0) {
    const cap = Math.min(Math.max(this.cap * 2, 65536, want), EVENT_CAP);
    const g = (old, Type) => { const a = new Type(cap); a.set(old); return a; };
    this.colT = g(this.colT, Float64Array);
    for (const name of ['colThreat', 'colSensor', 'colSrc', 'colSport', 'colDst', 'colDport', 'colProto', 'colInfo', 'colTrail']) {
      this[name] = g(this[name], Uint32Array);
    }
    this.cap = cap;
  }

  norm(trailId) {
    let id = this.normOf.get(trailId);
    if (id === undefined) { id = this.intern(normalizeTrail(this.strings[trailId])); this.normOf.set(trailId, id); }
    return id;
  }

  kindOfIds(infoId, refId) {
    const key = infoId * K + refId;
    let kind = this.classOfPair.get(key);
    if (kind === undefined) { kind = kindOf(this.strings[infoId], this.strings[refId]); this.classOfPair.set(key, kind); }
    return kind;
  }

  /** Ports are stored as port + 1 (1..65536) when plain numbers, else as string id + PORT_BASE. */
  port(text) {
    const n = text.length;
    if (n === 0) return 0;
    if (n <= 5) {
      let v = 0;
      for (let i = 0; i < n; i++) {
        const c = text.charCodeAt(i) - 48;
        if (c < 0 || c > 9) { v = -1; break; }
        v = v * 10 + c;
      }
      if (v >= 0 && v <= 65535 && (n === 1 || text.charCodeAt(0) !== 48)) return v + 1;
    }
    return this.intern(text) + PORT_BASE;
  }

  portText(code) { return code === 0 ? '' : code <= 65536 ? String(code - 1) : this.strings[code - PORT_BASE]; }

  tailIds(rec) {
    let e = this.tails.get(rec.tail);
    if (e === undefined) {
      const trail = this.intern(rec.trail), info = this.intern(rec.info), ref = this.intern(rec.ref);
      e = { trail, info, ref, norm: this.norm(trail), kind: this.kindOfIds(info, ref),
        proto: this.intern(rec.proto), type: this.intern(rec.type) };
      this.tails.set(detach(rec.tail), e);
    }
    return e;
  }

  /** The severity of an (info, reference) pair, computed once per distinct pair. */
  sevOf(ids) {
    const key = ids.info * K + ids.ref;
    let sev = this.sevOfPair.get(key);
    if (sev === undefined) { sev = this.severity.of(this.strings[ids.info], this.strings[ids.ref]); this.sevOfPair.set(key, sev); }
    return sev;
  }

  threatFor(ids) {
    const normId = ids.norm;
    const kind = ids.kind;
    // two-level maps with small-integer keys (no key allocation per event)
    let a, b;
    if (kind === 0) {
      const flood = this.floods.get(normId);
      if (flood !== undefined) return flood;
      a = normId; b = ids.src;
    } else if (kind === 1) { a = ids.info; b = normId; }
    else if (kind === 2) { a = ids.info; b = ids.src; }
    else { a = ids.trail; b = ids.src; }
    const outer = this.maps[kind];
    let inner = outer.get(a);
    if (inner === undefined) { inner = new Map(); outer.set(a, inner); }
    let threat;
    if (kind === 3) {
      let byInfo = inner.get(b);
      if (byInfo === undefined) { byInfo = new Map(); inner.set(b, byInfo); }
      threat = byInfo.get(ids.info);
      if (threat === undefined) { threat = this.newThreat(ids, kind); byInfo.set(ids.info, threat); }
      return threat;
    }
    threat = inner.get(b);
    if (threat !== undefined) return threat;
    if (kind === 0) {
      let sources = this.trailSources.get(normId);
      if (sources === undefined) { sources = new Set(); this.trailSources.set(normId, sources); }
      sources.add(ids.src);
      if (sources.size > FLOOD_SOURCES) return this.mergeFlood(normId, ids);
    }
    threat = this.newThreat(ids, kind);
    inner.set(b, threat);
    if (kind === 0) {
      const list = this.trailThreats.get(normId);
      if (list === undefined) this.trailThreats.set(normId, [threat]); else list.push(threat);
    }
    return threat;
  }

  newThreat(ids, kind) {
    const s = this.strings;
    const normId = ids.norm;
    const text = kind === 0 ? `${s[ids.src]}\u0001${s[normId]}` : kind === 1 ? `${s[ids.info]}\u0001${s[normId]}`
      : kind === 2 ? `${s[ids.src]}\u0001${s[ids.info]}` : `${s[ids.src]}\u0001${s[ids.trail]}\u0001${s[ids.info]}`;
    const threat = new Threat(this.threats.length, text, KINDS[kind], ids, this.strings, this.grid.bins, this.sevOf(ids));
    this.threats.push(threat);
    return threat;
  }

  /** A trail crossed FLOOD_SOURCES sources: fold its per-source threats into one flood threat. */
  mergeFlood(normId, ids) {
    const flood = new Threat(this.threats.length, `flood\u0001${this.strings[normId]}`, 'flood', ids, this.strings, this.grid.bins,
      this.sevOf(ids));
    this.threats.push(flood);
    this.floods.set(normId, flood);
    for (const t of this.trailThreats.get(normId) || []) {
      t.alias = flood.id;
      mergeMembers(flood, t);
      flood.first = Math.min(flood.first, t.first);
      flood.last = Math.max(flood.last, t.last);
      for (let h = 0; h < flood.hist.length; h++) flood.hist[h] += t.hist[h];
      for (const f of ['src', 'sport', 'dst', 'dport', 'proto', 'sensor']) {
        const set = flood[f];
        for (const v of t[f]) { if (set.size >= FIELD_CAP[f]) { flood.over |= FIELD_BITS[f]; break; } set.add(v); }
      }
      flood.over |= t.over;
      flood.lan = flood.lan || t.lan;
      flood.sev = Math.max(flood.sev, t.sev);
    }
    this.trailThreats.delete(normId);
    this.maps[0].delete(normId);
    return flood;
  }

  /** Add a string id (src, dst, proto, sensor) or port code (sport, dport: `isPort`) to one of a
   * threat's sets (`bit`: its FIELD_BITS); a comma list adds each of its items. */
  addTo(threat, set, bit, id, isPort) {
    if (id === 0) return;
    const sid = isPort ? id - PORT_BASE : id;
    if (sid > 0 && (this.flags[sid] & COMMA)) {
      for (const part of this.strings[sid].split(',')) {
        const p = part.trim();
        if (p) this.addTo(threat, set, bit, isPort ? this.port(p) : this.intern(p), isPort);
      }
      return;
    }
    if ((bit & UNCAPPED) === 0 && set.size >= SET_CAP) { if (!set.has(id)) threat.over |= bit; return; }
    set.add(id);
  }

  /** One parsed record (logparse.js: live lines, lines off the fast path). */
  add(rec) {
    this.addEvent(rec.t, this.intern(rec.sensor), this.intern(rec.src), this.port(rec.sport), this.intern(rec.dst),
      this.port(rec.dport), this.tailIds(rec));
  }

  /** One line as ByteLineParser found it (byte ranges in `c`); false when its tail does not parse. */
  addScanned(buf, c, end, t) {
    const tail = this.tailAt(buf, c[12], end);
    if (tail === null) return false;
    this.addEvent(t, this.idAt(buf, c[2], c[3]), this.idAt(buf, c[4], c[5]), this.portAt(buf, c[6], c[7]),
      this.idAt(buf, c[8], c[9]), this.portAt(buf, c[10], c[11]), tail);
    return true;
  }

  addEvent(t, sensor, src, sport, dst, dport, tail) {
    const ids = this.ids;
    ids.trail = tail.trail; ids.info = tail.info; ids.ref = tail.ref; ids.norm = tail.norm; ids.kind = tail.kind;
    ids.proto = tail.proto; ids.type = tail.type;
    ids.sensor = sensor; ids.src = src; ids.sport = sport; ids.dst = dst; ids.dport = dport;
    const threat = this.threatFor(ids);
    if (threat.members !== null || ids.trail !== threat.trailId) addMember(threat, ids.trail, 1);
    threat.count++;
    if (threat.sev < 2 && (ids.info !== threat.infoId || ids.ref !== threat.refId)) {
      const sev = this.sevOf(ids);
      if (sev > threat.sev) threat.sev = sev;
    }
    if (t < threat.first) threat.first = t;
    if (t > threat.last) threat.last = t;
    threat.hist[this.bucket(t)]++;
    // a value the threat's previous event had is in its set already (or was counted over the cap)
    if (src !== threat.lastSrc) { threat.lastSrc = src; this.addTo(threat, threat.src, 1, src, false); }
    if (sport !== threat.lastSport) { threat.lastSport = sport; this.addTo(threat, threat.sport, 2, sport, true); }
    if (dst !== threat.lastDst) { threat.lastDst = dst; this.addTo(threat, threat.dst, 4, dst, false); }
    if (dport !== threat.lastDport) { threat.lastDport = dport; this.addTo(threat, threat.dport, 8, dport, true); }
    if (ids.proto !== threat.lastProto) { threat.lastProto = ids.proto; this.addTo(threat, threat.proto, 16, ids.proto, false); }
    if (sensor !== threat.lastSensor) { threat.lastSensor = sensor; this.addTo(threat, threat.sensor, 32, sensor, false); }
    if (!threat.lan && (this.isLan(src) || this.isLan(dst))) threat.lan = true;
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
    this.colSensor[i] = ids.sensor;
    this.colSrc[i] = ids.src;
    this.colSport[i] = ids.sport;
    this.colDst[i] = ids.dst;
    this.colDport[i] = ids.dport;
    this.colProto[i] = ids.proto;
    this.colInfo[i] = ids.info;
    this.colTrail[i] = ids.trail;
  }

  /** One threat of a server summary (/threats entry): no events kept, its lines load on demand. */
  addSummary(s) {
    const v = (x) => (x === '-' ? '' : x);       // empty fields as logparse.js gives them
    const ids = { trail: this.intern(v(s.trail)), info: this.intern(v(s.info)), ref: this.intern(v(s.reference)),
      type: this.intern(v(s.type)), src: 0 };
    ids.norm = this.norm(ids.trail);
    ids.kind = this.kindOfIds(ids.info, ids.ref);
    const key = `${s.type}\u0001${s.trail}\u0001${s.info}\u0001${s.reference}`;
    const threat = new Threat(this.threats.length, key, KINDS[ids.kind], ids, this.strings,
      this.grid.bins, this.sevOf(ids));
    threat.summary = { type: s.type, trail: s.trail, info: s.info, reference: s.reference };   // as stored: /threat
    threat.count = s.count;
    threat.first = wallSeconds(s.first);
    threat.last = wallSeconds(s.last);
    for (const [hour, n] of s.hours) threat.hist[this.bucket(this.grid.base + hour * 3600 + 1800)] += n;
    for (const src of s.sources.map(v).filter(Boolean)) {
      const id = this.intern(src);
      this.addTo(threat, threat.src, FIELD_BITS.src, id, false);
      if (!threat.lan && this.isLan(id)) threat.lan = true;
    }
    if (s.source_count > threat.src.size) threat.over |= FIELD_BITS.src;
    this.threats.push(threat);
    this.events += s.count;
    if (threat.first < this.minT) this.minT = threat.first;
    if (threat.last > this.maxT) this.maxT = threat.last;
    return threat;
  }

  /** A summary threat's own lines (records from logparse.js) as eventsOf() gives them; their
   * other fields (destinations, ports, sensors) join the threat's sets. */
  summaryEvents(threat, records, limit) {
    const out = [];
    for (const rec of records) {
      for (const f of ['dst', 'sport', 'dport', 'proto', 'sensor']) {
        const isPort = f === 'sport' || f === 'dport';
        this.addTo(threat, threat[f], FIELD_BITS[f], isPort ? this.port(rec[f]) : this.intern(rec[f]), isPort);
      }
      if (out.length < limit) {
        out.push({ t: rec.t, sensor: rec.sensor, src: rec.src, sport: rec.sport, dst: rec.dst, dport: rec.dport,
          proto: rec.proto, info: rec.info, trail: rec.trail });
      }
    }
    return out;
  }

  /** Every threat's source, destination and sensor ids in one array, threat i's at
   * vals[offs[i]:offs[i + 1]], and its destination port codes likewise in ports/portOffs (for
   * searches that read them all); rebuilt when the data grew. */
  valueIndex() {
    const key = this.events * 4294967296 + this.threats.length;
    if (this.valuesKey === key) return this.valuesIdx;
    const threats = this.threats;
    const offs = new Int32Array(threats.length + 1);
    const portOffs = new Int32Array(threats.length + 1);
    let n = 0, m = 0;
    for (let i = 0; i < threats.length; i++) {
      const t = threats[i];
      n += t.src.size + t.dst.size + t.sensor.size;
      m += t.dport.size;
      offs[i + 1] = n;
      portOffs[i + 1] = m;
    }
    const vals = new Int32Array(n);
    const ports = new Int32Array(m);
    let k = 0, j = 0;
    for (const t of threats) {
      for (const v of t.src) vals[k++] = v;
      for (const v of t.dst) vals[k++] = v;
      for (const v of t.sensor) vals[k++] = v;
      for (const v of t.dport) ports[j++] = v;
    }
    this.valuesKey = key;
    this.valuesIdx = { offs, vals, portOffs, ports };
    return this.valuesIdx;
  }

  /** Text values of a threat's id set (src, dst, proto, sensor) or port set (sport, dport). */
  values(threat, field, limit = Infinity) {
    const out = [];
    const isPort = field === 'sport' || field === 'dport';
    for (const v of threat[field]) {
      if (out.length >= limit) break;
      out.push(isPort ? this.portText(v) : this.strings[v]);
    }
    return out;
  }

  /** The live (not merged) threat a stored threat id resolves to. */
  resolve(id) {
    let t = this.threats[id];
    while (t.alias >= 0) t = this.threats[t.alias];
    return t;
  }

  /** Events of one threat (oldest first), at most `limit`, as plain objects. */
  eventsOf(threat, limit) {
    const out = [];
    const s = this.strings;
    for (let i = 0; i < this.n; i++) {
      const owner = this.colThreat[i];
      if (owner !== threat.id && this.resolve(owner) !== threat) continue;
      out.push({
        t: this.colT[i], sensor: s[this.colSensor[i]], src: s[this.colSrc[i]], sport: this.portText(this.colSport[i]),
        dst: s[this.colDst[i]], dport: this.portText(this.colDport[i]), proto: s[this.colProto[i]], info: s[this.colInfo[i]],
        trail: s[this.colTrail[i]],
      });
      if (out.length >= limit) break;
    }
    return out;
  }
}
