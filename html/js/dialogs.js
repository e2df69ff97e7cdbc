// The console's dialogs in the shared modal box: search help and shortcuts, retro-hunt (/hunt),
// saved views, the browser-local whitelist and address aliases.
// Where it sits: main.js owns one Dialogs and opens them from buttons, the context menu and keys;
// a dialog reports back only through the callbacks it is given (open a day, open a saved view,
// local state or aliases changed), so it never reaches into the page controller.

import { $, clear, el, fmt } from './dom.js';
import { hunt as fetchHunt } from './api.js';
import { addDays } from './calendar.js';
import { FIELDS } from './query.js';

export class Dialogs {
  /** `store`: LocalStore; `today`: the server's day (YYYY-MM-DD); `on`: { openDay(day),
   *  openView(hash), localChanged(), aliasesChanged() }. */
  constructor({ store, today, on }) {
    this.overlay = $('#modal');
    this.box = $('#modal-box');
    this.store = store;
    this.today = today;
    this.on = on;
    this.overlay.addEventListener('click', (ev) => { if (ev.target === this.overlay) this.close(); });
  }

  /** Show a dialog: a title with a close button, then the content nodes. */
  open(title, ...content) {
    const box = this.box;
    clear(box);
    box.append(el('div.row2', null, el('h2', { text: title }), el('span.spacer'), el('button.icon', { text: '×', onclick: () => this.close() })), ...content);
    this.overlay.hidden = false;
  }

  close() { this.overlay.hidden = true; this.box.classList.remove('wide'); }

  get isOpen() { return !this.overlay.hidden; }

  /** A browser-local name for an address. */
  alias(ip) {
    const input = el('input', { value: this.store.aliases[ip] || '', placeholder: 'name for ' + ip });
    this.open(`Alias for ${ip}`, el('p.muted', { text: 'Aliases are kept in this browser only.' }), input,
      el('button', { text: 'save', onclick: () => {
        if (input.value.trim()) this.store.aliases[ip] = input.value.trim().slice(0, 64); else delete this.store.aliases[ip];
        this.store.save('aliases');
        this.close();
        this.on.aliasesChanged();
      } }));
  }

  /** The search syntax and the keyboard shortcuts. */
  help() {
    const rows = [
      ['src: dst:', 'IP, glob or CIDR — src:10.0.0.0/8  dst:*.7'], ['port: sport:', 'number, list, range or comparison — port:443,>1024  port:8000-8100'],
      ['type: proto:', 'exact — type:dns,http  proto:udp'], ['trail: info: ref:', 'substring or glob — trail:*.biz  info:"port scanning"'],
      ['sev:', 'high, medium, low (hi/md/lo)'], ['count: events:', 'count:>=10'], ['uid: sensor: class:', 'uid:1ba34fd0  class:malware'],
      ['dir:', 'in, out or lan (by private addresses)'], ['country:', 'country of the placed address (world map) — country:de,nl'], ['tag: note: status:', 'browser-local triage state — status:investigating'],
      ['-term  NOT  !', 'negation'], ['AND && (space)  OR ||  ( )', 'boolean operators and grouping'], ['a,b,"c d"', 'comma lists match any item'],
    ];
    const keys = [['/', 'focus search'], ['Esc', 'close / clear'], ['↑ ↓', 'select row'], ['Enter', 'open threat'], ['← →', 'page up / down'],
      ['PgUp PgDn', 'previous / next day'], ['t', 'theme'], ['l', 'live mode'], ['h', 'hide selected threat'], ['?', 'this help']];
    this.open('Search syntax and shortcuts',
      el('table', null, rows.map(([a, b]) => el('tr', null, el('td', null, el('b', { text: a })), el('td', { text: b })))),
      el('h2', { text: 'Keyboard' }),
      el('table', null, keys.map(([a, b]) => el('tr', null, el('td', null, el('b', { text: a })), el('td', { text: b })))),
      el('p.muted', { text: `Fields: ${FIELDS.join(' ')}` }));
  }

