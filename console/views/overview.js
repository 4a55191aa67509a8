// Overview: what the collector received and dropped, the receive sockets, the store, open findings by
// severity and the state of alert deliveries. GET /v1/status, /healthz and /v1/alerts.
import { api, badge, bytes, el, num, table, time } from '../lib.js';

const SEVERITIES = ['critical', 'high', 'medium', 'low', 'info'];

function card(title, ...body) {
  return el('section', { class: 'card', 'aria-labelledby': `card-${title.replace(/\W+/g, '-')}` }, el('h2', { id: `card-${title.replace(/\W+/g, '-')}` }, title), ...body);
}

function kv(pairs) {
  return el('dl', { class: 'kv' }, pairs.map(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
}

/** Counters that moved, in a table; those still at zero listed under a disclosure (docs/counters.md). */
function counterTable(title, what, names, c) {
  const moved = names.filter((n) => c[n] > 0).sort((a, b) => c[b] - c[a]);
  const still = names.filter((n) => !(c[n] > 0));
  return [
    el('h2', {}, title),
    moved.length ? table(title, [what, '#Packets'], moved.map((n) => [el('code', {}, n), { num: num(c[n]) }])) : el('p', {}, 'None so far.'),
    still.length ? el('details', {}, el('summary', {}, `${still.length} more at zero`), el('p', { class: 'mono' }, still.join(', '))) : null,
  ];
}

export async function overview() {
  const [status, health, alerts] = await Promise.all([
    api('/v1/status'),
    fetch('/healthz', { cache: 'no-store' }).then((r) => r.json()).catch(() => ({ status: 'unknown', checks: {} })),
    api('/v1/alerts?limit=10').catch(() => ({ items: [] })),
  ]);
  const c = status.counters ?? {};
  const names = Object.keys(c).sort();
  // Packets in and out; every other ingest, decode, session and write counter is a drop reason.
  const received = (n) => !n.includes('.') || /^ingest\.[^.]+\.(packets|batches)$/.test(n);
  const plain = names.filter(received);
  const drops = names.filter((n) => !received(n) && /^(decode|session|pcap|ingest)\./.test(n));
  const weird = names.filter((n) => n.startsWith('weird.'));
  const open = {};
  for (const f of status.findings ?? []) if (f.status === 'open') open[f.severity] = (open[f.severity] ?? 0) + f.findings;
  const a = status.alerts ?? {};
  const k = status.kernel;

  return el(
    'div',
    {},
    el('h1', { tabindex: '-1' }, 'Overview'),
    el('p', { class: 'note' }, `mirrorguard ${status.version}, up ${Math.round(status.uptimeSeconds)} s. `, status.manifest ? `Manifest ${status.manifest.file} (${status.manifest.sessions} sessions, SHA-256 ${status.manifest.sha256.slice(0, 12)}...)` : 'No manifest loaded: every mirror session is unauthorized.'),
    el(
      'div',
      { class: 'cards' },
      card(
        'Open findings by severity',
        kv(SEVERITIES.map((s) => [badge(s, `sev-${s}`), el('a', { href: `#/findings?status=open&severity=${s}` }, num(open[s] ?? 0))])),
      ),
      card('Packets', kv(plain.map((n) => [n, num(c[n])]))),
      card(
        'Receivers',
        k ? kv([['sockets', num(k.sockets)], ['kernel drops', num(k.drops)], ['receive queue', bytes(k.rxQueueBytes)]]) : el('p', { class: 'note' }, 'No kernel socket statistics (not Linux, or not receiving from a socket).'),
        kv([['live sessions', num(status.sessionsLive)]]),
      ),
      card(
        'Store',
        kv([
          ['health', badge(health.status, health.status === 'ok' ? 'st-authorized' : 'st-unauthorized')],
          ...Object.entries(health.checks ?? {}).map(([n, ok]) => [n, ok ? 'ok' : 'failing']),
          ['open files', num(status.captures?.open)],
          ['closed files', num(status.captures?.closed)],
          ['stored', bytes(status.captures?.bytes)],
          ['extractions', `${num(status.extractions?.active)} running of ${num(status.extractions?.max)}`],
        ]),
      ),
      card(
        'Alert delivery',
        kv([
          ['pending', num(a.pending)],
          ['delivered', num(a.delivered)],
          ['failed', num(a.failed)],
        ]),
      ),
    ),
    counterTable('Drops by reason', 'Reason', drops, c),
    counterTable('Oddities (kept, counted)', 'Counter', weird, c),
    el('h2', {}, 'Recent alert deliveries'),
    alerts.items.length
      ? table(
          'Recent alert deliveries',
          ['Created', 'Endpoint', 'Event', 'Finding', 'State', '#Attempts', 'Last answer'],
          alerts.items.map((d) => [
            time(d.createdAt),
            String(d.endpoint ?? ''),
            String(d.type ?? ''),
            d.findingId ? el('a', { href: `#/findings/${encodeURIComponent(d.findingId)}` }, String(d.findingId)) : '-',
            String(d.state ?? ''),
            { num: num(d.attempts) },
            [d.lastStatus, d.lastError].filter((x) => x !== null && x !== undefined).join(' '),
          ]),
        )
      : el('p', { class: 'note' }, 'No alerts sent yet.'),
  );
}
