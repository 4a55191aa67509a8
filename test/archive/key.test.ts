import { describe, expect, it } from 'vitest';
import { hourPrefixes, keySafe, objectKey } from '../../src/archive/key.js';

describe('object keys', () => {
  const f = { vni: 5569041, sourceIp: '172.31.0.238', node: 'i-0abc', path: '/var/lib/mirrorguard/pcap/vni-5569041/172.31.0.238/2026-11-28/1764362400000000000-w0-3.pcap', createdUs: 1_764_362_399_000_000, firstUs: 1_764_362_400_500_000 as number | null };

  it('are PREFIX/vni=N/src=IP/YYYY/MM/DD/HH/NODE-FILE, the hour of the first packet (UTC)', () => {
    expect(objectKey('mg', f)).toBe('mg/vni=5569041/src=172.31.0.238/2025/11/28/20/i-0abc-1764362400000000000-w0-3.pcap');
    expect(objectKey('', f)).toBe('vni=5569041/src=172.31.0.238/2025/11/28/20/i-0abc-1764362400000000000-w0-3.pcap');
  });

  it('depend on the file alone (a retry writes the same key): an empty file takes the hour it was opened', () => {
    expect(objectKey('mg', { ...f, firstUs: null })).toBe('mg/vni=5569041/src=172.31.0.238/2025/11/28/20/i-0abc-1764362400000000000-w0-3.pcap');
    expect(objectKey('mg', { ...f, firstUs: null, createdUs: 1_764_358_799_000_000 })).toContain('/2025/11/28/19/');
  });

  it('write IPv6 sources with hyphens and make node names key-safe', () => {
    expect(objectKey('mg', { ...f, sourceIp: 'fd00:1::5' })).toContain('/src=fd00-1--5/');
    expect(keySafe('node a/b?')).toBe('node_a_b_');
  });

  it('a window lists the hour prefixes it touches, across a day boundary', () => {
    const from = Date.UTC(2025, 11, 31, 22, 30);
    expect(hourPrefixes('mg', 7, '10.0.0.1', from, from + 2 * 3600_000)).toEqual([
      'mg/vni=7/src=10.0.0.1/2025/12/31/22/',
      'mg/vni=7/src=10.0.0.1/2025/12/31/23/',
      'mg/vni=7/src=10.0.0.1/2026/01/01/00/',
    ]);
  });
});
