// Talking to the server: login (challenge scheme), logout, /whoami, /store, /counts, /geo, /hunt,
// /reference and /check.
// Where it sits: main.js calls these; the event stream itself is fetched by worker.js.
// Login: GET /challenge gives a server-issued nonce (valid for a minute, accepted once); then
// POST /login with username, that nonce and hash = sha256hex(sha256hex(password) + nonce), plus a
// proof of work (work.js) when the server asks for one.

import { sha256hexAsync } from './sha256.js';
import { solveWork } from './work.js';

/** -> {ok, status, message, defaultPassword}. While the account is under attack the server answers
 * 429 with X-Maltrail-Work: the number of leading zero bits a proof of work on a fresh challenge
 * must have to pass (core/server/auth.py); the login then solves it (`onWork(bits)` is told) and
 * tries again, a few times at most, as the asked work can rise while it solves. */
export async function login(username, password, onWork = () => {}) {
  let bits = 0;
  for (let round = 0; ; round++) {
    const issued = await fetch('challenge', { credentials: 'same-origin', cache: 'no-store' });
    if (!issued.ok) throw new Error(`challenge: HTTP ${issued.status}`);
    const n = (await issued.json()).nonce;
    const hash = await sha256hexAsync((await sha256hexAsync(password)) + n);
    const body = new URLSearchParams({ username, nonce: n, hash });
    if (bits) {
      onWork(bits);
      body.set('work', await solveWork(n, bits));
    }
    const resp = await fetch('login', { method: 'POST', body, credentials: 'same-origin', cache: 'no-store' });
    const message = (await resp.text()).trim();
    const asked = Number(resp.headers.get('X-Maltrail-Work') || 0);
    if (resp.status === 429 && asked > 0 && asked <= 32 && round < MAX_WORK_ROUNDS) {
      bits = asked;
      continue;
    }
    return { ok: resp.ok, status: resp.status, message, defaultPassword: isDefaultPw(resp) };
  }
}

const MAX_WORK_ROUNDS = 4;

function isDefaultPw(resp) {
  return /default-password/i.test(resp.headers.get('X-Maltrail-Warning') || '');
}

/** -> {user: string ('' not logged in, '?' no auth configured), defaultPassword} */
export async function whoami() {
  const resp = await fetch('whoami', { credentials: 'same-origin', cache: 'no-store' });
  return { user: resp.ok ? (await resp.text()).trim() : '', defaultPassword: isDefaultPw(resp) };
}

/** -> {kind: 'clickhouse' | 'files', files}: the server's EVENT_STORE (day files when /store fails). */
export async function eventStore() {
  try { return await json('store'); } catch (err) { return { kind: 'files', files: true }; }
}

export async function logout() {
  await fetch('logout', { method: 'POST', credentials: 'same-origin', cache: 'no-store', redirect: 'manual' });
}

async function json(url) {
  const resp = await fetch(url, { credentials: 'same-origin', cache: 'no-store' });
  if (!resp.ok) throw new Error(`${url.split('?')[0]}: HTTP ${resp.status}`);
  if (resp.status === 204) return null;
  return resp.json();
}

export const counts = (from, to) => json(`counts?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`);
export const geo = (date, counts = true) => json(`geo?date=${encodeURIComponent(date)}${counts ? '' : '&counts=0'}`);
export const hunt = (q, from, to) => json(`hunt?q=${encodeURIComponent(q)}&from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`);
export const reference = (trail) => json(`reference?trail=${encodeURIComponent(trail)}`);
export const check = (q) => json(`check?q=${encodeURIComponent(q)}`);
export const meta = (observable) => json(`meta?observable=${encodeURIComponent(observable)}`);
