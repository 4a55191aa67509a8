// Small helpers every view uses: building DOM from text (never HTML), the one fetch wrapper that
// adds the bearer token and turns the API's coded errors into messages, times, bytes and downloads.

/**
 * el('a', { href: '#/x', class: 'y', on: { click: f } }, 'text', child) builds an element. Children
 * that are strings become text nodes: nothing passed here is ever parsed as HTML.
 */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'on') for (const [ev, fn] of Object.entries(v)) e.addEventListener(ev, fn);
    else if (k === 'text') e.textContent = String(v);
    else if (k in e && typeof v !== 'string') e[k] = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  append(e, children);
  return e;
}

function append(parent, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(parent, c);
    else if (c instanceof Node) parent.append(c);
    else parent.append(document.createTextNode(String(c)));
  }
}

const TOKEN_KEY = 'mirrorguard.token';
export const session = {
  get token() {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  set token(t) {
    if (t === null) sessionStorage.removeItem(TOKEN_KEY);
    else sessionStorage.setItem(TOKEN_KEY, t);
  },
  /** { name, role } from GET /v1/whoami, once signed in. */
  me: null,
};

/** An API error: the HTTP status and the body's code and message (docs/errors.md). */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
  toString() {
    return `${this.code}: ${this.message}`;
  }
}

/** Called when the server refuses the token (401): the console signs out. */
export const hooks = { onUnauthorized: () => {} };

/** fetch() an API path with the bearer token; non-2xx answers throw ApiError. Returns the Response. */
export async function apiFetch(path, init = {}, token = session.token) {
  const headers = new Headers(init.headers ?? {});
  if (token) headers.set('authorization', `Bearer ${token}`);
  let r;
  try {
    r = await fetch(path, { ...init, headers, credentials: 'omit', cache: 'no-store', referrerPolicy: 'no-referrer' });
  } catch (e) {
    throw new ApiError(0, 'network', `the server did not answer (${e.message})`);
  }
  if (r.ok) return r;
  let code = `HTTP ${r.status}`;
  let message = r.statusText;
  try {
    const b = await r.json();
    if (typeof b.code === 'string') code = b.code;
    if (typeof b.message === 'string') message = b.message;
  } catch {
    /* not our JSON error body */
  }
  const err = new ApiError(r.status, code, message);
  if (r.status === 401 && token === session.token) hooks.onUnauthorized(err);
  throw err;
}

/** GET (or send) JSON. */
export async function api(path, init = {}) {
  const r = await apiFetch(path, init);
  return r.json();
}

