// Per-event classification helpers shared by the worker and the page: severity, class,
// private-address test, IP parsing for CIDR matching and the murmur3 hash for threat UIDs.
// Where it sits: aggregate.js calls Severity.of/classOf per threat; query.js uses the IP helpers.

export const SEV_NAMES = ['low', 'medium', 'high'];

/** Python's named-group syntax in the browser's dialect: (?P<name>...) and (?P=name). */
function browserRegex(pattern) {
  return pattern.replace(/\(\?P</g, '(?<').replace(/\(\?P=(\w+)\)/g, '\\k<$1>');
}

/** The one severity rule (core/events/severity.py). `pattern` is the server's (REMOTE_SEVERITY_REGEX
 *  or its default table data/severity.json, handed over in the page's mt-severity meta tag): its
 *  named groups high / medium / low are searched case-insensitively in the info and the reference,
 *  every match counts, the highest level matched wins; no match (or no pattern) is medium. */
export class Severity {
  constructor(pattern) {
    this.regex = pattern ? new RegExp(browserRegex(pattern), 'gi') : null;
  }

  /** 2 high, 1 medium, 0 low. */
  of(info, reference) {
    const re = this.regex;
    if (re === null) return 1;
    let best = -1;
    for (const text of [info, reference]) {
      if (!text) continue;
      re.lastIndex = 0;
      for (let m = re.exec(text); m !== null; m = re.exec(text)) {
        if (m[0] === '') re.lastIndex++;
        const g = m.groups;
        if (g) for (let rank = 2; rank > best; rank--) if (g[SEV_NAMES[rank]]) { best = rank; break; }
        if (best === 2) return 2;
      }
    }
    return best < 0 ? 1 : best;
  }
}

/** The trailing "(class)" of an info text: malware, malicious, suspicious, ... or ''. */
export function classOf(info) {
  const m = /\(([a-z -]+)\)\s*$/i.exec(info);
  return m ? m[1].toLowerCase() : '';
}

/** IPv4 text -> unsigned int, or -1. */
export function ipv4ToInt(text) {
  const parts = text.split('.');
  if (parts.length !== 4) return -1;
  let n = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return -1;
    const v = +p;
    if (v > 255) return -1;
    n = n * 256 + v;
  }
  return n;
}

/** IPv6 text -> 32 hex digits, or null. */
export function ipv6ToHex(text) {
  if (!text.includes(':') || !/^[0-9a-f:.]+$/i.test(text)) return null;
  let [head, tail] = text.split('::');
  if (text.split('::').length > 2) return null;
  const expand = (s) => (s ? s.split(':') : []);
  let h = expand(head), t = expand(tail ?? '');
  const fixV4 = (arr) => {
    const last = arr[arr.length - 1];
    if (last && last.includes('.')) {
      const v = ipv4ToInt(last);
      if (v < 0) return null;
      arr.splice(arr.length - 1, 1, (v >>> 16).toString(16), (v & 0xffff).toString(16));
    }
    return arr;
  };
  if (tail === undefined) { h = fixV4(h); if (!h || h.length !== 8) return null; t = []; }
  else { t = fixV4(t); if (!t) return null; }
  const missing = 8 - h.length - t.length;
  if (tail !== undefined && missing < 1) return null;
  const groups = [...h, ...Array(Math.max(missing, 0)).fill('0'), ...t];
  if (groups.length !== 8 || groups.some((g) => !/^[0-9a-f]{1,4}$/i.test(g))) return null;
  return groups.map((g) => g.toLowerCase().padStart(4, '0')).join('');
}

function hexBits(hex, bits) {
  let out = '';
  for (const ch of hex) out += parseInt(ch, 16).toString(2).padStart(4, '0');
  return out.slice(0, bits);
}

/** A matcher for "a.b.c.d/n" or "v6::/n"; null when the text is not a CIDR. */
export function cidrMatcher(text) {
  const slash = text.indexOf('/');
  if (slash < 0) return null;
  const addr = text.slice(0, slash), bits = +text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(text.slice(slash + 1))) return null;
  const v4 = ipv4ToInt(addr);
  if (v4 >= 0 && bits <= 32) {
    const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
    const net = (v4 & mask) >>> 0;
    return (ip) => { const n = ipv4ToInt(ip); return n >= 0 && ((n & mask) >>> 0) === net; };
  }
  const v6 = ipv6ToHex(addr);
  if (v6 && bits <= 128) {
    const prefix = hexBits(v6, bits);
    return (ip) => { const h = ipv6ToHex(ip); return h !== null && hexBits(h, bits) === prefix; };
  }
  return null;
}

const PRIVATE_V4 = [
  [0x0a000000, 8], [0xac100000, 12], [0xc0a80000, 16], [0x7f000000, 8], [0xa9fe0000, 16], [0x64400000, 10],
];

/** RFC 1918 / loopback / link-local / CGNAT / ULA addresses ("LAN"). */
export function isPrivate(ip) {
  const n = ipv4ToInt(ip);
  if (n >= 0) {
    for (const [net, bits] of PRIVATE_V4) {
      if (((n >>> (32 - bits)) << (32 - bits)) >>> 0 === net) return true;
    }
    return false;
  }
  const low = ip.toLowerCase();
  return low === '::1' || /^f[cd][0-9a-f]{0,2}:/.test(low) || /^fe[89ab][0-9a-f]?:/.test(low);
}

