// Audit: who downloaded or extracted what, when, with which SHA-256; admin actions too. Admins see
// every entry, other roles their own (the API decides). GET /v1/audit, /v1/audit/:id.
import { api, bytes, el, field, formValues, input, select, table, time } from '../lib.js';

const ACTIONS = ['capture.download', 'pcap.extract', 'finding.acknowledge', 'finding.resolve', 'manifest.reload', 'cloudtrail.ingest'];
const FILTERS = ['actor', 'action', 'target', 'from', 'to'];

export async function audit(ctx) {
  const p = ctx.params;
  let page;
  if (p.get('id')) page = { items: [await api(`/v1/audit/${encodeURIComponent(p.get('id'))}`)], nextCursor: null };
  else {
    const q = new URLSearchParams();
    for (const k of [...FILTERS, 'cursor']) if (p.get(k)) q.set(k, p.get(k));
    q.set('limit', '100');
    page = await api(`/v1/audit?${q}`);
  }
  const form = el(
    'form',
    { class: 'filters', role: 'search', 'aria-label': 'Filter the audit log', on: { submit: (ev) => (ev.preventDefault(), ctx.go('audit', formValues(ev.target))) } },
    ctx.role === 'admin' ? field('Actor', input('actor', p.get('actor'), { size: 14 })) : null,
    field('Action', select('action', [['', 'any'], ...ACTIONS.map((a) => [a, a])], p.get('action'))),
    field('Target', input('target', p.get('target'), { size: 24, placeholder: 'vni:777, capture:12, finding:f_...' })),
    field('From (UTC)', input('from', p.get('from'), { size: 22 })),
    field('To (UTC)', input('to', p.get('to'), { size: 22 })),
    el('button', { type: 'submit' }, 'Apply'),
  );
  const rows = page.items.map((r) => [
    { num: String(r.id) },
    time(r.at),
    r.actor,
    r.role,
    r.remoteIp ?? '-',
    r.action,
    el('span', { class: 'mono' }, r.target),
    { num: String(r.status) },
    { num: bytes(r.bytes) },
    el('span', { class: 'mono' }, r.sha256 ?? '-'),
    r.detail ? el('details', {}, el('summary', {}, 'detail'), el('pre', {}, JSON.stringify(r.detail, null, 2))) : '',
  ]);
  const filters = Object.fromEntries(FILTERS.filter((k) => p.get(k)).map((k) => [k, p.get(k)]));
  const t = rows.length ? table('Audit log, newest first', ['#Id', 'At', 'Actor', 'Role', 'From', 'Action', 'Target', '#Status', '#Bytes', 'SHA-256', 'Detail'], rows) : el('p', { class: 'note' }, 'No audit entries match.');
  for (const td of t.querySelectorAll?.('tbody td:nth-child(10)') ?? []) td.classList.add('hash');
  return el(
    'div',
    {},
    el('h1', { tabindex: '-1' }, 'Audit'),
    el('p', { class: 'note' }, ctx.role === 'admin' ? 'Every entry.' : 'The entries your token caused; admins see everyone\'s.'),
    form,
    t,
    el('div', { class: 'pager' }, page.nextCursor ? el('a', { href: `#/audit?${new URLSearchParams({ ...filters, cursor: page.nextCursor })}`, rel: 'next' }, 'Next page') : null),
  );
}
