// Tiny DOM helpers: every element is built with createElement and every data value goes in
// through textContent or a property, never through HTML strings (the CSP and the escaping rule).
// Where it sits: used by every view module of the page.

/** el('div.a.b', {title, onclick, dataset...}, child|string|array...) */
export function el(spec, props, ...children) {
  const [tag, ...classes] = spec.split('.');
  const node = document.createElement(tag || 'div');
  if (classes.length) node.className = classes.join(' ');
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v == null || v === false) continue;
      if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else if (k === 'dataset') Object.assign(node.dataset, v);
      else if (k === 'text') node.textContent = v;
      else if (k in node && k !== 'list') node[k] = v;
      else node.setAttribute(k, v);
    }
  }
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const c of children) {
    if (c == null || c === false) continue;
    if (Array.isArray(c)) append(node, c);
    else node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }

export const $ = (sel, root = document) => root.querySelector(sel);

export function fmt(n) { return Number(n || 0).toLocaleString('en-US'); }

/** Wall-clock seconds (log time as written) -> "HH:MM:SS" and "YYYY-MM-DD HH:MM:SS". */
export function hms(sec) { return Number.isFinite(sec) ? new Date(sec * 1000).toISOString().slice(11, 19) : ''; }
export function stamp(sec) { return Number.isFinite(sec) ? new Date(sec * 1000).toISOString().slice(0, 19).replace('T', ' ') : ''; }

/** Relative age of a wall-clock time, given the server's "now" as wall-clock seconds. */
export function age(sec, nowWall) {
  const d = Math.max(0, nowWall - sec);
  if (d < 60) return `${Math.floor(d)}s ago`;
  if (d < 3600) return `${Math.floor(d / 60)}m ago`;
  if (d < 86400) return `${Math.floor(d / 3600)}h ago`;
  return `${Math.floor(d / 86400)}d ago`;
}

/** Save text as a download (Blob URL; allowed by the CSP). */
export function download(name, text, mime) {
  const url = URL.createObjectURL(new Blob([text], { type: mime }));
  const a = el('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 5000);
}

/** Stable colour (hsl) for a string, used for UID and type chips. */
export function hue(text) {
  let h = 0;
  for (let i = 0; i < text.length; i++) h = (h * 31 + text.charCodeAt(i)) | 0;
  return Math.abs(h) % 360;
}
