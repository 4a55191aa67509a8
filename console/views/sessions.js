// Sessions: the manifest and the observed (source IP, VNI) pairs side by side, with the detector's
// judgement as a badge. GET /v1/sessions.
import { api, badge, bytes, el, field, formValues, input, num, select, table, time } from '../lib.js';

const STATUSES = ['authorized', 'unauthorized', 'silent', 'expired'];

export async function sessions(ctx) {
  const p = ctx.params;
  const q = new URLSearchParams();
  for (const k of ['status', 'vni', 'session']) if (p.get(k)) q.set(k, p.get(k));
  const data = await api(`/v1/sessions${q.size ? `?${q}` : ''}`);
  const form = el(
    'form',
    { class: 'filters', role: 'search', 'aria-label': 'Filter sessions', on: { submit: (ev) => (ev.preventDefault(), ctx.go('sessions', formValues(ev.target))) } },
    field('Status', select('status', [['', 'any'], ...STATUSES.map((s) => [s, s])], p.get('status'))),
    field('VNI', input('vni', p.get('vni'), { inputmode: 'numeric', size: 9 })),
    field('Session', input('session', p.get('session'), { placeholder: 'tms-...', size: 22 })),
    el('button', { type: 'submit' }, 'Apply'),
  );
  const rows = data.items.map((r) => [
    // Manifest side
    r.inManifest ? el('span', { class: 'mono' }, r.sessionId) : el('span', { class: 'note' }, 'not in the manifest'),
    r.inManifest ? { num: String(r.vni) } : '',
    r.owner ?? '',
    r.expires ? time(r.expires) : '',
    // Observed side
    // Through a Gateway Load Balancer the pair also names the endpoint that carried it (GENEVE option 0x0108/1).
    r.sourceIp ? [r.sourceIp, r.gwlbEndpointId ? el('span', { class: 'note' }, ` via ${r.gwlbEndpointId}`) : ''] : el('span', { class: 'note' }, 'no traffic'),
    r.sourceIp ? { num: String(r.vni) } : '',
    { num: num(r.packets) },
    { num: bytes(r.bytes) },
    time(r.lastSeen),
    // Judgement
    [badge(r.status, `st-${r.status}`), r.live ? ' live' : ''],
    [r.reason ?? '', r.findingId ? [' ', el('a', { href: `#/findings/${encodeURIComponent(r.findingId)}` }, 'finding')] : ''],
    r.sourceIp ? el('a', { href: `#/captures?vni=${r.vni}&sourceIp=${encodeURIComponent(r.sourceIp)}` }, 'files') : '',
  ]);
  return el(
    'div',
    {},
    el('h1', { tabindex: '-1' }, 'Sessions'),
    el('p', { class: 'note' }, data.manifest ? `Manifest ${data.manifest.file}, ${data.manifest.sessions} sessions, SHA-256 ${data.manifest.sha256}. As of ` : 'No manifest is loaded: every observed pair is unauthorized. As of ', time(data.generatedAt), '.'),
    form,
    rows.length
      ? el(
          'table',
          {},
          el('caption', { class: 'visually-hidden' }, 'Manifest sessions and observed pairs'),
          el(
            'thead',
            {},
            el('tr', {}, el('th', { colspan: 4, scope: 'colgroup' }, 'Manifest'), el('th', { colspan: 5, scope: 'colgroup' }, 'Observed'), el('th', { colspan: 3, scope: 'colgroup' }, 'Judgement')),
            el('tr', {}, ['Session', 'VNI', 'Owner', 'Expires', 'Source IP', 'VNI', 'Packets', 'Bytes', 'Last seen', 'Status', 'Why', 'Captures'].map((h, i) => el('th', { scope: 'col', class: [1, 5, 6, 7].includes(i) ? 'num' : undefined }, h))),
          ),
          el('tbody', {}, rows.map((cells) => el('tr', {}, cells.map((c) => (c && typeof c === 'object' && 'num' in c ? el('td', { class: 'num' }, c.num) : el('td', {}, c)))))),
        )
      : el('p', { class: 'note' }, 'No sessions match.'),
  );
}
