// Findings: the list with its filters in the URL (paged by the API's cursor), and one finding with
// its evidence, a link to its PCAP window, and (admins) acknowledge / resolve with a note.
import { actorOf, api, badge, el, errorBox, field, findingWindow, formValues, input, num, postJson, select, table, time, trafficOf, announce } from '../lib.js';

export const KINDS = [
  'unauthorized-vni', 'unexpected-source', 'expired-session', 'silent-session', 'unexpected-gwlb-endpoint', 'session-flood',
  'mirror-session-created', 'mirror-session-modified', 'mirror-session-deleted', 'mirror-target-created', 'mirror-filter-changed', 'mirror-attempt-failed',
  'unmanaged-session', 'missing-session', 'session-drift',
];
const SEVERITIES = ['critical', 'high', 'medium', 'low', 'info'];
const FILTERS = ['kind', 'severity', 'status', 'from', 'to', 'vni', 'session'];
export const PAGE_SIZE = 100;

export async function findings(ctx) {
  const p = ctx.params;
  const q = new URLSearchParams();
  for (const k of [...FILTERS, 'cursor']) if (p.get(k)) q.set(k, p.get(k));
  q.set('limit', String(PAGE_SIZE));
  const pagePromise = api(`/v1/findings?${q}`);

  const form = el(
    'form',
    {
      class: 'filters',
      role: 'search',
      'aria-label': 'Filter findings',
      on: {
        submit: (ev) => {
          ev.preventDefault();
          ctx.go('findings', formValues(ev.target));
        },
      },
    },
    field('Kind', select('kind', [['', 'any'], ...KINDS.map((k) => [k, k])], p.get('kind'))),
    field('Minimum severity', select('severity', [['', 'any'], ...SEVERITIES.map((s) => [s, s])], p.get('severity'))),
    field('Status', select('status', [['', 'any'], ['open', 'open'], ['resolved', 'resolved']], p.get('status'))),
    field('From (UTC, ISO-8601)', input('from', p.get('from'), { placeholder: '2026-12-01T00:00:00Z', size: 22 })),
    field('To (UTC, ISO-8601)', input('to', p.get('to'), { placeholder: 'now', size: 22 })),
    field('VNI', input('vni', p.get('vni'), { inputmode: 'numeric', size: 9 })),
    field('Session', input('session', p.get('session'), { placeholder: 'tms-...', size: 22 })),
    el('button', { type: 'submit' }, 'Apply'),
  );

  let page;
  try {
    page = await pagePromise;
  } catch (e) {
    return el('div', {}, el('h1', { tabindex: '-1' }, 'Findings'), form, errorBox(e));
  }
  const rows = page.items.map((f) => {
    const t = trafficOf(f);
    return [
      badge(f.severity, `sev-${f.severity}`),
      el('a', { href: `#/findings/${encodeURIComponent(f.id)}`, class: 'kind' }, f.kind),
      { num: t.vni === undefined ? '-' : String(t.vni) },
      t.sourceIp ?? '-',
      f.sessionId ?? '-',
      [f.status, f.evidence?.acknowledgement && f.status === 'open' ? ' (acknowledged)' : ''],
      time(f.firstSeen),
      time(f.lastSeen),
      { num: num(f.count) },
      f.summary,
    ];
  });
  const filters = Object.fromEntries(FILTERS.filter((k) => p.get(k)).map((k) => [k, p.get(k)]));
  return el(
    'div',
    {},
    el('h1', { tabindex: '-1' }, 'Findings'),
    form,
    rows.length
      ? table('Findings, newest first', ['Severity', 'Kind', '#VNI', 'Source IP', 'Session', 'Status', 'First seen', 'Last seen', '#Count', 'Summary'], rows)
      : el('p', { class: 'note' }, 'No findings match.'),
    el(
      'div',
      { class: 'pager' },
      p.get('cursor') ? el('a', { href: `#/findings${Object.keys(filters).length ? `?${new URLSearchParams(filters)}` : ''}` }, 'First page') : null,
      page.nextCursor ? el('a', { href: `#/findings?${new URLSearchParams({ ...filters, cursor: page.nextCursor })}`, rel: 'next' }, 'Next page') : null,
      el('span', { class: 'note' }, `${rows.length} shown, ${PAGE_SIZE} per page.`),
    ),
  );
}

