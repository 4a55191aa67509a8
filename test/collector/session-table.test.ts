import { describe, expect, it } from 'vitest';
import { SessionTable } from '../../src/collector/session-table.js';

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
