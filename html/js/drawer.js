// The detail drawer: one threat's summary, clickable value chips (add a filter), MITRE ATT&CK
// hints, trail lookups (/reference: the trails/static citation; /check: the server's trail
// store; /meta: when the server first saw the observable, across all days), triage status, tags,
// notes (first, under the summary), every member of a grouped threat (its trails, targets and
// ports, each with its events; members.js) and its event table (up to 500 rows, each with its own
// trail: a grouped threat holds many).
// Where it sits: main.js opens it with the worker's `detail` reply; edits go to the LocalStore.
// Lookup values are server data: shown as text; a URL becomes a link only for http(s).

import { append, el, clear, fmt, hms, stamp, hue } from './dom.js';
import { SERVICES, SEV_NAMES } from './classify.js';
import { drawSpark, typeColour } from './grid.js';
import { quoteValue } from './query.js';
import { check, meta, reference } from './api.js';
import { classIcon } from './addrinfo.js';

const URLISH = /^([a-z][a-z0-9+.-]*:|www\.)\S/i;

/** A server-supplied value as nodes: its text, plus an external link when it is an http(s) URL. */
export function valueNodes(value) {
  const text = value == null ? '' : String(value);
  const nodes = [el('span.lv', { text })];
  if (URLISH.test(text)) {
    let url = null;
    try { url = new URL(text); } catch { url = null; }
    if (url && (url.protocol === 'http:' || url.protocol === 'https:')) {
      nodes.push(el('a.ext', { href: url.href, target: '_blank', rel: 'noopener noreferrer', text: 'open ↗', title: url.href }));
    }
  }
  return nodes;
}

// A conservative map from info text to ATT&CK techniques (public IDs).
const MITRE = [
  [/port scanning|udp scanning|potential infection/i, 'T1046', 'Network Service Discovery'],
  [/web scan|non-existent page|directory traversal/i, 'T1595', 'Active Scanning'],
  [/dga|no such domain/i, 'T1568.002', 'Domain Generation Algorithms'],
  [/dns exhaustion|dns tunnel/i, 'T1071.004', 'Application Layer Protocol: DNS'],
  [/sql injection|xss|remote code execution|injection/i, 'T1190', 'Exploit Public-Facing Application'],
  [/\bc2\b|c&c|command and control|botnet/i, 'T1071', 'Application Layer Protocol'],
  [/tor exit|\.onion|proxy/i, 'T1090', 'Proxy'],
  [/download|dropper|loader/i, 'T1105', 'Ingress Tool Transfer'],
  [/phishing/i, 'T1566', 'Phishing'],
  [/ransomware/i, 'T1486', 'Data Encrypted for Impact'],
  [/miner|mining|coinhive/i, 'T1496', 'Resource Hijacking'],
];

const TRIAGE = ['new', 'investigating', 'resolved', 'false-positive'];

/** The observable the observables store keeps for a threat: the name of a DNS trail, the address
 *  of an IP/IPORT trail, else its first destination. */
export function metaObservable(t) {
  const trail = String(t.trail || '');
  if (t.type === 'DNS') return trail.replace(/[()]/g, '');
  if (t.type === 'IP') return trail.split(' ')[0];
  if (t.type === 'IPORT') return trail.split(' ')[0].replace(/^\[(.*)\]:\d+$/, '$1').replace(/^([\d.]+):\d+$/, '$1');
  return (t.dst && t.dst[0]) || '';
}

export class Drawer {
  constructor(box, { store, addFilter, onChange, onClose }) {
    Object.assign(this, { box, store, addFilter, onChange, onClose });
    this.uid = null;
    this.lookupsFor = '';      // trail whose lookup results are in this.lookupResults
    this.lookupResults = null;
  }

  /** Fill the lookup rows for a trail (cached for the open threat; stale answers are dropped). */
  lookups(box, trail) {
    const refRow = el('div.lrow', { id: 'd-ref' }, el('span.lk', { text: 'reference' }), el('span.muted', { text: 'looking up…' }));
    const chkRow = el('div.lrow', { id: 'd-check' }, el('span.lk', { text: 'trail store' }), el('span.muted', { text: 'looking up…' }));
    box.append(refRow, chkRow);
    const q = String(trail || '').slice(0, 256);
    if (!q) { this.fillFailed(refRow, 'no trail'); this.fillFailed(chkRow, 'no trail'); return; }
    if (this.lookupsFor !== q || !this.lookupResults) {
      this.lookupsFor = q;
      const settle = (p) => p.then((value) => ({ value }), (err) => ({ error: String(err && err.message || err) }));
      this.lookupResults = [settle(reference(q)), settle(check(q))];
    }
    const [refP, chkP] = this.lookupResults;
    refP.then((r) => { if (this.lookupsFor === q && refRow.isConnected) this.fillReference(refRow, r); });
    chkP.then((r) => { if (this.lookupsFor === q && chkRow.isConnected) this.fillCheck(chkRow, r); });
  }

