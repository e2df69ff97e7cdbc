// The search language (spec §3.2): field tokens, negation, globs, CIDR, numeric comparisons,
// AND/OR/NOT and parentheses. parseQuery(text) -> AST (throws QueryError with a position);
// compileQuery(ast) -> predicate(threat, local) where `local` holds the browser-side state
// (tags, notes, triage status) keyed by threat UID.
// Where it sits: the page parses to validate and to draw chips; the worker compiles and filters.

import { PORT_BASE } from './aggregate.js';
import { cidrMatcher, SEV_NAMES } from './classify.js';

export const FIELDS = ['src', 'dst', 'port', 'sport', 'proto', 'type', 'trail', 'info', 'ref', 'tag', 'note',
  'uid', 'sensor', 'class', 'sev', 'dir', 'status', 'count', 'events', 'country'];
const NUMERIC = new Set(['port', 'sport', 'count', 'events']);
const EXACT = new Set(['proto', 'type', 'class', 'sev', 'dir', 'status', 'country']);
const IP_IN_TRAIL = /(?<![\w.:])(\d{1,3}(?:\.\d{1,3}){3})(?![\w.])/;

/** The address that places a threat on the world map and answers `country:`, by the server's
 *  /geo rule for an event (core/update/geo.py event_country): an IPv4 address inside the trail;
 *  none for DNS; the source for PATH and PORT; otherwise the destination ('' when none). */
export function placedAddress(type, trail, src, dst) {
  const inTrail = IP_IN_TRAIL.exec(String(trail || ''));
  if (inTrail) return inTrail[1];
  if (type === 'DNS') return '';
  const a = type === 'PATH' || type === 'PORT' ? src : dst;
  return a && a !== '-' ? a : '';
}

const firstOf = (set) => { for (const v of set) return v; return 0; };

/** placedAddress of a threat of the aggregate (its first source and destination); `inTrail`, when
 *  given, caches the trail's address per trail id (Map). */
export function threatPlace(t, strings, inTrail) {
  if (inTrail) {
    let ip = inTrail.get(t.trailId);
    if (ip === undefined) { ip = (IP_IN_TRAIL.exec(String(t.trail || '')) || ['', ''])[1]; inTrail.set(t.trailId, ip); }
    if (ip) return ip;
  }
  return placedAddress(t.type, t.trail, strings[firstOf(t.src)], strings[firstOf(t.dst)]);
}

export class QueryError extends Error {
  constructor(message, pos) { super(message); this.pos = pos; }
}

/** Tokens: {k:'(' | ')' | 'AND' | 'OR' | 'NOT' | 'TERM', ...}. */
export function lexQuery(text) {
  const tokens = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i];
    if (/\s/.test(c)) { i++; continue; }
    if (c === '(' || c === ')') { tokens.push({ k: c, pos: i }); i++; continue; }
    if (text.startsWith('&&', i)) { tokens.push({ k: 'AND', pos: i }); i += 2; continue; }
    if (text.startsWith('||', i)) { tokens.push({ k: 'OR', pos: i }); i += 2; continue; }
    const pos = i;
    let neg = false;
    if ((c === '-' || c === '!') && i + 1 < n && !/[\s()]/.test(text[i + 1])) {
      if (c === '!') { tokens.push({ k: 'NOT', pos }); i++; continue; }
      neg = true; i++;
    }
    let field = null;
    const fm = /^([a-z]+):/i.exec(text.slice(i, i + 12));
    if (fm && FIELDS.includes(fm[1].toLowerCase())) { field = fm[1].toLowerCase(); i += fm[0].length; }
    let value = '';
    let quoted = false;
    if (text[i] === '"') {
      const end = text.indexOf('"', i + 1);
      if (end < 0) throw new QueryError('unterminated quote', i);
      value = text.slice(i + 1, end); quoted = true; i = end + 1;
    } else {
      const start = i;
      while (i < n && !/[\s()]/.test(text[i])) {
        if (text[i] === '"') {          // comma list with a quoted item: a,"b c"
          const end = text.indexOf('"', i + 1);
          if (end < 0) throw new QueryError('unterminated quote', i);
          i = end + 1;
        } else i++;
      }
      value = text.slice(start, i);
    }
    if (!field && !neg && !quoted) {
      const up = value.toUpperCase();
      if (up === 'AND' || up === 'OR' || up === 'NOT') { tokens.push({ k: up, pos }); continue; }
    }
    if (field && value === '') throw new QueryError(`missing value after ${field}:`, i);
    if (value === '' && !quoted) throw new QueryError('empty term', pos);
    tokens.push({ k: 'TERM', pos, end: i, neg, field, value, quoted });
  }
  return tokens;
}

