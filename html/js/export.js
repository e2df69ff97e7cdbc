// Export of the filtered view: CSV (formula-injection safe), JSON, or a defanged indicator list.
// Where it sits: worker.js calls exportView over the current view; main.js saves the text as a
// Blob download. Pure functions, no DOM. A grouped threat (members.js) exports every trail it
// holds: `trails` in CSV and JSON (the most events first), one indicator line each in the list.

import { SEV_NAMES } from './classify.js';
import { memberTrails } from './members.js';

const CSV_COLUMNS = ['uid', 'severity', 'events', 'first_seen', 'last_seen', 'sensors', 'sources', 'destinations',
  'dst_ports', 'protocols', 'type', 'trail', 'trails', 'info', 'reference', 'status', 'tags', 'note'];

/** One CSV cell: neutralise leading = + - @ TAB CR (spreadsheet formulas), then quote. */
export function csvCell(value) {
  let s = String(value ?? '');
  s = s.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, ' ');
  if (/^[=+\-@\t\r|]/.test(s) || /^\s+[=+\-@]/.test(s)) s = "'" + s;
  return '"' + s.replace(/"/g, '""') + '"';
}

/** "2026-11-25 13:04:05" from wall-clock seconds. */
export function wallText(sec) {
  if (!Number.isFinite(sec)) return '';
  return new Date(sec * 1000).toISOString().slice(0, 19).replace('T', ' ');
}

/** Defang an indicator: http -> hxxp, dots -> [.], '@' -> [@], ':' of IPv6 left alone. */
export function defang(text) {
  return String(text)
    .replace(/^http/i, (m) => (m[0] === 'H' ? 'HXXP' : 'hxxp'))
    .replace(/:\/\//g, '[://]')
    .replace(/\./g, '[.]')
    .replace(/@/g, '[@]');
}

function record(agg, t, local) {
  const v = (f) => agg.values(t, f);
  return {
    uid: t.uid, severity: SEV_NAMES[t.sev], events: t.count, first_seen: wallText(t.first), last_seen: wallText(t.last),
    sensors: v('sensor'), sources: v('src'), destinations: v('dst'), dst_ports: v('dport'),
    protocols: v('proto'), type: t.type, trail: t.trail, trails: memberTrails(agg, t), info: t.info, reference: t.ref,
    status: local.triage[t.uid] || 'new', tags: local.tags[t.uid] || [], note: local.notes[t.uid] || '',
  };
}

export function exportView(agg, view, format, local) {
  const threats = agg.threats;
  const lines = [];
  if (format === 'json') {
    const out = [];
    for (let k = 0; k < view.length; k++) out.push(record(agg, threats[view[k]], local));
    return { text: JSON.stringify(out, null, 1), mime: 'application/json', ext: 'json', count: out.length };
  }
  if (format === 'ioc') {
    const seen = new Set();
    for (let k = 0; k < view.length; k++) {
      const t = threats[view[k]];
      for (const member of memberTrails(agg, t)) {
        const trail = member.replace(/[()]/g, '');
        if (!trail || trail === '*' || seen.has(trail)) continue;
        seen.add(trail);
        lines.push(defang(trail) + '\t' + t.type + '\t' + t.info.replace(/[\t\r\n]/g, ' '));
      }
    }
    return { text: '# indicator\ttype\tinfo (defanged)\n' + lines.join('\n') + '\n', mime: 'text/plain',
      ext: 'txt', count: lines.length };
  }
  lines.push(CSV_COLUMNS.join(','));
  for (let k = 0; k < view.length; k++) {
    const r = record(agg, threats[view[k]], local);
    lines.push(CSV_COLUMNS.map((c) => csvCell(Array.isArray(r[c]) ? r[c].join(' ') : r[c])).join(','));
  }
  return { text: lines.join('\r\n') + '\r\n', mime: 'text/csv', ext: 'csv', count: lines.length - 1 };
}