function kv(pairs) {
  return el('dl', { class: 'kv' }, pairs.filter(([, v]) => v !== undefined && v !== null && v !== '').map(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
}

/** The value of a JSON field, as text. */
const text = (v) => (v === undefined || v === null ? undefined : typeof v === 'string' ? v : JSON.stringify(v));

export async function finding(ctx) {
  const f = await api(`/v1/findings/${encodeURIComponent(ctx.id)}`);
  const ev = f.evidence ?? {};
  const t = trafficOf(f);
  const w = findingWindow(f);
  const extractParams = new URLSearchParams(
    Object.entries(f.sessionId ? { session: f.sessionId, from: w.from, to: w.to } : { vni: t.vni, sourceIp: t.sourceIp, from: w.from, to: w.to }).filter(([, v]) => v !== undefined),
  );
  const canExtract = f.sessionId || t.vni !== undefined;
  const manifest = ev.manifest ? `${ev.manifest.file} (SHA-256 ${ev.manifest.sha256})` : ev.manifest === null ? 'none loaded when this was found' : undefined;
  const control = f.correlated?.control ?? [];
  const isControl = typeof ev.eventName === 'string';

  const parts = [
    el('h1', { tabindex: '-1' }, `Finding ${f.kind}`),
    el('p', {}, badge(f.severity, `sev-${f.severity}`), ' ', f.status, ' ', el('span', { class: 'note' }, f.id)),
    el('p', {}, f.summary),
    kv([
      ['Kind', f.kind],
      ['VNI', t.vni === undefined ? undefined : String(t.vni)],
      ['Source IP', t.sourceIp],
      ['Session', f.sessionId],
      ['First seen', time(f.firstSeen)],
      ['Last seen', time(f.lastSeen)],
      ['Occurrences', num(f.count)],
      ['Actor', actorOf(f)],
      ['Manifest', manifest],
      ['Acknowledged', ev.acknowledgement ? [time(ev.acknowledgement.at), ` by ${ev.acknowledgement.by}`, ev.acknowledgement.note ? `: ${ev.acknowledgement.note}` : ''] : undefined],
      ['Resolved', ev.resolution ? [time(ev.resolution.at), ev.resolution.by ? ` by ${ev.resolution.by}` : '', ev.resolution.note ? `: ${ev.resolution.note}` : ev.resolution.reason ? `: ${ev.resolution.reason}` : ''] : undefined],
    ]),
    canExtract
      ? el('p', {}, el('a', { class: 'button', href: `#/extract?${extractParams}`, id: 'to-extract' }, 'Extract the packets of this window'), ' ', el('span', { class: 'note' }, `${w.from} to ${w.to} (5 min either side)`))
      : el('p', { class: 'note' }, 'No traffic is tied to this finding yet, so there is no PCAP window to extract.'),
  ];

  if (ctx.role === 'admin' && f.status === 'open') {
    const note = el('textarea', { id: 'note', name: 'note', rows: 2, maxlength: 2000 });
    const out = el('div', { role: 'status' });
    const act = (action) => async () => {
      try {
        await postJson(`/v1/findings/${encodeURIComponent(f.id)}/${action}`, note.value.trim() ? { note: note.value.trim() } : {});
        announce(`Finding ${action === 'resolve' ? 'resolved' : 'acknowledged'}.`);
        ctx.go(`findings/${encodeURIComponent(f.id)}`);
      } catch (e) {
        out.replaceChildren(errorBox(e));
      }
    };
    parts.push(
      el('h2', {}, 'Act on it'),
      el(
        'div',
        { class: 'actions' },
        field('Note (kept with the finding and in the audit log)', note),
        el('button', { type: 'button', class: 'secondary', on: { click: act('acknowledge') } }, 'Acknowledge'),
        el('button', { type: 'button', on: { click: act('resolve') } }, 'Resolve'),
      ),
      out,
    );
  }
  if (isControl) {
    parts.push(
      el('h2', {}, 'CloudTrail record'),
      kv([
        ['Event', text(ev.eventName)],
        ['Event time', ev.eventTime ? time(ev.eventTime) : undefined],
        ['Event id', text(ev.eventId)],
        ['Actor', text(ev.actorArn)],
        ['Actor type', text(ev.actorType)],
        ['Caller IP', text(ev.callerIp)],
        ['User agent', text(ev.userAgent)],
        ['Account', text(ev.accountId)],
        ['Region', text(ev.region)],
        ['Error', text(ev.errorCode)],
        ['Request', text(ev.request)],
      ]),
    );
  }
  if (control.length) {
    parts.push(
      el('h2', {}, 'Correlated CloudTrail events'),
      table('Correlated CloudTrail events', ['Time', 'Event', 'Actor', 'Caller IP', 'Session', '#VNI'], control.map((c) => [time(c.eventTime), c.eventName, c.actorArn ?? '-', c.callerIp ?? '-', c.sessionId ?? '-', { num: c.vni ?? '-' }])),
    );
  }
  if (f.correlated?.traffic?.length) {
    parts.push(
      el('h2', {}, 'Correlated traffic'),
      table('Correlated traffic', ['Source IP', '#VNI', 'First seen', 'Last seen', '#Packets'], f.correlated.traffic.map((x) => [x.sourceIp, { num: String(x.vni) }, time(x.firstSeen), time(x.lastSeen), { num: num(x.packets) }])),
    );
  }
  parts.push(el('h2', {}, 'Evidence (as recorded)'), el('pre', { tabindex: '0', 'aria-label': 'Evidence as JSON' }, JSON.stringify(ev, null, 2)));

  parts.push(el('p', {}, el('a', { href: '#/findings' }, 'All findings')));
  return el('div', {}, parts);
}