/**
 * What a context lookup (VirusTotal, AbuseIPDB, Shodan, urlscan) should ask about for a threat: its
 * trail, never the first public address (a DNS threat's first public address is its resolver).
 * `{kind: 'ip'|'domain'|'hash', value}` or null when the trail names nothing to look up (a UA, a
 * heuristic's description). URL/HTTP trails (`(host)/path`, `host(/path ...)`) give their host;
 * `ip:port` and `[v6]:port` give the address.
 */
export function lookupTarget(trail) {
  let text = String(trail || '').trim();
  if (!text) return null;
  if (/^[0-9a-f]{40}$/i.test(text) || /^[0-9a-f]{64}$/i.test(text)) return { kind: 'hash', value: text.toLowerCase() };
  const bracketed = /^\(([^()\s]+)\)/.exec(text);            // (host)/path: the host is bracketed
  if (bracketed) text = bracketed[1];
  else text = text.split(/[(/\s]/)[0];                      // host(/path ...), host/path, ip
  const v6 = /^\[([0-9a-f:.]+)\](?::\d+)?$/i.exec(text);
  if (v6) return { kind: 'ip', value: v6[1].toLowerCase() };
  const v4 = /^(\d{1,3}(?:\.\d{1,3}){3})(?::\d+)?$/.exec(text);
  if (v4) return ipv4ToInt(v4[1]) >= 0 && !isPrivate(v4[1]) ? { kind: 'ip', value: v4[1] } : null;
  if (/^[0-9a-f:]+$/i.test(text) && text.includes('::')) return isPrivate(text) ? null : { kind: 'ip', value: text.toLowerCase() };
  const host = text.replace(/:\d+$/, '').toLowerCase();
  if (/^(?=.{1,253}$)([a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)+[a-z0-9-]{2,63}$/.test(host)) return { kind: 'domain', value: host };
  return null;
}

/** The lookup links [name, href] for a target of `lookupTarget`. */
export function lookupLinks(target) {
  if (!target) return [];
  const v = encodeURIComponent(target.value);
  if (target.kind === 'ip') {
    return [['VirusTotal', `https://www.virustotal.com/gui/ip-address/${v}`], ['AbuseIPDB', `https://www.abuseipdb.com/check/${v}`],
      ['Shodan', `https://www.shodan.io/host/${v}`], ['urlscan', `https://urlscan.io/search/#ip:${v}`]];
  }
  if (target.kind === 'domain') {
    return [['VirusTotal', `https://www.virustotal.com/gui/domain/${v}`], ['AbuseIPDB', `https://www.abuseipdb.com/check/${v}`],
      ['Shodan', `https://www.shodan.io/domain/${v}`], ['urlscan', `https://urlscan.io/search/#domain:${v}`]];
  }
  return [['VirusTotal', `https://www.virustotal.com/gui/search/${v}`]];
}

/** MurmurHash3 x86 32-bit of a string's UTF-16 code units (low byte each), as the public algorithm. */
export function murmur3(key, seed) {
  let h = seed >>> 0;
  const len = key.length;
  const rem = len & 3;
  const blocks = len - rem;
  const c1 = 0xcc9e2d51, c2 = 0x1b873593;
  let i = 0;
  while (i < blocks) {
    let k = (key.charCodeAt(i) & 0xff) | ((key.charCodeAt(i + 1) & 0xff) << 8) |
      ((key.charCodeAt(i + 2) & 0xff) << 16) | ((key.charCodeAt(i + 3) & 0xff) << 24);
    i += 4;
    k = Math.imul(k, c1); k = (k << 15) | (k >>> 17); k = Math.imul(k, c2);
    h ^= k; h = (h << 13) | (h >>> 19); h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  let k = 0;
  if (rem === 3) k ^= (key.charCodeAt(i + 2) & 0xff) << 16;
  if (rem >= 2) k ^= (key.charCodeAt(i + 1) & 0xff) << 8;
  if (rem >= 1) {
    k ^= key.charCodeAt(i) & 0xff;
    k = Math.imul(k, c1); k = (k << 15) | (k >>> 17); k = Math.imul(k, c2); h ^= k;
  }
  h ^= len;
  h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Port service names shown next to well-known ports. */
export const SERVICES = {
  21: 'ftp', 22: 'ssh', 23: 'telnet', 25: 'smtp', 53: 'dns', 80: 'http', 110: 'pop3', 123: 'ntp',
  135: 'msrpc', 137: 'netbios', 139: 'netbios', 143: 'imap', 161: 'snmp', 389: 'ldap', 443: 'https',
  445: 'smb', 465: 'smtps', 587: 'submission', 853: 'dot', 993: 'imaps', 995: 'pop3s', 1433: 'mssql',
  1723: 'pptp', 3306: 'mysql', 3389: 'rdp', 5060: 'sip', 5432: 'postgres', 5900: 'vnc', 6379: 'redis',
  8080: 'http-alt', 8443: 'https-alt', 9200: 'elastic', 27017: 'mongodb',
};

/** Ports whose exposure is commonly abused (a small "risky port" hint in the grid). */
export const RISKY_PORTS = new Set([23, 135, 139, 445, 1433, 3389, 5900, 6379, 9200, 27017]);
