// Captures: the catalog of PCAP files, with filters in the URL and a Download link per file (fetched
// with the token, checked against the SHA-256 the server recorded in the audit log).
import { api, auditRow, bytes, download, el, errorBox, field, formValues, input, num, select, table, time } from '../lib.js';

const FILTERS = ['vni', 'sourceIp', 'session', 'state', 'from', 'to'];

export async function captures(ctx) {
  const p = ctx.params;
  const q = new URLSearchParams();
  for (const k of [...FILTERS, 'cursor']) if (p.get(k)) q.set(k, p.get(k));
  q.set('limit', '100');
  const page = await api(`/v1/captures?${q}`);
  const out = el('div', { role: 'status', 'aria-live': 'polite' });
  const form = el(
    'form',
    { class: 'filters', role: 'search', 'aria-label': 'Filter capture files', on: { submit: (ev) => (ev.preventDefault(), ctx.go('captures', formValues(ev.target))) } },
    field('VNI', input('vni', p.get('vni'), { inputmode: 'numeric', size: 9 })),
    field('Source IP', input('sourceIp', p.get('sourceIp'), { size: 16 })),
    field('Session', input('session', p.get('session'), { placeholder: 'tms-...', size: 22 })),
    field('State', select('state', [['', 'any'], ['open', 'open (being written)'], ['closed', 'closed']], p.get('state'))),
    field('From (UTC)', input('from', p.get('from'), { size: 22 })),
    field('To (UTC)', input('to', p.get('to'), { size: 22 })),
    el('button', { type: 'submit' }, 'Apply'),
  );
  const get = (c) => async (ev) => {
    ev.preventDefault();
    out.replaceChildren(el('p', {}, `Downloading ${c.name} ...`));
    try {
      const d = await download(c.download, c.name);
      const row = d.auditId ? await auditRow(d.auditId) : null;
      out.replaceChildren(result(d, row));
    } catch (e) {
      out.replaceChildren(errorBox(e));
    }
  };
  const rows = page.items.map((c) => [
    { num: String(c.id) },
    c.worker === null || c.worker === undefined ? '-' : `worker ${c.worker}`,
    { num: String(c.vni) },
    [c.sourceIp, c.gwlbEndpointId ? el('span', { class: 'note' }, ` via ${c.gwlbEndpointId}`) : ''],
    c.sessionId ?? '-',
    time(c.firstPacketAt ?? c.createdAt),
    time(c.lastPacketAt),
    { num: num(c.packets) },
    { num: bytes(c.bytes) },
    el('span', { class: 'mono' }, c.sha256 ?? (c.state === 'open' ? 'when closed' : '-')),
    [c.state, c.closeReason ? ` (${c.closeReason})` : '', c.archive ? `, archive: ${c.archive.state ?? c.archive}` : ''],
    el('a', { href: c.download, on: { click: get(c) } }, 'Download'),
  ]);
  const filters = Object.fromEntries(FILTERS.filter((k) => p.get(k)).map((k) => [k, p.get(k)]));
  const t = rows.length ? table('Capture files, newest first', ['#Id', 'Node', '#VNI', 'Source IP', 'Session', 'First packet', 'Last packet', '#Packets', '#Size', 'SHA-256', 'State', 'File'], rows) : el('p', { class: 'note' }, 'No capture files match.');
  for (const td of t.querySelectorAll?.('tbody td:nth-child(10)') ?? []) td.classList.add('hash');
  return el(
    'div',
    {},
    el('h1', { tabindex: '-1' }, 'Captures'),
    form,
    t,
    el('div', { class: 'pager' }, page.nextCursor ? el('a', { href: `#/captures?${new URLSearchParams({ ...filters, cursor: page.nextCursor })}`, rel: 'next' }, 'Next page') : null),
    out,
  );
}

/** What a finished download proves: the bytes, the SHA-256 the server recorded, ours, the audit id. */
export function result(d, row) {
  const server = row?.sha256 ?? null;
  const match = server && d.sha256 ? (server === d.sha256 ? 'matches the file in your browser' : 'DOES NOT MATCH the file in your browser') : null;
  return el(
    'div',
    { class: 'result', id: 'download-result' },
    el('h2', {}, 'Downloaded'),
    el(
      'dl',
      { class: 'kv' },
      el('dt', {}, 'File'), el('dd', {}, d.name),
      el('dt', {}, 'Bytes'), el('dd', {}, num(d.bytes)),
      el('dt', {}, 'SHA-256'), el('dd', { class: 'mono', id: 'download-sha256' }, server ?? d.sha256 ?? 'not recorded'),
      match ? [el('dt', {}, 'Check'), el('dd', { class: server === d.sha256 ? 'ok' : 'error' }, match)] : null,
      el('dt', {}, 'Audit id'), el('dd', { id: 'download-audit-id' }, d.auditId === null ? '-' : el('a', { href: `#/audit?id=${d.auditId}` }, String(d.auditId))),
    ),
  );
}
