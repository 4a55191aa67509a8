/**
 * sequentialPlan (src/api/routes/pcap.ts): when the catalog shows files that follow each other in time,
 * the extraction streams the ones wholly inside the window as bytes. Catalog times are whole microseconds
 * rounded down, so the plan must only call files sequential or whole when nanoseconds cannot disagree.
 */
import { describe, expect, it } from 'vitest';
import type { CaptureRow } from '../../src/collector/catalog.js';
import { isLoopbackPeer, sequentialPlan } from '../../src/api/routes/pcap.js';

function row(id: number, firstUs: number | null, lastUs: number | null, packets: number, state: 'open' | 'closed' = 'closed'): CaptureRow {
  return {
    id, path: `f${id}.pcap`, vni: 1, source_ip: '10.0.0.1', session_id: null, worker: 0, state, created_us: firstUs ?? 0, closed_us: null,
    first_us: firstUs, last_us: lastUs, packets, bytes: 24 + packets * 76, sha256: null, close_reason: null, gwlb_endpoint_id: null, gwlb_attachment_id: null,
  };
}
const S = 1_764_000_000;
const us = (sec: number, micro = 0) => sec * 1_000_000 + micro;

describe('sequentialPlan', () => {
  it('rotated files inside the window are whole; the ones at its edges are read record by record', () => {
    const rows = [row(1, us(S), us(S + 9, 999_999), 10), row(2, us(S + 10), us(S + 19), 20), row(3, us(S + 20), us(S + 29), 30)];
    expect(sequentialPlan(rows, { sec: S, nsec: 0 }, { sec: S + 30, nsec: 0 })).toEqual([10, 20, 30]);
    // `from` 1 ns after the first file's first microsecond: that file may hold a record before it.
    expect(sequentialPlan(rows, { sec: S, nsec: 1 }, { sec: S + 30, nsec: 0 })).toEqual([undefined, 20, 30]);
    // `to` inside the last file's last microsecond: it may hold a record at or after `to`.
    expect(sequentialPlan(rows, { sec: S, nsec: 0 }, { sec: S + 29, nsec: 500 })).toEqual([10, 20, undefined]);
    expect(sequentialPlan(rows, { sec: S, nsec: 0 }, { sec: S + 29, nsec: 1000 })).toEqual([10, 20, 30]);
  });

  it('files sharing a microsecond, overlapping, or an open file before the last are not sequential', () => {
    expect(sequentialPlan([row(1, us(S), us(S + 10), 5), row(2, us(S + 10), us(S + 20), 5)], { sec: S, nsec: 0 }, { sec: S + 30, nsec: 0 })).toBeNull();
    expect(sequentialPlan([row(1, us(S), us(S + 10), 5), row(2, us(S + 5), us(S + 20), 5)], { sec: S, nsec: 0 }, { sec: S + 30, nsec: 0 })).toBeNull();
    expect(sequentialPlan([row(1, us(S), null, 5, 'open'), row(2, us(S + 20), us(S + 21), 5)], { sec: S, nsec: 0 }, { sec: S + 30, nsec: 0 })).toBeNull();
  });

  it('the file being written may come last (never whole), and an empty closed file fits anywhere', () => {
    const rows = [row(1, us(S), us(S + 1), 5), row(9, null, null, 0), row(2, us(S + 2), null, 7, 'open')];
    expect(sequentialPlan(rows, { sec: S, nsec: 0 }, { sec: S + 30, nsec: 0 })).toEqual([5, 0, undefined]);
  });
});

describe('isLoopbackPeer (where an extraction body is hashed)', () => {
  it('knows a peer on this host from one elsewhere', () => {
    for (const a of ['127.0.0.1', '127.43.0.1', '::1', '::ffff:127.0.0.1']) expect(isLoopbackPeer(a)).toBe(true);
    for (const a of ['10.0.0.5', '::ffff:10.0.0.5', '2001:db8::1', '::', '0.0.0.0', '1.127.0.0', undefined]) expect(isLoopbackPeer(a)).toBe(false);
  });
});
