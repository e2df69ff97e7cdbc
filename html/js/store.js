// Browser-local analyst state: triage status, tags, notes, hidden threats, local whitelist,
// aliases, saved views and preferences, kept in localStorage (never sent to the server).
// Where it sits: main.js reads and writes it; a copy goes to the worker so searches on tag:,
// note: and status: and the hide/whitelist rules apply while filtering.

const KEYS = {
  triage: 'mt_triage_v2', tags: 'mt_tags_v2', notes: 'mt_notes_v2', hidden: 'mt_hidden_v2',
  whitelist: 'mt_whitelist_v2', aliases: 'mt_aliases_v2', views: 'mt_views', prefs: 'mt_prefs',
};

function read(key, fallback) {
  try {
    const raw = localStorage.getItem(key);
    const value = raw ? JSON.parse(raw) : fallback;
    return value && typeof value === 'object' ? value : fallback;
  } catch {
    return fallback;
  }
}

export class LocalStore {
  constructor() {
    this.triage = read(KEYS.triage, {});
    this.tags = read(KEYS.tags, {});
    this.notes = read(KEYS.notes, {});
    this.hidden = read(KEYS.hidden, {});
    this.whitelist = read(KEYS.whitelist, []);
    this.aliases = read(KEYS.aliases, {});
    this.views = read(KEYS.views, {});
    this.prefs = read(KEYS.prefs, {});
    if (!Array.isArray(this.whitelist)) this.whitelist = [];
  }

  save(name) {
    try { localStorage.setItem(KEYS[name], JSON.stringify(this[name])); } catch { /* quota: keep in memory */ }
  }

  /** The part the worker needs for filtering. */
  forWorker() {
    return { triage: this.triage, tags: this.tags, notes: this.notes, hidden: this.hidden, whitelist: this.whitelist };
  }

  setTriage(uid, status) {
    if (!status || status === 'new') delete this.triage[uid]; else this.triage[uid] = status;
    this.save('triage');
  }

  setTags(uid, tags) {
    const clean = [...new Set(tags.map((t) => t.trim()).filter(Boolean))].slice(0, 20);
    if (clean.length) this.tags[uid] = clean; else delete this.tags[uid];
    this.save('tags');
  }

  setNote(uid, text) {
    if (text.trim()) this.notes[uid] = text.slice(0, 4000); else delete this.notes[uid];
    this.save('notes');
  }

  toggleHidden(uid) {
    if (this.hidden[uid]) delete this.hidden[uid]; else this.hidden[uid] = Date.now();
    this.save('hidden');
  }

  addWhitelist(value) {
    if (value && !this.whitelist.includes(value)) this.whitelist.push(value);
    this.save('whitelist');
  }

  removeWhitelist(value) {
    this.whitelist = this.whitelist.filter((v) => v !== value);
    this.save('whitelist');
  }

  saveView(name, hash) { this.views[name] = hash; this.save('views'); }
  deleteView(name) { delete this.views[name]; this.save('views'); }
  setPref(key, value) { this.prefs[key] = value; this.save('prefs'); }
}