  /** The "first seen (all days)" row from /meta. */
  metaRow(box, observable) {
    const row = el('div.lrow', { id: 'd-meta' }, el('span.lk', { text: 'first seen (all days)' }), el('span.muted', { text: 'looking up…' }));
    box.append(row);
    const q = String(observable || '').slice(0, 253);
    if (!q) { this.fillFailed(row, 'no observable'); return; }
    const uid = this.uid;
    meta(q).then((v) => {
      if (this.uid !== uid || !row.isConnected) return;
      if (!v || v.first_seen == null) {
        row.lastChild.replaceWith(el('span.muted', { text: `${q}: not in the observables store` }));
        row.dataset.state = 'missing';
        return;
      }
      const extra = [v.scope, v.country, v.category].filter(Boolean).join(' · ');
      row.lastChild.replaceWith(el('span.lval', null, el('span.lv', { text: `${stamp(v.first_seen)} (${q})` }),
        el('span.muted', { text: ` · last ${stamp(v.last_seen)} · ${fmt(v.count)} events${extra ? ' · ' + extra : ''}` })));
      row.dataset.state = 'found';
    }, (err) => { if (this.uid === uid && row.isConnected) this.fillFailed(row, String(err && err.message || err)); });
  }

  fillFailed(row, why) {
    row.lastChild.replaceWith(el('span.muted.lfail', { text: `unavailable (${why})` }));
    row.dataset.state = 'failed';
  }

  fillReference(row, r) {
    if (r.error || !r.value) { this.fillFailed(row, r.error || 'no answer'); return; }
    const v = r.value;
    let body;
    if (v.reference) {
      body = el('span.lval', null, valueNodes(v.reference), v.source ? el('span.muted', { text: ` · ${v.source}` }) : null);
    } else {
      body = el('span.muted', { text: v.partial ? 'not found (scan timed out)' : 'not in trails/static' });
    }
    row.lastChild.replaceWith(body);
    row.dataset.state = v.reference ? 'found' : 'missing';
  }

  fillCheck(row, r) {
    if (r.error || !r.value) { this.fillFailed(row, r.error || 'no answer'); return; }
    const v = r.value;
    let body;
    if (v.found) {
      body = el('span.lval', null, el('span.lv', { text: `${v.trail || ''} — ${v.info || ''}` }),
        el('span.muted', { text: ' · reference ' }), valueNodes(v.reference));
    } else {
      body = el('span.muted', { text: 'not in the trail store' });
    }
    row.lastChild.replaceWith(body);
    row.dataset.state = v.found ? 'found' : 'missing';
  }

  close() { this.box.hidden = true; this.uid = null; this.lookupsFor = ''; this.lookupResults = null; this.onClose(); }

  chips(title, values, field, total, over) {
    if (!values.length) return null;
    const more = over ? ' (capped)' : '';
    return [
      el('h3', { text: `${title} · ${fmt(total ?? values.length)}${more}` }),
      el('div.vals', null, values.map((v) => el('button', {
        text: field === 'port' && SERVICES[v] ? `${v} (${SERVICES[v]})` : v,
        title: `filter ${field}:${v} (shift: exclude)`,
        onclick: (ev) => this.addFilter(`${ev.shiftKey ? '-' : ''}${field}:${quoteValue(v)}`),
      }, (field === 'src' || field === 'dst') && this.addrinfo ? this.addrinfo.badge(v) : null))),
    ];
  }

  /** Every member of one field (members.js `memberLists`): a chip per value with its events; a
   *  click filters on it (shift: excludes it). */
  memberChips(title, id, m, field) {
    if (!m || !m.list.length) return null;
    const shown = m.n > m.list.length ? ` (the ${fmt(m.list.length)} with most events)` : '';
    return [
      el('h3', { id: `${id}-title`, text: `${title} · ${fmt(m.n)}${shown}` }),
      el('div.vals.members', { id }, m.list.map(([v, n]) => el('button', {
        title: `${fmt(n)} events · filter ${field}:${v} (shift: exclude)`, dataset: { value: v, count: String(n) },
        onclick: (ev) => this.addFilter(`${ev.shiftKey ? '-' : ''}${field}:${quoteValue(v)}`),
      }, field === 'port' && SERVICES[v] ? `${v} (${SERVICES[v]})` : v,
      field === 'dst' && this.addrinfo ? this.addrinfo.badge(v) : null, el('span.mcount', { text: fmt(n) })))),
    ];
  }