export function postJson(path, body) {
  return api(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

/** Query string from an object, leaving out empty values. */
export function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

/** 2026-12-03 09:49:37 UTC */
export function utc(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
}

/** A <time> in UTC with the local time on hover. */
export function time(iso) {
  if (iso === null || iso === undefined || iso === '') return el('span', { class: 'note' }, '-');
  const d = new Date(iso);
  const local = Number.isNaN(d.getTime()) ? '' : `Local time: ${d.toLocaleString()}`;
  return el('time', { datetime: iso, title: local }, utc(iso));
}

export function bytes(n) {
  if (n === null || n === undefined) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) (v /= 1024), i++;
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

export const num = (n) => (n === null || n === undefined ? '-' : Number(n).toLocaleString('en-US'));

/** A table with a caption, headers and rows of cells (strings or nodes; { num } for right-aligned). */
export function table(caption, headers, rows) {
  return el(
    'table',
    {},
    el('caption', { class: 'visually-hidden' }, caption),
    el('thead', {}, el('tr', {}, headers.map((h) => el('th', { scope: 'col', class: h.startsWith('#') ? 'num' : undefined }, h.replace(/^#/, ''))))),
    el(
      'tbody',
      {},
      rows.map((cells) => el('tr', {}, cells.map((c) => (c && typeof c === 'object' && 'num' in c ? el('td', { class: 'num' }, c.num) : el('td', {}, c))))),
    ),
  );
}

/** A labelled form control for a filter form. */
export function field(label, control, cls) {
  const id = control.id || `f-${label.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
  control.id = id;
  return el('div', { class: cls ? `field ${cls}` : 'field' }, el('label', { for: id }, label), control);
}

export function select(name, options, value) {
  return el(
    'select',
    { name },
    options.map(([v, label]) => el('option', { value: v, selected: v === (value ?? '') }, label)),
  );
}

export function input(name, value, attrs = {}) {
  return el('input', { name, value: value ?? '', autocomplete: 'off', spellcheck: 'false', ...attrs });
}

/** The form's non-empty values, as an object. */
export function formValues(form) {
  const out = {};
  for (const [k, v] of new FormData(form)) if (typeof v === 'string' && v.trim() !== '') out[k] = v.trim();
  return out;
}

export function badge(text, cls) {
  return el('span', { class: `badge ${cls}` }, text);
}

export function errorBox(e) {
  return el('p', { class: 'error', role: 'alert' }, e instanceof ApiError ? `${e.code}: ${e.message}` : String(e?.message ?? e));
}

export function announce(text) {
  const s = document.getElementById('status');
  if (s) s.textContent = text;
}

/** The file name of a Content-Disposition header (RFC 6266: filename* first). */
export function dispositionName(h, fallback) {
  if (!h) return fallback;
  const star = /filename\*=UTF-8''([^;]+)/i.exec(h);
  if (star) {
    try {
      return decodeURIComponent(star[1]);
    } catch {
      /* fall through */
    }
  }
  const plain = /filename="?([^";]+)"?/i.exec(h);
  return plain ? plain[1] : fallback;
}

/**
 * Download an API path with the token (a plain link cannot send a bearer header): fetch it, hand the
 * bytes to the browser as a file, and return what the answer said about it.
 */
export async function download(path, fallbackName) {
  const r = await apiFetch(path);
  const blob = await r.blob();
  const name = dispositionName(r.headers.get('content-disposition'), fallbackName);
  const url = URL.createObjectURL(blob);
  const a = el('a', { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  let sha256 = null;
  // SubtleCrypto exists only in secure contexts (HTTPS, or loopback over HTTP).
  if (globalThis.crypto?.subtle) {
    const d = await crypto.subtle.digest('SHA-256', await blob.arrayBuffer());
    sha256 = [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, '0')).join('');
  }
  const auditId = r.headers.get('x-audit-id');
  return { name, bytes: blob.size, sha256, auditId: auditId ? Number(auditId) : null };
}

/** The audit row of a finished transfer: its SHA-256 as the server computed it. */
export async function auditRow(id) {
  // The row is completed when the last byte went out; give the server a moment if we were faster.
  for (let i = 0; i < 10; i++) {
    const r = await api(`/v1/audit/${id}`);
    if (r.sha256 || i === 9) return r;
    await new Promise((res) => setTimeout(res, 100));
  }
}

/** Where a finding's traffic is: its VNI and source, or those of the first correlated traffic. */
export function trafficOf(f) {
  const t = f.correlated?.traffic?.[0];
  return { vni: f.vni ?? t?.vni, sourceIp: f.sourceIp ?? t?.sourceIp };
}

/** Who did it: as src/alert/links.ts actorOf(). */
export function actorOf(f) {
  for (const c of f.correlated?.control ?? []) if (c.actorArn) return c.actorArn;
  const ev = f.evidence ?? {};
  if (typeof ev.actorArn === 'string') return ev.actorArn;
  if (typeof ev.actor === 'string') return ev.actor;
  if (ev.userIdentity && typeof ev.userIdentity.arn === 'string') return ev.userIdentity.arn;
  return undefined;
}

/** The extraction window of a finding, widened by a margin (seconds), as the webhook link does. */
export function findingWindow(f, marginSeconds = 300) {
  const m = marginSeconds * 1000;
  return { from: new Date(Date.parse(f.firstSeen) - m).toISOString(), to: new Date(Date.parse(f.lastSeen) + m).toISOString() };
}
