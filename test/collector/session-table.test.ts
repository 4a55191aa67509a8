import { describe, expect, it } from 'vitest';
import { EVICT_IDLE_SECONDS, EVICT_RECENT_SECONDS, JUDGED_TTL_SECONDS, SessionTable } from '../../src/collector/session-table.js';

const ip4 = (s: string) => s.split('.').reduce((a, b) => a * 256 + Number(b), 0) >>> 0;
const v6 = (hex: string) => Buffer.from(hex.padStart(32, '0'), 'hex');

describe('session table', () => {
  it('keeps (source IP, VNI) pairs apart, including VNIs reused across sources and high addresses', () => {
    const t = new SessionTable(1000);
    const pairs: [string, number][] = [
      ['172.31.0.238', 5569041],
      ['172.31.0.239', 5569041],
      ['172.31.0.238', 42],
      ['255.255.255.255', 16_777_215],
      ['0.0.0.0', 0],
      ['200.1.2.3', 7],
    ];
    for (const [ip, vni] of pairs) expect(t.add4(ip4(ip), vni, 1)).not.toBeNull();
    for (const [ip, vni] of pairs) expect(t.get4(ip4(ip), vni)).toMatchObject({ sourceIp: ip, vni });
    expect(t.get4(ip4('172.31.0.240'), 5569041)).toBeUndefined();
    expect(t.size).toBe(pairs.length);
  });

  it('finds every one of many pairs whose keys collide, and removes from the middle of a chain', () => {
    const t = new SessionTable(100_000);
    const n = 20_000; // far more pairs than distinct low bits, so chains form
    for (let i = 0; i < n; i++) t.add4(0x0a000000 + i, i % 97, 1);
    for (let i = 0; i < n; i++) expect(t.get4(0x0a000000 + i, i % 97)?.vni).toBe(i % 97);
    let removed = 0;
    for (const s of t) {
      if ((s.src4 - 0x0a000000) % 3 === 0) {
        t.remove(s);
        removed++;
      }
    }
    expect(t.size).toBe(n - removed);
    for (let i = 0; i < n; i++) expect(t.get4(0x0a000000 + i, i % 97) === undefined).toBe(i % 3 === 0);
  });

  it('looks up IPv6 sources by their bytes at any offset and never confuses them with IPv4', () => {
    const t = new SessionTable(10);
    const a = v6('20010db8000000000000000000000001');
    t.add6(a, 0, 9, 1);
    const framed = Buffer.concat([Buffer.alloc(5, 0xff), a]);
    expect(t.get6(framed, 5, 9)?.sourceIp).toBe('2001:db8::1');
    expect(t.get6(framed, 5, 10)).toBeUndefined();
    expect(t.get4(0, 9)).toBeUndefined();
  });

  it('refuses new pairs when full', () => {
    const t = new SessionTable(2);
    expect(t.add4(1, 1, 1)).not.toBeNull();
    expect(t.add4(2, 1, 1)).not.toBeNull();
    expect(t.add4(3, 1, 1)).toBeNull();
  });
});

