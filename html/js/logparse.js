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

const ENCODER = new TextEncoder();

function digitsAt(b, i, n) {
  let v = 0;
  for (let k = i; k < i + n; k++) {
    const c = b[k] - 48;
    if (!(c >= 0 && c <= 9)) return NaN;
    v = v * 10 + c;
  }
  return v;
}

/** Wall-clock seconds of the log time text in the bytes b[at:at+n), read as written (no time zone
 * shift); NaN if malformed. `day` caches the last day's midnight ({key, base}). */
export function wallSecondsAt(b, at, n, day = { key: -1, base: 0 }) {
  if (n < 19 || b[at + 4] !== 45 || b[at + 10] !== 32) return NaN;
  const y = digitsAt(b, at, 4), mo = digitsAt(b, at + 5, 2), d = digitsAt(b, at + 8, 2);
  if (!(mo >= 1 && mo <= 12 && d >= 1 && d <= 31)) return NaN;
  const key = y * 10000 + mo * 100 + d;
  if (key !== day.key) { day.key = key; day.base = Date.UTC(y, mo - 1, d) / 1000; }
  const h = digitsAt(b, at + 11, 2), mi = digitsAt(b, at + 14, 2), s = digitsAt(b, at + 17, 2);
  if (!(h <= 23 && mi <= 59 && s <= 60)) return NaN;
  let frac = 0;
  if (n >= 26 && b[at + 19] === 46) {
    const us = digitsAt(b, at + 20, 6);
    if (us === us) frac = us / 1e6;
  }
  return day.base + h * 3600 + mi * 60 + s + frac;
}

/** Wall-clock seconds of a log time text (the same rule as wallSecondsAt); NaN if malformed. */
export function wallSeconds(text) {
  const b = ENCODER.encode(text);
  return wallSecondsAt(b, 0, b.length);
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

export function newRecord() {
  return { t: 0, sensor: '', src: '', sport: '', dst: '', dport: '', proto: '', type: '', trail: '', info: '', ref: '', tail: '' };
}

/**
 * Parse the line buf[start:end) straight into a record (no intermediate line string or array);
 * null when it does not have exactly 11 well-formed columns. With `firstCol` 6 the text holds only
 * the last five columns (proto type trail info reference: the tail) and `t` is not read.
 */
export function parseRange(buf, start, end, rec = newRecord(), firstCol = 0) {
  let i = start;
  let col = firstCol;
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
  if (firstCol > 0) return rec;
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

/**
 * Line splitter over the raw bytes of /events: push(bytes, sink) hands each complete line to the
 * sink. The common shape (a plainly quoted time, then five unquoted fields) goes to
 * sink.addScanned(buf, cols, t) as byte ranges, with no strings made; addScanned returns false
 * when the tail (proto type trail info reference, parsed by parseRange) is malformed. Any other
 * line is decoded and parsed by parseRange (the one grammar) and goes to sink.add(rec).
 */
export class ByteLineParser {
  constructor() {
    this.lines = 0;
    this.bad = 0;
    this.carry = null;                 // bytes of an unfinished line
    this.cols = new Int32Array(13);    // time start/end, five fields start/end, tail start
    this.day = { key: -1, base: 0 };
    this.decoder = new TextDecoder('utf-8');
    this.rec = newRecord();
  }

  push(chunk, sink) {
    let start = 0;
    if (this.carry) {
      const nl = chunk.indexOf(10);
      const joined = new Uint8Array(this.carry.length + (nl < 0 ? chunk.length : nl + 1));
      joined.set(this.carry);
      joined.set(nl < 0 ? chunk : chunk.subarray(0, nl + 1), this.carry.length);
      this.carry = null;
      if (nl < 0) { this.carry = joined; return; }
      this.scan(joined, 0, sink);
      start = nl + 1;
    }
    start = this.scan(chunk, start, sink);
    if (start < chunk.length) this.carry = chunk.slice(start);
  }

  /** Text (live lines) through the same path. */
  pushText(text, sink) { this.push(ENCODER.encode(text), sink); }

  /** Flush a final line without a newline (end of a complete file). */
  end(sink) {
    const text = this.carry ? this.decoder.decode(this.carry) : '';
    this.carry = null;
    if (text.trim()) this.slow(text, sink);
  }

  /** The lines of buf from `start`; returns where the unfinished last line starts. */
  scan(buf, start, sink) {
    for (;;) {
      const nl = buf.indexOf(10, start);
      if (nl < 0) return start;
      let end = nl;
      if (end > start && buf[end - 1] === 13) end--;
      if (end > start) this.line(buf, start, end, sink);
      start = nl + 1;
    }
  }

  line(buf, start, end, sink) {
    const c = this.cols;
    let i = start;
    while (i < end && buf[i] === 32) i++;
    if (buf[i] === 34) {
      const q = buf.indexOf(34, i + 1);
      if (q > 0 && q < end && buf[q + 1] === 32) {
        c[0] = i + 1; c[1] = q;
        i = q + 1;
        let k = 2;
        for (; k < 12; k += 2) {
          while (i < end && buf[i] === 32) i++;
          if (i >= end || buf[i] === 34) break;
          let j = buf.indexOf(32, i);
          if (j < 0 || j > end) j = end;
          c[k] = i; c[k + 1] = j;
          i = j;
        }
        while (i < end && buf[i] === 32) i++;
        if (k === 12 && i < end) {
          c[12] = i;
          this.lines++;
          const t = wallSecondsAt(buf, c[0], c[1] - c[0], this.day);
          if (Number.isNaN(t) || !sink.addScanned(buf, c, end, t)) this.bad++;
          return;
        }
      }
    }
    this.slow(this.decoder.decode(buf.subarray(start, end)), sink);
  }

  slow(text, sink) {
    this.lines++;
    const rec = parseRange(text, 0, text.length, this.rec);
    if (rec) sink.add(rec); else this.bad++;
  }
}
