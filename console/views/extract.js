// Extract: one merged PCAP for a session or a VNI (optionally one source) over a time window, with a
// capture filter checked as you type (GET /v1/pcap/filter: the error position is underlined). When
// the download finishes: the SHA-256 the server recorded and the audit id.
import { api, auditRow, download, el, errorBox, field, input, qs } from '../lib.js';
import { result } from './captures.js';

/** Wait this long after the last keystroke before asking the server, ms. */
const CHECK_DELAY_MS = 150;

/** The filter text with the character at `position` (1-based) marked; past the end, a marked space. */
function echo(text, position) {
  const i = Math.min(Math.max(position - 1, 0), text.length);
  // The token at the error position: up to the next space or parenthesis.
  let j = i;
  while (j < text.length && !/[\s()]/.test(text[j])) j++;
  if (j === i) j = Math.min(i + 1, text.length);
  const bad = text.slice(i, j) || ' ';
  return [text.slice(0, i), el('mark', {}, bad), text.slice(j)];
}

export async function extract(ctx) {
  const p = ctx.params;
  const filter = input('filter', p.get('filter'), { id: 'filter', size: 60, 'aria-describedby': 'filter-check', placeholder: 'host 10.0.0.5 and tcp port 443' });
  const check = el('div', { id: 'filter-check', 'aria-live': 'polite' });
  const out = el('div', { role: 'status', 'aria-live': 'polite' });
  let timer = null;
  let seq = 0;

  async function checkFilter() {
    const text = filter.value;
    const mine = ++seq;
    if (text.trim() === '') {
      filter.removeAttribute('aria-invalid');
      check.replaceChildren(el('span', { class: 'note' }, 'No filter: every packet of the window.'));
      return true;
    }
    try {
      const r = await api(`/v1/pcap/filter${qs({ filter: text })}`);
      if (mine !== seq) return r.valid;
      if (r.valid) {
        filter.removeAttribute('aria-invalid');
        check.replaceChildren(el('span', { class: 'ok' }, 'Valid: '), el('code', {}, r.normalized));
      } else {
        filter.setAttribute('aria-invalid', 'true');
        check.replaceChildren(
          el('span', { class: 'error-text' }, r.position ? `Error at position ${r.position}: ${r.message}` : r.message),
          el('div', { class: 'filter-echo', 'aria-hidden': 'true' }, r.position ? echo(text, r.position) : text),
        );
      }
      return r.valid;
    } catch (e) {
      if (mine === seq) check.replaceChildren(errorBox(e));
      return false;
    }
  }
  filter.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(checkFilter, CHECK_DELAY_MS);
  });

  const form = el(
    'form',
    {
      class: 'filters',
      'aria-label': 'Extraction',
      on: {
        submit: async (ev) => {
          ev.preventDefault();
          const v = Object.fromEntries([...new FormData(ev.target)].map(([k, x]) => [k, String(x).trim()]).filter(([, x]) => x !== ''));
          // Keep the request in the URL, so it can be bookmarked or handed on.
          history.replaceState(null, '', `#/extract${qs(v)}`);
          if (v.filter && !(await checkFilter())) {
            filter.focus();
            return;
          }
          out.replaceChildren(el('p', {}, 'Extracting ...'));
          try {
            const d = await download(`/v1/pcap${qs(v)}`, 'mirrorguard.pcap');
            const row = d.auditId ? await auditRow(d.auditId) : null;
            out.replaceChildren(result(d, row));
            out.querySelector('h2').textContent = 'Extracted';
          } catch (e) {
            out.replaceChildren(errorBox(e));
          }
        },
      },
    },
    field('Session', input('session', p.get('session'), { placeholder: 'tms-...', size: 22 })),
    field('or VNI', input('vni', p.get('vni'), { inputmode: 'numeric', size: 9 })),
    field('Source IP (optional)', input('sourceIp', p.get('sourceIp'), { size: 16 })),
    field('From (UTC, ISO-8601)', input('from', p.get('from'), { required: true, size: 26, placeholder: '2026-12-01T00:00:00Z' })),
    field('To (UTC, default now)', input('to', p.get('to'), { size: 26 })),
    el('div', { class: 'field wide' }, el('label', { for: 'filter' }, 'Capture filter (optional)'), filter, check),
    el('button', { type: 'submit', id: 'extract-download' }, 'Extract and download'),
  );
  if (p.get('filter')) void checkFilter();
  return el(
    'div',
    {},
    el('h1', { tabindex: '-1' }, 'Extract'),
    el('p', { class: 'note' }, 'One PCAP of a mirror session (or a VNI, optionally one source) over a window [from, to), merged in time order. The filter runs over the inner packets: host, net, port, portrange, proto, tcp/udp/icmp, vlan; and/or/not and parentheses.'),
    form,
    out,
  );
}