describe('session table admission and eviction (issue 16)', () => {
  type Verdict = { sessionId: string | null; status: string };
  /** A table whose judge authorizes the pairs in `authorized` ("ip|vni" with the IPv4 as a number). */
  function judged(max: number, authorized: Set<string>, admitPerSource = 0) {
    const calls: string[] = [];
    const evicted: string[] = [];
    const t = new SessionTable(max, {
      admitPerSource,
      admitIntervalSeconds: 10,
      judge: (ip, vni): Verdict => {
        calls.push(`${ip}|${vni}`);
        return authorized.has(`${ip}|${vni}`) ? { sessionId: 'tms-1', status: 'authorized' } : { sessionId: null, status: 'unauthorized-vni' };
      },
      onEvict: (s) => evicted.push(`${s.sourceIp}|${s.vni}`),
    });
    return { t, calls, evicted };
  }
  /** Fill with pairs as the collector would: status from the verdict, traffic at `lastSec`. */
  function fill(t: SessionTable, pairs: [number, number, string, number][]) {
    for (const [src, vni, status, lastSec] of pairs) {
      const s = t.add4(src, vni, 0)!;
      s.status = status;
      s.lastSec = lastSec;
    }
  }

  it('judges a pair that finds the table full, once, and refuses it without allocating a session', () => {
    const { t, calls } = judged(2, new Set());
    fill(t, [[1, 1, 'unauthorized-vni', 100], [2, 1, 'unauthorized-vni', 100]]);
    expect(t.add4(ip4('10.0.0.9'), 7, 100)).toBeNull(); // both others are active: no slot for an unauthorized newcomer
    for (let i = 0; i < 100; i++) expect(t.add4(ip4('10.0.0.9'), 7, 100)).toBeNull();
    expect(calls).toEqual(['10.0.0.9|7']);
    expect(t.counters['session.judged_untracked']).toBe(1);
    // ... and judges it again once the cache entry is old: its finding's count and last-seen move on.
    for (const s of t) s.lastSec = 100 + JUDGED_TTL_SECONDS; // the others still active
    expect(t.add4(ip4('10.0.0.9'), 7, 100 + JUDGED_TTL_SECONDS)).toBeNull();
    expect(calls).toEqual(['10.0.0.9|7', '10.0.0.9|7']);
  });

  it('evicts an unauthorized idle pair before an unauthorized active one, and never an authorized active one', () => {
    const { t, evicted } = judged(3, new Set(['10.0.0.5|42']));
    const now = 1000;
    fill(t, [
      [ip4('10.0.0.1'), 1, 'authorized', now - 1], // active authorized: never
      [ip4('10.0.0.2'), 2, 'unauthorized-vni', now - 1], // unauthorized, active
      [ip4('10.0.0.3'), 3, 'unexpected-source', now - EVICT_IDLE_SECONDS - 1], // unauthorized, idle: first
    ]);
    const s = t.add4(ip4('10.0.0.5'), 42, now);
    expect(s).toMatchObject({ status: 'authorized', sessionId: 'tms-1' }); // the verdict comes with the slot
    expect(evicted).toEqual(['10.0.0.3|3']);
    s!.lastSec = now;
    // An authorized newcomer may take an active unauthorized pair's slot; never the active authorized ones.
    t.add4(ip4('10.0.0.1'), 0, now); // unauthorized, table full: no idle pair, refused
    expect(evicted).toEqual(['10.0.0.3|3']);
    const auth2 = judged(3, new Set(['10.0.0.6|43']));
    fill(auth2.t, [
      [ip4('10.0.0.1'), 1, 'authorized', now - 1],
      [ip4('10.0.0.2'), 2, 'unauthorized-vni', now - 1],
      [ip4('10.0.0.4'), 4, 'authorized', now - 2],
    ]);
    expect(auth2.t.add4(ip4('10.0.0.6'), 43, now)).not.toBeNull();
    expect(auth2.evicted).toEqual(['10.0.0.2|2']);
    expect(auth2.t.add4(ip4('10.0.0.7'), 44, now)).toBeNull(); // only active authorized pairs are left
    expect(auth2.t.get4(ip4('10.0.0.1'), 1)).toBeDefined();
    expect(auth2.t.get4(ip4('10.0.0.4'), 4)).toBeDefined();
  });

  it('lets an authorized newcomer take an authorized pair quiet for EVICT_RECENT_SECONDS, an unauthorized one only idle slots', () => {
    const now = 1000;
    const a = judged(2, new Set(['10.0.0.9|9']));
    fill(a.t, [
      [ip4('10.0.0.1'), 1, 'authorized', now - EVICT_RECENT_SECONDS + 1], // recent enough: kept
      [ip4('10.0.0.2'), 2, 'authorized', now - EVICT_RECENT_SECONDS], // quiet: may go
    ]);
    expect(a.t.add4(ip4('10.0.0.9'), 9, now)).not.toBeNull();
    expect(a.evicted).toEqual(['10.0.0.2|2']);
  });

  it('limits the unauthorized pairs one source adds per interval, but not authorized ones or other sources', () => {
    const { t, calls } = judged(1000, new Set(['10.0.0.1|999']), 4);
    const src = ip4('10.0.0.1');
    const got = Array.from({ length: 10 }, (_, i) => t.add4(src, 100 + i, 5) !== null);
    expect(got).toEqual([true, true, true, true, false, false, false, false, false, false]);
    expect(t.counters['session.admission_limited']).toBe(6);
    expect(calls).toHaveLength(6); // the refused ones were judged; the admitted ones are the collector's to judge
    expect(t.add4(src, 999, 5)).toMatchObject({ status: 'authorized' }); // over budget, but authorized
    expect(t.add4(ip4('10.0.0.2'), 100, 5)).not.toBeNull(); // another source has its own budget
    expect(t.add4(src, 200, 10)).not.toBeNull(); // the next interval
    expect(t.size).toBe(7);
  });

  it('remembers refused IPv6 pairs by their whole address', () => {
    const { t, calls } = judged(1, new Set());
    t.add4(1, 1, 0)!.status = 'authorized';
    const a = v6('20010db8000000000000000000000001');
    const b = v6('20010db8000000000000000000000002');
    expect(t.add6(a, 0, 9, 1)).toBeNull();
    expect(t.add6(a, 0, 9, 1)).toBeNull();
    expect(t.add6(b, 0, 9, 1)).toBeNull();
    expect(calls).toEqual(['2001:db8::1|9', '2001:db8::2|9']);
  });
});