/** AST: {op:'and'|'or', args} | {op:'not', arg} | {op:'term', neg, field, value, quoted} | null (empty). */
export function parseQuery(text) {
  const tokens = lexQuery(text || '');
  let p = 0;
  const peek = () => tokens[p];
  function parseOr() {
    const args = [parseAnd()];
    while (peek() && peek().k === 'OR') { p++; args.push(parseAnd()); }
    return args.length === 1 ? args[0] : { op: 'or', args };
  }
  function parseAnd() {
    const args = [parseNot()];
    for (;;) {
      const t = peek();
      if (!t || t.k === 'OR' || t.k === ')') break;
      if (t.k === 'AND') p++;
      args.push(parseNot());
    }
    return args.length === 1 ? args[0] : { op: 'and', args };
  }
  function parseNot() {
    const t = peek();
    if (!t) throw new QueryError('expression expected', text.length);
    if (t.k === 'NOT') { p++; return { op: 'not', arg: parseNot() }; }
    if (t.k === '(') {
      p++;
      const inner = parseOr();
      if (!peek() || peek().k !== ')') throw new QueryError('missing )', t.pos);
      p++;
      return inner;
    }
    if (t.k === 'TERM') { p++; return { op: 'term', neg: t.neg, field: t.field, value: t.value, quoted: t.quoted, pos: t.pos }; }
    throw new QueryError(`unexpected ${t.k}`, t.pos);
  }
  if (!tokens.length) return null;
  const ast = parseOr();
  if (p < tokens.length) throw new QueryError(`unexpected ${tokens[p].k}`, tokens[p].pos);
  return ast;
}

/** Split a comma list, honouring quoted items. */
function splitList(value, quoted) {
  if (quoted) return [value];
  const out = [];
  let cur = '', inQ = false;
  for (const ch of value) {
    if (ch === '"') { inQ = !inQ; continue; }
    if (ch === ',' && !inQ) { out.push(cur); cur = ''; continue; }
    cur += ch;
  }
  out.push(cur);
  return out.filter((x) => x !== '');
}

function globRegex(glob) {
  const body = glob.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*');
  return new RegExp('^' + body + '$', 'i');
}

function numberMatcher(item) {
  let m = /^(>=|<=|>|<|=)?\s*(\d+(?:\.\d+)?)$/.exec(item);
  if (m) {
    const v = +m[2];
    switch (m[1]) {
      case '>': return (x) => x > v;
      case '>=': return (x) => x >= v;
      case '<': return (x) => x < v;
      case '<=': return (x) => x <= v;
      default: return (x) => x === v;
    }
  }
  m = /^(\d+)-(\d+)$/.exec(item);
  if (m) { const a = +m[1], b = +m[2]; return (x) => x >= a && x <= b; }
  throw new QueryError(`not a number, range or comparison: ${item}`, 0);
}

const SEV_ALIASES = { hi: 2, high: 2, h: 2, md: 1, med: 1, medium: 1, m: 1, lo: 0, low: 0, l: 0 };

/** Matcher for one string value against one item of a term. */
function textMatcher(field, item) {
  if (item.includes('*')) { const re = globRegex(item); return (s) => re.test(s); }
  const low = item.toLowerCase();
  if (field === 'src' || field === 'dst') {
    const cidr = cidrMatcher(item);
    if (cidr) return cidr;
    if (/^[\d.]+$|^[0-9a-f:]+:[0-9a-f:.]*$/i.test(item)) return (s) => s.toLowerCase() === low;
  }
  if (EXACT.has(field) || field === 'uid') return (s) => s.toLowerCase() === low;
  return (s) => s.toLowerCase().includes(low);
}

function anyOf(values, test) {
  for (const v of values) if (test(v)) return true;
  return false;
}

