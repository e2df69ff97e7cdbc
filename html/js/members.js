// The members of a grouped threat: the trails one threat holds (a DGA threat groups every domain
// one source asked for, a flood every spelling of its trail), and for the drawer each destination
// and port of a threat with its own event count (a condensed line, as the sensor's condensing
// stage writes it, lists several targets and ports comma-joined in one line).
// Where it sits: aggregate.js counts trails per threat with addMember(); query.js matches `trail:`
// and bare words over a threat's members; worker.js narrows a view's counted events to the
// members a `trail:` term names (narrowEvents) and lists them in the drawer (memberLists).

export const MEMBER_LIST = 2000;      // members listed per field in the drawer (the most events first)

/** Count n more events of `trailId` in threat t, before t.count grows by them. While all of a
 *  threat's events carry its label trail `members` stays null (no map for the common case);
 *  otherwise it maps every trail id to its events and its values sum to t.count. */
export function addMember(t, trailId, n) {
  if (t.members === null) {
    if (trailId === t.trailId) return;
    t.members = new Map(t.count ? [[t.trailId, t.count]] : []);
  }
  t.members.set(trailId, (t.members.get(trailId) || 0) + n);
}

/** Fold threat `from` into `into` (a flood taking in a per-source threat), counts included. */
export function mergeMembers(into, from) {
  if (from.members === null) { addMember(into, from.trailId, from.count); into.count += from.count; return; }
  for (const [id, n] of from.members) { addMember(into, id, n); into.count += n; }
}

/** For the threats of a view holding several trails: the events whose own trail passes `test`
 *  (a string id predicate), counted and bucketed like the threat's own figures. Map threat id ->
 *  {count, hist}; threats with one trail are left out (all or none of their events pass). */
export function narrowEvents(agg, view, test) {
  const threats = agg.threats;
  const slot = new Int32Array(threats.length).fill(-1);
  const out = [];
  for (let k = 0; k < view.length; k++) {
    const t = threats[view[k]];
    if (t.members === null) continue;
    slot[t.id] = out.length;
    out.push({ id: t.id, count: 0, hist: new Uint32Array(t.hist.length) });
  }
  const result = new Map();
  if (!out.length) return result;
  for (let i = 0; i < threats.length; i++) if (threats[i].alias >= 0) slot[i] = slot[agg.resolve(i).id];
  const owners = agg.colThreat, trails = agg.colTrail, times = agg.colT;
  for (let i = 0; i < agg.n; i++) {
    const s = slot[owners[i]];
    if (s < 0 || !test(trails[i])) continue;
    const e = out[s];
    e.count++;
    e.hist[agg.bucket(times[i])]++;
  }
  for (const e of out) result.set(e.id, e);
  return result;
}

/** Every trail of threat t (its label alone, or each member), ranked as the drawer lists them. */
export function memberTrails(agg, t) {
  if (t.members === null) return [t.trail];
  const counts = new Map();
  for (const [id, n] of t.members) counts.set(agg.strings[id], n);
  return ranked(counts, Infinity).list.map(([trail]) => trail);
}

/** Whether threat o holds any trail id of the set `ids` (its label or a member). */
export function sharesTrail(o, ids) {
  if (o.members === null) return ids.has(o.trailId);
  for (const id of o.members.keys()) if (ids.has(id)) return true;
  return false;
}

/** Counts per text, a comma list counting once for each of its items. */
function split(counts) {
  const out = new Map();
  for (const [text, n] of counts) {
    for (const part of text.split(',')) {
      const v = part.trim();
      if (v) out.set(v, (out.get(v) || 0) + n);
    }
  }
  return out;
}

function ranked(counts, limit) {
  const all = [...counts.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  return { n: all.length, list: all.slice(0, limit) };
}

/** The drawer's member lists of a threat: `trail`, `dst`, `dport`, each {n, list: [[value, events]]}
 *  with every distinct value counted (the first MEMBER_LIST listed). `records` are a summary
 *  threat's loaded lines (logparse.js records); without them the threat's event columns are read. */
export function memberLists(agg, t, records = null, limit = MEMBER_LIST) {
  const s = agg.strings;
  const trail = new Map(), dst = new Map(), dport = new Map();
  const bump = (map, key) => map.set(key, (map.get(key) || 0) + 1);
  if (records) {
    for (const r of records) { bump(trail, r.trail); bump(dst, r.dst); bump(dport, r.dport); }
  } else {
    if (t.members === null) trail.set(t.trail, t.count);
    else for (const [id, n] of t.members) trail.set(s[id], n);
    const dstIds = new Map(), portCodes = new Map();
    for (let i = 0; i < agg.n; i++) {
      const owner = agg.colThreat[i];
      if (owner !== t.id && (agg.threats[owner].alias < 0 || agg.resolve(owner) !== t)) continue;
      bump(dstIds, agg.colDst[i]);
      bump(portCodes, agg.colDport[i]);
    }
    for (const [id, n] of dstIds) dst.set(s[id], n);
    for (const [code, n] of portCodes) dport.set(agg.portText(code), n);
  }
  trail.delete('');
  return { trail: ranked(trail, limit), dst: ranked(split(dst), limit), dport: ranked(split(dport), limit) };
}
