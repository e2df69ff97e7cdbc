// Proof of work for a login while the account is under attack (core/server/auth.py, "Proof of
// work"): find an 8-hex-digit `work` such that sha256(nonce + work) starts with `bits` zero bits.
// Where it sits: api.js login() calls solveWork() after a 429 that carries X-Maltrail-Work, on a
// fresh challenge, and posts the answer with the login. The nonce is 56 hex digits, so nonce + work
// is exactly one 64-byte block; the second block (padding only) is the same for every try, and the
// first 14 rounds of the first block depend on the nonce alone: both are computed once.

import { K } from './sha256.js';

const IV = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
const HEX = '0123456789abcdef';
const NONCE_RE = /^[0-9a-f]{56}$/;

function expand(w) {
  for (let i = 16; i < 64; i++) {
    const x = w[i - 15], y = w[i - 2];
    const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
    const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
    w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
  }
}

/** Rounds [from, to) of the compression on state s (8 words, updated in place). */
function rounds(s, w, from, to) {
  let a = s[0], b = s[1], c = s[2], d = s[3], e = s[4], f = s[5], g = s[6], h = s[7];
  for (let i = from; i < to; i++) {
    const t1 = (h + (((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7)))
      + ((e & f) ^ (~e & g)) + K[i] + w[i]) | 0;
    const t2 = ((((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10)))
      + ((a & b) ^ (a & c) ^ (b & c))) | 0;
    h = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
  }
  s[0] = a; s[1] = b; s[2] = c; s[3] = d; s[4] = e; s[5] = f; s[6] = g; s[7] = h;
}

/** Two ASCII hex digits of each byte value, as a 16-bit word. */
const HEX2 = new Uint16Array(256).map((_, b) => (HEX.charCodeAt(b >> 4) << 8) | HEX.charCodeAt(b & 15));

/** The leading zero bits wanted, a counter value -> does sha256(nonce + hex8(counter)) have them.
 * Exported for tests; solveWork is the caller. */
export function makeTester(nonce, bits) {
  if (!NONCE_RE.test(nonce) || !(bits >= 1 && bits <= 32)) throw new Error('bad work request');
  const w = new Int32Array(64);
  for (let i = 0; i < 14; i++) {
    w[i] = (nonce.charCodeAt(4 * i) << 24) | (nonce.charCodeAt(4 * i + 1) << 16)
      | (nonce.charCodeAt(4 * i + 2) << 8) | nonce.charCodeAt(4 * i + 3);
  }
  const mid = Int32Array.from(IV);
  rounds(mid, w, 0, 14);                        // rounds 0..13 read w[0..13] only: the nonce's
  const pad = new Int32Array(64);               // the second block: 0x80, zeros, length 512 bits
  pad[0] = 0x80000000; pad[15] = 512;
  expand(pad);
  const s = new Int32Array(8);
  const t = new Int32Array(8);
  const mask = bits === 32 ? 0xffffffff : ~(0xffffffff >>> bits);
  return (counter) => {
    w[14] = (HEX2[(counter >>> 24) & 255] << 16) | HEX2[(counter >>> 16) & 255];
    w[15] = (HEX2[(counter >>> 8) & 255] << 16) | HEX2[counter & 255];
    expand(w);
    s.set(mid);
    rounds(s, w, 14, 64);
    for (let i = 0; i < 8; i++) t[i] = (s[i] + IV[i]) | 0;
    s.set(t);
    rounds(s, pad, 0, 64);
    return (((s[0] + t[0]) | 0) & mask) === 0;
  };
}

export function hex8(counter) {
  return (counter >>> 0).toString(16).padStart(8, '0');
}

/** -> the 8 hex digits that solve (nonce, bits). Yields to the page every few thousand tries so
 * the login dialog stays responsive; `progress(tries)` is called at each yield. */
export async function solveWork(nonce, bits, progress = () => {}) {
  const test = makeTester(nonce, bits);
  const chunk = 1 << 15;
  for (let start = 0; start < 0x100000000; start += chunk) {
    for (let counter = start; counter < start + chunk; counter++) {
      if (test(counter)) return hex8(counter);
    }
    progress(start + chunk);
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  throw new Error('no proof of work found');
}