  show(reply) {
    const t = reply.threat;
    const again = this.uid === t.uid;   // re-drawn after a triage click: keep the reader's place
    const scroll = this.box.scrollTop;
    this.uid = t.uid;
    const s = this.store;
    clear(this.box);
    this.box.hidden = false;
    const uid = el('span.uid', { text: t.uid });
    uid.style.background = `hsl(${hue(t.uid)} 65% 60%)`;
    const typ = el('span.typ', { text: t.type || '-' });
    typ.style.background = typeColour(t.type);
    const spark = el('canvas.spark');
    drawSpark(spark, t.hist, '#4cc3f0');
    const techniques = MITRE.filter(([re]) => re.test(t.info) || re.test(t.trail));
    const status = s.triage[t.uid] || 'new';
    const tagInput = el('input', { value: (s.tags[t.uid] || []).join(', '), placeholder: 'tags, comma separated', id: 'd-tags' });
    const note = el('textarea', { value: s.notes[t.uid] || '', placeholder: 'notes (kept in this browser)', id: 'd-note' });
    const ev = reply.events;
    const lookupBox = el('div.lookups');
    const table = el('table', null,
      el('thead', null, el('tr', null, ['time', 'sensor', 'source', 'destination', 'proto', 'trail', 'info'].map((h) => el('th', { text: h })))),
      el('tbody', null, ev.map((e) => el('tr', null,
        el('td', { text: hms(e.t), title: stamp(e.t) }), el('td', { text: e.sensor }),
        el('td', { text: e.sport ? `${e.src}:${e.sport}` : e.src, title: e.src }),
        el('td', { text: e.dport ? `${e.dst}:${e.dport}` : e.dst, title: e.dst }),
        el('td', { text: e.proto }), el('td', { text: e.trail, title: e.trail }), el('td', { text: e.info, title: e.info })))));
    append(this.box, [
      el('div.dhead', null, el('span.sev.sev' + t.sev, { text: SEV_NAMES[t.sev] }), uid, classIcon(t.type, t.ref), typ, spark,
        el('span.muted', { text: t.kind !== 'default' ? t.kind : '' }),
        el('button.icon.close', { text: '×', title: 'close (Esc)', onclick: () => this.close() })),
      el('div.kv', null,
        el('span', { text: 'trail' }), el('span', { text: t.trail }),
        el('span', { text: 'info' }), el('span', { text: t.info }),
        el('span', { text: 'reference' }), el('span', { text: t.ref }),
        el('span', { text: 'events' }), el('span', { text: fmt(t.count) }),
        el('span', { text: 'first seen' }), el('span', { text: stamp(t.first) }),
        el('span', { text: 'last seen' }), el('span', { text: stamp(t.last) }),
        el('span', { text: 'related' }), el('span', { text: `${fmt(reply.sameSrc)} other threats from this source · ${fmt(reply.sameTrail)} other threats ${
          t.members > 1 ? 'sharing one of its trails' : 'on this trail'}` })),
      el('h3', { text: 'Triage' }),
      el('div.triage', null, TRIAGE.map((st) => {
        const b = el('button', { text: st, dataset: { status: st }, onclick: () => { s.setTriage(t.uid, st); this.onChange(); this.show(reply); } });
        if (st === status) b.classList.add('on');
        return b;
      })),
      el('h3', { text: 'Tags' }), tagInput,
      el('h3', { text: 'Notes' }), note,
      el('div.vals', null,
        el('button', { text: 'only this trail', onclick: () => this.addFilter(`trail:${quoteValue(t.trail)}`) }),
        el('button', { text: 'exclude this trail', onclick: () => this.addFilter(`-trail:${quoteValue(t.trail)}`) })),
      el('h3', { text: 'Trail lookups' }), lookupBox,
      techniques.length ? el('h3', { text: 'MITRE ATT&CK' }) : null,
      el('div.vals', null, techniques.map(([, id, name]) => el('a.mitre', {
        href: `https://attack.mitre.org/techniques/${id.replace('.', '/')}/`, target: '_blank', rel: 'noopener noreferrer', text: `${id} ${name}` }))),
      reply.members.trail.n > 1 ? this.memberChips('Trails', 'd-members', reply.members.trail, 'trail') : null,
      this.chips('Sources', t.src, 'src', t.srcN, t.over & 1),
      this.memberChips('Destinations', 'd-targets', reply.members.dst, 'dst'),
      this.memberChips('Destination ports', 'd-ports', reply.members.dport, 'port'),
      this.chips('Source ports', t.sport.slice(0, 60), 'sport', t.sport.length, t.over & 2),
      this.chips('Protocols', t.proto, 'proto'),
      this.chips('Sensors', t.sensor, 'sensor'),
      el('h3', { text: `Events · ${fmt(t.count)}${t.count > ev.length ? ` (showing ${fmt(ev.length)})` : ''}` }), table,
    ]);
    this.lookups(lookupBox, t.trail);
    this.metaRow(lookupBox, metaObservable(t));
    this.box.scrollTop = again ? scroll : 0;   // a newly opened threat starts at its top
    tagInput.addEventListener('change', () => { s.setTags(t.uid, tagInput.value.split(',')); this.onChange(); });
    note.addEventListener('change', () => { s.setNote(t.uid, note.value); this.onChange(); });
  }
}
