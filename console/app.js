// The console's shell: sign-in, navigation by role, and a hash router (#/view/id?filters) so that
// every view with its filters is a URL one can bookmark, share or open from a webhook.
import { ApiError, api, apiFetch, el, errorBox, hooks, session } from './lib.js';
import { overview } from './views/overview.js';
import { findings, finding } from './views/findings.js';
import { sessions } from './views/sessions.js';
import { captures } from './views/captures.js';
import { extract } from './views/extract.js';
import { audit } from './views/audit.js';

/** The views, in navigation order, with the roles that may open them (admin may open everything). */
const VIEWS = [
  { path: 'overview', name: 'Overview', roles: ['auditor'], render: overview },
  { path: 'findings', name: 'Findings', roles: ['auditor'], render: findings, item: finding },
  { path: 'sessions', name: 'Sessions', roles: ['auditor'], render: sessions },
  { path: 'captures', name: 'Captures', roles: ['auditor'], render: captures },
  { path: 'extract', name: 'Extract', roles: ['auditor'], render: extract },
  { path: 'audit', name: 'Audit', roles: ['auditor', 'ingest'], render: audit },
];

const allowed = (v, role) => role === 'admin' || v.roles.includes(role);
const main = () => document.getElementById('main');

/** #/findings/f_1?kind=x -> { path: 'findings', id: 'f_1', params: URLSearchParams } */
export function parseHash(hash = location.hash) {
  const h = hash.replace(/^#\/?/, '');
  const i = h.indexOf('?');
  const [path = '', id] = (i < 0 ? h : h.slice(0, i)).split('/');
  return { path, id: id ? decodeURIComponent(id) : undefined, params: new URLSearchParams(i < 0 ? '' : h.slice(i + 1)) };
}

function signOut(message) {
  session.token = null;
  session.me = null;
  renderSignIn(message);
}

hooks.onUnauthorized = (err) => signOut(`Signed out: the server refused the token (${err.code}: ${err.message}).`);

function renderShell() {
  const nav = document.getElementById('nav');
  const who = document.getElementById('who');
  const role = session.me.role;
  nav.replaceChildren(el('ul', {}, VIEWS.filter((v) => allowed(v, role)).map((v) => el('li', {}, el('a', { href: `#/${v.path}`, 'data-view': v.path }, v.name)))));
  who.replaceChildren(
    el('span', {}, `${session.me.name} (${role})`),
    el('button', { type: 'button', id: 'signout', on: { click: () => signOut('You are signed out; the token was removed from this tab.') } }, 'Sign out'),
  );
  nav.hidden = false;
  who.hidden = false;
}

function renderSignIn(message) {
  document.getElementById('nav').hidden = true;
  document.getElementById('who').hidden = true;
  document.title = 'Sign in - mirrorguard console';
  // No `name`, and a POST form: even if the script failed mid-submit, the token could never be
  // serialized into a URL.
  const tokenInput = el('input', { id: 'token', type: 'password', autocomplete: 'off', required: true, spellcheck: 'false', 'aria-describedby': 'token-help' });
  const out = el('div', { id: 'signin-message' });
  if (message) out.append(el('p', { class: 'note', role: 'status' }, message));
  const form = el(
    'form',
    {
      class: 'signin',
      method: 'post',
      on: {
        submit: async (ev) => {
          ev.preventDefault();
          const token = tokenInput.value.trim();
          if (!token) return;
          try {
            const me = await (await apiFetch('/v1/whoami', {}, token)).json();
            session.token = token;
            session.me = me;
            tokenInput.value = '';
            start();
          } catch (e) {
            out.replaceChildren(errorBox(e instanceof ApiError && e.status === 401 ? new ApiError(401, e.code, `the token was refused (${e.message})`) : e));
            tokenInput.focus();
          }
        },
      },
    },
    el('h1', { tabindex: '-1' }, 'Sign in'),
    el('label', { for: 'token' }, 'API token'),
    tokenInput,
    el('p', { id: 'token-help', class: 'note' }, 'The token is kept in this browser tab only (sessionStorage) and sent as a bearer header; signing out or closing the tab forgets it.'),
    el('button', { type: 'submit' }, 'Sign in'),
    out,
  );
  main().replaceChildren(form);
  tokenInput.focus();
}

let renderSeq = 0;

async function route() {
  if (!session.me) return;
  const { path, id, params } = parseHash();
  const role = session.me.role;
  const visible = VIEWS.filter((v) => allowed(v, role));
  const view = VIEWS.find((v) => v.path === path);
  if (!view || !allowed(view, role)) {
    location.replace(`#/${visible[0].path}`);
    return;
  }
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.view === view.path) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const seq = ++renderSeq;
  const container = el('div', { 'aria-busy': 'true' });
  main().replaceChildren(container);
  const ctx = {
    role,
    params,
    id,
    /** Navigate to a view with these parameters (empty ones left out). */
    go(p, q = {}) {
      const s = new URLSearchParams();
      for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== null && v !== '') s.set(k, String(v));
      const str = s.toString();
      const next = `#/${p}${str ? `?${str}` : ''}`;
      if (location.hash === next) void route();
      else location.hash = next;
    },
    /** True while this render is still the current one (a later navigation supersedes it). */
    current: () => seq === renderSeq,
  };
  try {
    const node = await (id !== undefined && view.item ? view.item(ctx) : view.render(ctx));
    if (!ctx.current()) return;
    container.replaceChildren(node);
  } catch (e) {
    if (!ctx.current() || !session.me) return;
    container.replaceChildren(el('h1', { tabindex: '-1' }, view.name), errorBox(e));
  }
  container.removeAttribute('aria-busy');
  const h1 = container.querySelector('h1');
  document.title = `${h1 ? h1.textContent : view.name} - mirrorguard console`;
  // Move focus to the new view's heading so keyboard and screen-reader users start there.
  if (h1 && !container.contains(document.activeElement)) h1.focus();
}

async function start() {
  if (!session.token) return renderSignIn();
  if (!session.me) {
    try {
      session.me = await api('/v1/whoami');
    } catch (e) {
      if (session.me === null && session.token) signOut(`Could not check the token: ${e.message}`);
      return;
    }
  }
  renderShell();
  if (!location.hash || location.hash === '#' || location.hash === '#main') location.replace('#/overview');
  await route();
}

window.addEventListener('hashchange', () => {
  if (location.hash === '#main') return;
  void route();
});
document.getElementById('skip').addEventListener('click', (ev) => {
  ev.preventDefault();
  main().focus();
});
void start();