/** Any of a threat's trails: its label, and every member of a grouped threat (members.js). */
function anyTrail(t, test) {
  return t.members ? anyOf(t.members.keys(), test) : test(t.trailId);
}

/** Memoised test over string ids: each distinct string is tested once per compiled query. */
function memoIds(agg, test) {
  let memo = new Uint8Array(agg.strings.length + 1024);     // 0 unknown, 1 no, 2 yes
  return (id) => {
    if (id >= memo.length) { const bigger = new Uint8Array(id * 2 + 1024); bigger.set(memo); memo = bigger; }
    let r = memo[id];
    if (r === 0) { r = test(agg.strings[id]) ? 2 : 1; memo[id] = r; }
    return r === 2;
  };
}

/** Memoised test over port codes (aggregate.js port()): a number is tested once per compiled
 * query, a port text that is not a number through the string memo `anyId`. */
function memoPorts(agg, test, anyId) {
  const memo = new Uint8Array(PORT_BASE);     // 0 unknown, 1 no, 2 yes
  return (code) => {
    if (code >= PORT_BASE) return anyId(code - PORT_BASE);
    let r = memo[code];
    if (r === 0) { r = test(agg.portText(code)) ? 2 : 1; memo[code] = r; }
    return r === 2;
  };
}

function direction(t, agg) {
  let srcLan = false, dstLan = false, dstAny = false;
  for (const s of t.src) if (agg.isLan(s)) srcLan = true;
  for (const d of t.dst) { dstAny = true; if (agg.isLan(d)) dstLan = true; }
  if (srcLan && (dstLan || !dstAny)) return 'lan';
  if (srcLan) return 'out';
  return 'in';
}

function portNumber(agg, code) { return code <= 65536 ? code - 1 : +agg.portText(code); }

function termPredicate(term, agg) {
  const items = splitList(term.value, term.quoted);
  const field = term.field;
  if (!items.length) throw new QueryError('empty value', term.pos);
  if (NUMERIC.has(field)) {
    const ms = items.map(numberMatcher);
    if (field === 'count' || field === 'events') return (t) => ms.some((m) => m(t.count));
    const key = field === 'port' ? 'dport' : 'sport';
    return (t) => anyOf(t[key], (code) => { const v = portNumber(agg, code); return ms.some((m) => m(v)); });
  }
  if (field === 'sev') {
    const wanted = items.map((x) => {
      const v = SEV_ALIASES[x.toLowerCase()];
      if (v === undefined) throw new QueryError(`severity is high, medium or low: ${x}`, term.pos);
      return v;
    });
    return (t) => wanted.includes(t.sev);
  }
  const tests = items.map((x) => textMatcher(field, x));
  const any = (s) => tests.some((m) => m(s));
  const anyId = memoIds(agg, any);
  const anyPort = memoPorts(agg, any, anyId);
  const sevHit = SEV_NAMES.map((name) => any(name));
  switch (field) {
    case 'src': case 'dst': case 'proto': case 'sensor':
      return (t) => anyOf(t[field], anyId);
    case 'type': return (t) => anyId(t.typeId);
    case 'trail': return (t) => anyTrail(t, anyId);
    case 'info': return (t) => anyId(t.infoId);
    case 'ref': return (t) => anyId(t.refId);
    case 'uid': return (t) => any(t.uid);
    case 'class': return (t) => any(t.cls);
    case 'dir': return (t) => any(direction(t, agg));
    case 'tag': return (t, local) => anyOf(local.tags[t.uid] || [], any);
    case 'note': return (t, local) => any(local.notes[t.uid] || '');
    case 'status': return (t, local) => any(local.triage[t.uid] || 'new');
    case 'country': { // the page puts the countries it learnt from the server in local.countries
      const inTrail = new Map();
      return (t, local) => {
        const cc = local.countries && local.countries[threatPlace(t, agg.strings, inTrail)];
        return !!cc && any(cc);
      };
    }
    default: { // bare word: any visible text, every member trail included (one loop per kind of set,
      // so each inlines its memo)
      let index = null;            // agg.valueIndex(): every threat's addresses, sensors and ports
      const valueIn = (i) => {
        const { offs, vals, portOffs, ports } = index;
        for (let k = offs[i], end = offs[i + 1]; k < end; k++) if (anyId(vals[k])) return true;
        for (let k = portOffs[i], end = portOffs[i + 1]; k < end; k++) if (anyPort(ports[k])) return true;
        return false;
      };
      // a UID is hex with an N0/F0/D0 kind suffix: only such text (or a glob) can match one
      const uidCan = items.some((x) => x.includes('*') || /^[0-9a-fn]{1,8}$/i.test(x));
      let tagsOf = null, anyTags = false;
      return (t, local) => {
        if (sevHit[t.sev] || anyTrail(t, anyId) || anyId(t.infoId) || anyId(t.typeId) || anyId(t.refId)) return true;
        if (index === null) index = agg.valueIndex();
        if (valueIn(t.id) || (uidCan && any(t.uid))) return true;
        if (local.tags !== tagsOf) { tagsOf = local.tags; anyTags = Object.keys(tagsOf).length > 0; }
        return anyTags && anyOf(local.tags[t.uid] || [], any);
      };
    }
  }
}