  /** Retro-hunt (/hunt) for `term`: per-day match counts (click a day to open it) and escaped sample lines. */
  hunt(term) {
    const q = el('input', { value: term, placeholder: 'IP, CIDR or text (3+ characters)', id: 'hunt-q' });
    const from = el('input', { type: 'date', value: addDays(this.today, -29), max: this.today, id: 'hunt-from' });
    const to = el('input', { type: 'date', value: this.today, max: this.today, id: 'hunt-to' });
    const go = el('button', { text: 'hunt', id: 'hunt-go' });
    const out = el('div.hunt-out', { id: 'hunt-out' });
    const run = async () => {
      clear(out);
      const term = q.value.trim();
      if (term.length < 3) { out.append(el('p.error', { text: 'Type at least 3 characters.' })); return; }
      out.dataset.state = 'running';
      out.append(el('p.muted', { text: `searching ${from.value} … ${to.value}…` }));
      go.disabled = true;
      let r;
      try {
        r = await fetchHunt(term, from.value, to.value);
      } catch (err) {
        clear(out);
        out.append(el('p.error', { text: `hunt failed: ${err.message || err}` }));
        out.dataset.state = 'error';
        return;
      } finally {
        go.disabled = false;
      }
      clear(out);
      this.renderHunt(out, r || {});
      out.dataset.state = 'done';
    };
    go.addEventListener('click', run);
    q.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') run(); });
    this.open('Retro-hunt',
      el('p.muted', { text: 'Searches the stored logs (newest day first) for an address, a CIDR or any text, within the server\'s time budget.' }),
      el('div.row2.hunt-form', null, q, el('span.muted', { text: 'from' }), from, el('span.muted', { text: 'to' }), to, go),
      out);
    this.box.classList.add('wide');
    q.focus();
    if (q.value.trim().length >= 3) run();
  }

  renderHunt(out, r) {
    const counts = Object.entries(r.counts || {}).sort((a, b) => (a[0] < b[0] ? 1 : -1));
    const total = counts.reduce((a, [, n]) => a + n, 0);
    const samples = Array.isArray(r.samples) ? r.samples : [];
    out.append(el('p.hunt-sum', null,
      el('b', { text: `${fmt(total)} matching lines` }),
      ` on ${fmt(counts.length)} of ${fmt(r.selected)} days · ${fmt(r.scanned)} lines scanned`));
    if (r.partial) out.append(el('p.hunt-flag.partial', { text: 'Partial: the server\'s time budget ran out; older days were not (fully) searched. Narrow the dates to search them.' }));
    if (r.capped_samples) out.append(el('p.hunt-flag.truncated', { text: `Truncated: showing the first ${fmt(samples.length)} sample lines (newest first); the counts are complete for the days searched.` }));
    if (!counts.length) { out.append(el('p.muted', { text: 'No matches.' })); return; }
    const max = Math.max(...counts.map(([, n]) => n));
    const days = el('div.hunt-days');
    for (const [day, n] of counts) {
      const bar = el('span.hbar');
      bar.style.width = `${Math.max(2, Math.round((100 * n) / max))}%`;
      days.append(el('button.hunt-day', { dataset: { day }, title: `open ${day}`, onclick: () => { this.close(); this.on.openDay(day); } },
        el('span.hd', { text: day }), el('span.hn', { text: fmt(n) }), el('span.hb', null, bar)));
    }
    out.append(el('h3', { text: 'Matches per day (click to open the day)' }), days);
    out.append(el('h3', { text: `Sample lines · ${fmt(samples.length)}` }));
    const list = el('div.hunt-samples');
    for (const smp of samples) list.append(el('div.sample', null, el('span.sd', { text: String(smp.date || '') }), el('span.sl', { text: String(smp.line || '') })));
    out.append(list);
  }

  /** Saved views: open or delete one, save the current URL hash under a name. */
  views() {
    const s = this.store;
    const name = el('input', { placeholder: 'name for the current view' });
    const list = el('div');
    const render = () => {
      clear(list);
      for (const [n, hash] of Object.entries(s.views)) {
        list.append(el('div.row2', null,
          el('button', { text: n, title: hash, onclick: () => { this.close(); this.on.openView(hash); } }),
          el('button.icon.small', { text: '×', title: 'delete', onclick: () => { s.deleteView(n); render(); } })));
      }
      if (!Object.keys(s.views).length) list.append(el('p.muted', { text: 'No saved views yet.' }));
    };
    render();
    this.open('Saved views', list, el('div.row2', null, name,
      el('button', { text: 'save current', onclick: () => { if (name.value.trim()) { s.saveView(name.value.trim().slice(0, 60), location.hash); render(); name.value = ''; } } })));
  }

  /** The browser-local whitelist of addresses and trails. */
  whitelist() {
    const s = this.store;
    const list = el('div');
    const input = el('input', { placeholder: 'IP or trail' });
    const render = () => {
      clear(list);
      for (const v of s.whitelist) list.append(el('div.row2', null, el('span', { text: v }), el('button.icon.small', { text: '×', onclick: () => { s.removeWhitelist(v); render(); this.on.localChanged(); } })));
      if (!s.whitelist.length) list.append(el('p.muted', { text: 'Empty.' }));
    };
    render();
    this.open('Local whitelist', el('p.muted', { text: 'This whitelist lives in this browser only: the sensor and the server still record these events.' }),
      list, el('div.row2', null, input, el('button', { text: 'add', onclick: () => { s.addWhitelist(input.value.trim()); input.value = ''; render(); this.on.localChanged(); } })));
  }
}
