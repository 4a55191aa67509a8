/**
 * The capture ring's kernel filter (src/ingest/ring-filter.ts) against tcpdump's own compilation of
 * `udp dst port P and dst host H`: both programs run on the same crafted Ethernet frames (test/helpers/cbpf.ts)
 * and must agree on every unfragmented frame addressed to this host. The two documented differences are
 * checked as such: later IPv4 fragments (we keep them, to count them) and frames not addressed to this
 * host (we drop them by packet type).
 */
import { spawnSync } from 'node:child_process';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ipv4Number, ringFilter, SNAP_BYTES, type RingTarget } from '../../src/ingest/ring-filter.js';
import { parseDd, runBpf, type Insn } from '../helpers/cbpf.js';
import { describeNeeds } from '../helpers/needs.js';
import { ether, ipv4, ipv6, raw, tcp, udp } from '../helpers/packets.js';

function tcpdumpProgram(expr: string): Insn[] {
  const r = spawnSync('tcpdump', ['-y', 'EN10MB', '-dd', expr], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tcpdump -dd failed: ${r.stderr}`);
  return parseDd(r.stdout);
}

const H = '10.0.0.5';
const vx = (o: { dst?: string; dport?: number; proto?: 'udp' | 'tcp'; frag?: number; mf?: boolean; options?: boolean } = {}) => {
  const l4 = o.proto === 'tcp' ? tcp({ dport: o.dport ?? 4789 }, raw('p', 40)) : udp({ sport: 50000, dport: o.dport ?? 4789 }, raw('v', 58));
  const f = ether({}, ipv4({ src: '172.31.0.238', dst: o.dst ?? H, frag: o.frag ?? 0 }, l4));
  if (o.mf) f[14 + 6]! |= 0x20;
  if (o.options) {
    // Insert a 4-byte IPv4 option (NOP x4): IHL 6, the UDP header moves by 4.
    const withOpt = Buffer.concat([f.subarray(0, 34), Buffer.from([1, 1, 1, 1]), f.subarray(34)]);
    withOpt[14] = 0x46;
    withOpt.writeUInt16BE(withOpt.readUInt16BE(16) + 4, 16);
    return withOpt;
  }
  return f;
};

describe('ringFilter', () => {
  it('keeps VXLAN to the address and port, and drops the rest, by name', () => {
    const p = ringFilter([{ host: ipv4Number(H), port: 4789 }]);
    expect(runBpf(p, vx())).toBe(SNAP_BYTES);
    expect(runBpf(p, vx({ options: true }))).toBe(SNAP_BYTES);
    expect(runBpf(p, vx({ dst: '10.0.0.6' }))).toBe(0);
    expect(runBpf(p, vx({ dport: 4790 }))).toBe(0);
    expect(runBpf(p, vx({ proto: 'tcp' }))).toBe(0);
    expect(runBpf(p, ether({}, ipv6({}, udp({ dport: 4789 }, raw('x', 20)))))).toBe(0);
    expect(runBpf(p, vx().subarray(0, 30))).toBe(0);
    // Fragments to the address are kept whatever the port, to be counted; not to another address.
    expect(runBpf(p, vx({ mf: true }))).toBe(SNAP_BYTES);
    expect(runBpf(p, vx({ frag: 185, dport: 1 }))).toBe(SNAP_BYTES);
    expect(runBpf(p, vx({ frag: 185, dst: '10.0.0.6' }))).toBe(0);
    // Not addressed to this host (PACKET_OUTGOING 4, PACKET_OTHERHOST 3): dropped.
    expect(runBpf(p, vx(), 4)).toBe(0);
    expect(runBpf(p, vx(), 3)).toBe(0);
  });

  it('with two targets (VXLAN and GENEVE) keeps each on its own address and port', () => {
    const p = ringFilter([
      { host: ipv4Number(H), port: 4789 },
      { host: null, port: 6081 },
    ]);
    expect(runBpf(p, vx())).toBe(SNAP_BYTES);
    expect(runBpf(p, vx({ dport: 6081, dst: '10.9.9.9' }))).toBe(SNAP_BYTES);
    expect(runBpf(p, vx({ dst: '10.9.9.9' }))).toBe(0);
    expect(runBpf(p, vx({ frag: 10, dst: '10.9.9.9' }))).toBe(SNAP_BYTES);
  });
});

describeNeeds(['tcpdump'], 'ringFilter against tcpdump -dd', () => {
  const cases: { targets: RingTarget[]; expr: string }[] = [
    { targets: [{ host: ipv4Number(H), port: 4789 }], expr: `udp dst port 4789 and dst host ${H}` },
    { targets: [{ host: null, port: 4789 }], expr: 'udp dst port 4789' },
    {
      targets: [
        { host: ipv4Number(H), port: 4789 },
        { host: ipv4Number('10.0.0.7'), port: 6081 },
      ],
      expr: `(udp dst port 4789 and dst host ${H}) or (udp dst port 6081 and dst host 10.0.0.7)`,
    },
  ];
  for (const c of cases) {
    it(`agrees with \`${c.expr}\` on random unfragmented frames`, () => {
      const ours = ringFilter(c.targets);
      const theirs = tcpdumpProgram(c.expr);
      expect(runBpf(theirs, vx())).toBeGreaterThan(0);
      const frame = fc
        .record({
          etherType: fc.constantFrom(0x0800, 0x0800, 0x0800, 0x86dd, 0x0806),
          proto: fc.constantFrom(17, 17, 6, 1),
          dport: fc.constantFrom(4789, 6081, 4790, 53),
          dst: fc.constantFrom(H, '10.0.0.7', '10.0.0.6'),
          options: fc.boolean(),
          df: fc.boolean(),
          cut: fc.integer({ min: 0, max: 80 }),
        })
        .map((r) => {
          const f = vx({ dport: r.dport, dst: r.dst, options: r.options });
          f[14 + 9] = r.proto;
          if (r.df) f[14 + 6]! |= 0x40;
          f.writeUInt16BE(r.etherType, 12);
          // Sometimes cut short, so loads past the end reject in both.
          return r.cut < 40 ? f.subarray(0, 14 + r.cut) : f;
        });
      fc.assert(
        fc.property(frame, (f) => {
          expect(runBpf(ours, f) > 0).toBe(runBpf(theirs, f) > 0);
        }),
        { numRuns: 2000 },
      );
    });
  }

  it('differs from tcpdump only where documented: later fragments kept, first fragments of other ports kept', () => {
    const ours = ringFilter([{ host: ipv4Number(H), port: 4789 }]);
    const theirs = tcpdumpProgram(`udp dst port 4789 and dst host ${H}`);
    const later = vx({ frag: 185 });
    expect([runBpf(ours, later) > 0, runBpf(theirs, later) > 0]).toEqual([true, false]);
    const first = vx({ mf: true });
    expect([runBpf(ours, first) > 0, runBpf(theirs, first) > 0]).toEqual([true, true]);
  });
});