/** The test, over trail string ids, of the positive `trail:` terms joined by AND at the top of a
 *  query (null when there are none): a view counts only the events whose own trail passes it. */
export function memberTest(ast, agg) {
  const terms = !ast ? [] : ast.op === 'and' ? ast.args : [ast];
  const tests = terms.filter((a) => a.op === 'term' && a.field === 'trail' && !a.neg).map((a) => {
    const ms = splitList(a.value, a.quoted).map((x) => textMatcher('trail', x));
    return memoIds(agg, (s) => ms.some((m) => m(s)));
  });
  return tests.length ? (id) => tests.every((f) => f(id)) : null;
}

/** Compile an AST (or null) into predicate(threat, local); `agg` resolves the threat's id sets. */
export function compileQuery(ast, agg) {
  if (!ast) return () => true;
  switch (ast.op) {
    case 'and': {
      const fs = ast.args.map((a) => compileQuery(a, agg));
      return (t, l) => { for (let i = 0; i < fs.length; i++) if (!fs[i](t, l)) return false; return true; };
    }
    case 'or': {
      const fs = ast.args.map((a) => compileQuery(a, agg));
      return (t, l) => { for (let i = 0; i < fs.length; i++) if (fs[i](t, l)) return true; return false; };
    }
    case 'not': { const f = compileQuery(ast.arg, agg); return (t, l) => !f(t, l); }
    default: {
      const f = termPredicate(ast, agg);
      return ast.neg ? (t, l) => !f(t, l) : f;
    }
  }
}

/** Top-level AND terms as chips: [{text, start, end}] (end exclusive, positions in `text`); a
 *  parenthesised group is one chip; a query with a top-level OR or NOT is a single chip. */
export function chipsOf(text) {
  text = text || '';
  const tokens = lexQuery(text);
  const chips = [];
  let depth = 0, start = -1;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (t.k === '(') { if (depth === 0) start = t.pos; depth++; continue; }
    if (t.k === ')') { depth--; if (depth === 0) chips.push({ text: text.slice(start, t.pos + 1), start, end: t.pos + 1 }); continue; }
    if (depth > 0) continue;
    if (t.k === 'TERM') chips.push({ text: text.slice(t.pos, t.end), start: t.pos, end: t.end });
    else if (t.k === 'OR' || t.k === 'NOT') {
      const lead = text.length - text.trimStart().length;
      return [{ text: text.trim(), start: lead, end: lead + text.trim().length }];
    }
  }
  return chips;
}

/** The query without chip i, cut by position (never by searching its text): the chip and the
 *  AND connector joining it to its neighbour go; everything else is kept as typed. */
export function withoutChip(text, i) {
  const chips = chipsOf(text);
  if (!(i >= 0 && i < chips.length)) return text;
  if (chips.length === 1) return '';
  if (i === 0) return text.slice(chips[1].start).trim();
  const left = text.slice(0, chips[i - 1].end).trim();
  const right = text.slice(chips[i].end).trim();
  return right ? `${left} ${right}` : left;
}

/** Quote a value for the search box when it holds spaces, parentheses or quotes. */
export function quoteValue(v) {
  return /[\s(),"]/.test(v) ? '"' + v.replace(/"/g, '') + '"' : v;
}
