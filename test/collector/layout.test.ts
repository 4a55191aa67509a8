import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { captureRelPath, parseCaptureRelPath } from '../../src/collector/layout.js';

describe('capture file layout', () => {
  it('puts a file in its first packet hour folder, the pair in its name', () => {
    const rel = captureRelPath(5569041, '172.31.0.238', 1_764_362_425, 123_456_789, 2, 17);
    expect(rel).toBe('pcap/2025-11-28/20/vni-5569041_172.31.0.238_20251128T204025.123456789Z-w2-17.pcap');
    expect(parseCaptureRelPath(rel)).toEqual({ vni: 5569041, sourceIp: '172.31.0.238', worker: 2 });
  });

  it('round-trips every VNI, IPv4 and IPv6 source, time and worker', () => {
    const ip = fc.oneof(fc.ipV4(), fc.ipV6().filter((a) => !a.includes('.')));
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 16_777_215 }), ip, fc.integer({ min: 0, max: 4_102_444_800 }), fc.integer({ min: 0, max: 999_999_999 }), fc.integer({ min: 0, max: 64 }), fc.integer({ min: 1, max: 1e9 }), (vni, src, sec, nsec, w, seq) => {
        const rel = captureRelPath(vni, src, sec, nsec, w, seq);
        expect(parseCaptureRelPath(rel)).toEqual({ vni, sourceIp: src, worker: w });
      }),
    );
  });

  it('still reads paths of the earlier per-pair folder layout', () => {
    expect(parseCaptureRelPath('pcap/vni-9/2001_db8__1/2026-01-01/20260101T000000.000000000Z-w0-1.pcap')).toEqual({ vni: 9, sourceIp: '2001:db8::1', worker: 0 });
  });

  it('rejects anything else: traversal, a VNI over 24 bits, other folders', () => {
    for (const bad of [
      'pcap/vni-1/../2026-01-01/20260101T000000.000000000Z-w0-1.pcap',
      'pcap/2026-01-01/00/vni-1_.._20260101T000000.000000000Z-w0-1.pcap',
      'pcap/2026-01-01/00/vni-16777216_10.0.0.1_20260101T000000.000000000Z-w0-1.pcap',
      'pcap/2026-01-01/00/../vni-1_10.0.0.1_20260101T000000.000000000Z-w0-1.pcap',
      'other/2026-01-01/00/vni-1_10.0.0.1_20260101T000000.000000000Z-w0-1.pcap',
      'pcap/2026-01-01/00/vni-1_10.0.0.1_20260101T000000.000000000Z-w0-1.pcap.tmp',
    ]) {
      expect(parseCaptureRelPath(bad), bad).toBeNull();
    }
  });
});
