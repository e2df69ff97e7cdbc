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

/** Wall-clock seconds of a log time text, read as written (no time zone shift); NaN if malformed. */
export function wallSeconds(text) {
  if (text.length < 19 || text.charCodeAt(4) !== 45 || text.charCodeAt(10) !== 32) return NaN;
  const y = +text.slice(0, 4), mo = +text.slice(5, 7), d = +text.slice(8, 10);
  const h = +text.slice(11, 13), mi = +text.slice(14, 16), s = +text.slice(17, 19);
  if (!(mo >= 1 && mo <= 12 && d >= 1 && d <= 31 && h <= 23 && mi <= 59 && s <= 60)) return NaN;
  const frac = text.length > 20 ? +('0' + text.slice(19, 26)) : 0;
  return Date.UTC(y, mo - 1, d, h, mi, s) / 1000 + (frac || 0);
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

/** Stateful line splitter: push(text) returns the records of the complete lines seen so far. */
export class LineParser {
  constructor() { this.tail = ''; this.lines = 0; this.bad = 0; }

  push(text, onRecord) {
    let buf = this.tail ? this.tail + text : text;
    let start = 0;
    for (;;) {
      const nl = buf.indexOf('\n', start);
      if (nl < 0) break;
      let end = nl;
      if (end > start && buf.charCodeAt(end - 1) === 13) end--;
      if (end > start) this.line(buf.slice(start, end), onRecord);
      start = nl + 1;
    }
    this.tail = buf.slice(start);
    buf = null;
  }

  /** Flush a final line without a newline (end of a complete file). */
  end(onRecord) {
    if (this.tail.trim()) this.line(this.tail, onRecord);
    this.tail = '';
  }

  line(line, onRecord) {
    this.lines++;
    const fields = splitLine(line);
    const rec = fields && toRecord(fields);
    if (rec) onRecord(rec); else this.bad++;
  }
}
