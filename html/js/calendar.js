// The date picker: four months of days shaded by event volume (from /counts), pick one day or
// shift-click / "range" mode to pick a span of days.
// Where it sits: main.js opens it under the date face and gets back {from, to} day strings.

import { el, clear, fmt } from './dom.js';
import { counts as fetchCounts } from './api.js';

export function isoDay(d) { return d.toISOString().slice(0, 10); }
export function addDays(day, n) {
  const d = new Date(day + 'T00:00:00Z');
  d.setUTCDate(d.getUTCDate() + n);
  return isoDay(d);
}
function monthStart(day, delta) {
  const d = new Date(day.slice(0, 7) + '-01T00:00:00Z');
  d.setUTCMonth(d.getUTCMonth() + delta);
  return d;
}

function bucket(n, max) {
  if (!n) return 0;
  const r = Math.log(n + 1) / Math.log(max + 1);
  return Math.min(5, 1 + Math.floor(r * 4.999));
}

export class Calendar {
  constructor(box, { today, onPick }) {
    this.box = box;
    this.today = today;
    this.onPick = onPick;
    this.anchor = today;        // last month shown
    this.rangeStart = null;
    this.counts = {};
  }

  async open(button, from, to) {
    this.from = from; this.to = to;
    this.anchor = to;
    const rect = button.getBoundingClientRect();
    this.box.style.left = `${Math.max(8, rect.left - 60)}px`;
    this.box.style.top = `${rect.bottom + 6}px`;
    this.box.hidden = false;
    this.render();
    await this.load();
  }

  close() { this.box.hidden = true; this.rangeStart = null; }

  async load() {
    const first = isoDay(monthStart(this.anchor, -3));
    const last = isoDay(new Date(Date.UTC(+this.anchor.slice(0, 4), +this.anchor.slice(5, 7), 0)));
    try {
      this.counts = Object.assign(this.counts, (await fetchCounts(first, last)) || {});
      this.error = '';
    } catch (err) {
      this.error = String(err.message || err);
    }
    if (!this.box.hidden) this.render();
  }

  render() {
    clear(this.box);
    const months = [];
    const max = Math.max(1, ...Object.values(this.counts));
    for (let k = -3; k <= 0; k++) {
      const m = monthStart(this.anchor, k);
      const days = el('div.days');
      const pad = (m.getUTCDay() + 6) % 7;    // weeks start on Monday
      for (let i = 0; i < pad; i++) days.append(el('span'));
      const y = m.getUTCFullYear(), mo = m.getUTCMonth();
      const n = new Date(Date.UTC(y, mo + 1, 0)).getUTCDate();
      for (let d = 1; d <= n; d++) {
        const day = isoDay(new Date(Date.UTC(y, mo, d)));
        const c = this.counts[day] || 0;
        const b = el('button.day.b' + bucket(c, max), { text: String(d), title: `${day}: ${fmt(c)} events`, dataset: { day } });
        if (day > this.today) { b.classList.add('future'); b.disabled = true; }
        if (day === this.from && day === this.to) b.classList.add('sel');
        else if (day >= this.from && day <= this.to) b.classList.add('inrange');
        if (this.rangeStart === day) b.classList.add('sel');
        b.addEventListener('click', (ev) => this.pick(day, ev.shiftKey));
        days.append(b);
      }
      months.push(el('div.month', null, el('h4', { text: m.toISOString().slice(0, 7) }), days));
    }
    const head = el('div.cal-head', null,
      el('button.icon', { text: '‹', title: 'earlier months', onclick: () => { this.anchor = isoDay(monthStart(this.anchor, -1)); this.render(); this.load(); } }),
      el('b', { text: 'pick a day (shift-click: range end)' }),
      el('button.icon', { text: '›', title: 'later months', onclick: () => { const next = isoDay(monthStart(this.anchor, 1)); if (next <= this.today) { this.anchor = next; this.render(); this.load(); } } }));
    const rangeBtn = el('button', { text: this.rangeStart ? `range from ${this.rangeStart}…` : 'range…', onclick: () => { this.rangeStart = this.from; this.render(); } });
    const last7 = el('button', { text: 'last 7 days', onclick: () => { this.onPick(addDays(this.today, -6), this.today); this.close(); } });
    const todayBtn = el('button', { text: 'today', onclick: () => { this.onPick(this.today, this.today); this.close(); } });
    const legend = el('span', null, 'fewer ', ...[0, 1, 2, 3, 4, 5].map((i) => el('button.day.b' + i, { disabled: true })), ' more events');
    this.box.append(head, el('div.months', null, months),
      el('div.cal-foot', null, todayBtn, last7, rangeBtn, legend, this.error ? el('span.error', { text: this.error }) : null));
  }

  pick(day, shift) {
    if (shift || this.rangeStart) {
      const a = this.rangeStart || this.from;
      const [from, to] = a <= day ? [a, day] : [day, a];
      this.onPick(from, to);
    } else {
      this.onPick(day, day);
    }
    this.close();
  }
}
