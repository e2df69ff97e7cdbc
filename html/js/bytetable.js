// A hash table keyed by byte ranges (UTF-8 text as it arrives from /events), so a field seen
// before is recognised without making a string of it.
// Where it sits: aggregate.js keeps three (field values -> string ids, port texts -> port codes,
// the "proto type trail info reference" tail -> its parsed entry); logparse.js's ByteLineParser
// finds the field ranges. Keys are copied into one growing byte arena; values are int32 >= 0.

const FNV_OFFSET = 0x811c9dc5 | 0;
const FNV_PRIME = 16777619;

export class ByteTable {
  constructor(bits = 12) {
    this.slots = new Int32Array(1 << bits).fill(-1);   // entry index per slot, -1 free
    this.mask = (1 << bits) - 1;
    this.n = 0;
    this.offs = new Int32Array(256);
    this.lens = new Int32Array(256);
    this.hashes = new Int32Array(256);
    this.values = new Int32Array(256);
    this.arena = new Uint8Array(16384);
    this.used = 0;
    this.hash = 0;     // of the last get(): set() after a miss reuses it
    this.slot = 0;     // the free slot the last missed get() ended on
  }

  /** The value of the key buf[start:end), or -1 when it is not in the table. */
  get(buf, start, end) {
    let h = FNV_OFFSET;
    for (let i = start; i < end; i++) h = Math.imul(h ^ buf[i], FNV_PRIME);
    this.hash = h;
    const len = end - start;
    const { slots, mask, hashes, lens, offs, arena } = this;
    let s = h & mask;
    for (;;) {
      const e = slots[s];
      if (e < 0) { this.slot = s; return -1; }
      if (hashes[e] === h && lens[e] === len) {
        let k = offs[e];
        let i = start;
        while (i < end && arena[k] === buf[i]) { i++; k++; }
        if (i === end) return this.values[e];
      }
      s = (s + 1) & mask;
    }
  }

  /** Add the key of the last get() (which missed) with `value`; returns `value`. */
  set(buf, start, end, value) {
    const len = end - start;
    if (this.n >= this.offs.length) this.growEntries();
    if (this.used + len > this.arena.length) {
      const bigger = new Uint8Array(Math.max(this.arena.length * 2, this.used + len));
      bigger.set(this.arena.subarray(0, this.used));
      this.arena = bigger;
    }
    const e = this.n++;
    this.arena.set(buf.subarray(start, end), this.used);
    this.offs[e] = this.used;
    this.lens[e] = len;
    this.hashes[e] = this.hash;
    this.values[e] = value;
    this.used += len;
    this.slots[this.slot] = e;
    if (this.n * 2 > this.slots.length) this.rehash();
    return value;
  }

  growEntries() {
    const cap = this.offs.length * 2;
    for (const name of ['offs', 'lens', 'hashes', 'values']) {
      const bigger = new Int32Array(cap);
      bigger.set(this[name]);
      this[name] = bigger;
    }
  }

  rehash() {
    const size = this.slots.length * 2;
    const slots = new Int32Array(size).fill(-1);
    const mask = size - 1;
    for (let e = 0; e < this.n; e++) {
      let s = this.hashes[e] & mask;
      while (slots[s] >= 0) s = (s + 1) & mask;
      slots[s] = e;
    }
    this.slots = slots;
    this.mask = mask;
  }
}
