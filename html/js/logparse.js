// Incremental parser for the daily log format (see core/events/event.py).
// Where it sits: worker.js feeds it decoded text chunks from the /events stream (or /live lines);
// it returns complete records and keeps the unfinished tail for the next chunk.
// Line: "<YYYY-MM-DD HH:MM:SS.ffffff>" sensor src sport dst dport proto type trail info reference
// Space separated, CSV-style double quotes (inner quotes doubled), `-` for empty.

/** Split one line into its fields; null when it does not have exactly 11 columns. */
export function splitLine(line) {
  const out = [];
  const n = line.length;
  let i = 0;
  while (i < n) {
    let c = line.charCodeAt(i);
    if (c === 32) { i++; continue; }            // runs of spaces separate fields
    if (c === 34) {                              // quoted field
      let value = '';
      let start = ++i;
      for (;;) {
        const q = line.indexOf('"', i);
        if (q < 0) return null;                  // unterminated quote
        if (line.charCodeAt(q + 1) === 34) { value += line.slice(start, q + 1); i = start = q + 2; continue; }
        value += line.slice(start, q);
        i = q + 1;
        break;
      }
      c = line.charCodeAt(i);
      if (i < n && c !== 32) return null;        // garbage right after a closing quote
      out.push(value);
    } else {
      let j = line.indexOf(' ', i);
      if (j < 0) j = n;
      out.push(line.slice(i, j));
      i = j;
    }
    if (out.length > 11) return null;
  }
  return out.length === 11 ? out : null;
}

const dayCache = { text: '', base: 0 };

function digits(text, i, n) {
  let v = 0;
  for (let k = i; k < i + n; k++) {
    const c = text.charCodeAt(k) - 48;
    if (c < 0 || c > 9) return NaN;
    v = v * 10 + c;
  }
  return v;
}

/** Wall-clock seconds of a log time text, read as written (no time zone shift); NaN if malformed. */
export function wallSeconds(text) {
  if (text.length < 19 || text.charCodeAt(4) !== 45 || text.charCodeAt(10) !== 32) return NaN;
  let base;
  if (dayCache.text.length === 10 && text.startsWith(dayCache.text)) {
    base = dayCache.base;
  } else {
    const y = digits(text, 0, 4), mo = digits(text, 5, 2), d = digits(text, 8, 2);
    if (!(mo >= 1 && mo <= 12 && d >= 1 && d <= 31)) return NaN;
    base = Date.UTC(y, mo - 1, d) / 1000;
    dayCache.text = text.slice(0, 10);
    dayCache.base = base;
  }
  const h = digits(text, 11, 2), mi = digits(text, 14, 2), s = digits(text, 17, 2);
  if (!(h <= 23 && mi <= 59 && s <= 60)) return NaN;
  let frac = 0;
  if (text.length >= 26 && text.charCodeAt(19) === 46) {
    const us = digits(text, 20, 6);
    if (us === us) frac = us / 1e6;
  }
  return base + h * 3600 + mi * 60 + s + frac;
}

/** A record from a split line: empty (`-`) fields become ''. */
export function toRecord(fields) {
  const t = wallSeconds(fields[0]);
  if (Number.isNaN(t)) return null;
  const v = (x) => (x === '-' ? '' : x);
  return {
    t, sensor: v(fields[1]), src: v(fields[2]), sport: v(fields[3]), dst: v(fields[4]),
    dport: v(fields[5]), proto: v(fields[6]), type: v(fields[7]), trail: v(fields[8]),
    info: v(fields[9]), ref: v(fields[10]),
  };
}

const NAMES = ['time', 'sensor', 'src', 'sport', 'dst', 'dport', 'proto', 'type', 'trail', 'info', 'ref'];

/**
 * Parse the line buf[start:end) straight into a record (no intermediate line string or array);
 * null when it does not have exactly 11 well-formed columns.
 */
export function newRecord() {
  return { t: 0, sensor: '', src: '', sport: '', dst: '', dport: '', proto: '', type: '', trail: '', info: '', ref: '', tail: '' };
}

export function parseRange(buf, start, end, rec = newRecord()) {
  let i = start;
  let col = 0;
  let timeText = '';
  while (i < end) {
    let c = buf.charCodeAt(i);
    if (c === 32) { i++; continue; }
    if (col >= 11) return null;
    if (col === 6) rec.tail = buf.slice(i, end);   // proto type trail info reference: one key for the aggregator
    let value;
    if (c === 34) {
      let start2 = ++i;
      value = '';
      for (;;) {
        const q = buf.indexOf('"', i);
        if (q < 0 || q >= end) return null;
        if (q + 1 < end && buf.charCodeAt(q + 1) === 34) { value += buf.slice(start2, q + 1); i = start2 = q + 2; continue; }
        value += buf.slice(start2, q);
        i = q + 1;
        break;
      }
      c = buf.charCodeAt(i);
      if (i < end && c !== 32) return null;
    } else {
      let j = buf.indexOf(' ', i);
      if (j < 0 || j > end) j = end;
      value = buf.slice(i, j);
      if (value === '-') value = '';
      i = j;
    }
    if (col === 0) timeText = value; else rec[NAMES[col]] = value;
    col++;
  }
  if (col !== 11) return null;
  rec.t = wallSeconds(timeText);
  return Number.isNaN(rec.t) ? null : rec;
}

/** Stateful line splitter: push(text, onRecord) calls onRecord for each complete, valid line. */
export class LineParser {
  constructor() { this.tail = ''; this.lines = 0; this.bad = 0; this.rec = newRecord(); }

  push(text, onRecord) {
    const buf = this.tail ? this.tail + text : text;
    let start = 0;
    for (;;) {
      const nl = buf.indexOf('\n', start);
      if (nl < 0) break;
      let end = nl;
      if (end > start && buf.charCodeAt(end - 1) === 13) end--;
      if (end > start) this.range(buf, start, end, onRecord);
      start = nl + 1;
    }
    this.tail = start < buf.length ? buf.slice(start) : '';
  }

  /** Flush a final line without a newline (end of a complete file). */
  end(onRecord) {
    if (this.tail.trim()) this.range(this.tail, 0, this.tail.length, onRecord);
    this.tail = '';
  }

  range(buf, start, end, onRecord) {
    this.lines++;
    // one reused record: consumers copy what they keep (the aggregator interns every field)
    const rec = parseRange(buf, start, end, this.rec);
    if (rec) onRecord(rec); else this.bad++;
  }
}
