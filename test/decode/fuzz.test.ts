/**
 * Property tests (msgpack-javascript's decode fuzz idea): random bytes and random mutations of good
 * packets never throw, never produce offsets outside the input, never nest past the limit, and the same
 * PacketState decodes a good packet correctly right afterwards (reset really resets).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DROP_COUNT } from '../../src/outcomes.js';
import { compileFilter } from '../../src/decode/filter.js';
import { decodeInnerFrame } from '../../src/decode/inner.js';
import { decodeCapturedFrame, LINKTYPE, SUPPORTED_LINKTYPES } from '../../src/decode/outer.js';
import { MAX_TUNNEL_DEPTH, MAX_VLAN_DEPTH, PacketState } from '../../src/decode/packet-state.js';
import { decodeVxlan } from '../../src/decode/vxlan.js';
import { cat, hex } from './bytes.js';
import { INNER_TCP4_PADDED, INNER_TCP6, INNER_UDP4, VXLAN_AWS, vxlan } from './frames.js';

const OUTER_IPV4 = (payload: Buffer): Buffer => {
  const h = hex(`
    02 00 00 00 00 0b 02 00 00 00 00 0a 08 00   # Ethernet, IPv4
    45 00 00 00 00 00 00 00 40 11 00 00         # IPv4, total length filled in below, UDP
    ac 1f 00 ee ac 1f 11 bc                     # 172.31.0.238 -> 172.31.17.188
    ff 80 12 b5 00 00 00 00                     # UDP 65408 -> 4789, length filled in below
  `);
  h.writeUInt16BE(28 + payload.length, 16);
  h.writeUInt16BE(8 + payload.length, 38);
  return cat(h, payload);
};

/** A nested VXLAN frame, to give mutations something deep to break. */
const NESTED = (() => {
  let f: Buffer = INNER_UDP4;
  for (let i = 0; i < 4; i++) {
    const ip = hex('45 00 00 00 00 00 00 00 40 11 00 00 0a 00 00 01 0a 00 00 02 04 d2 12 b5 00 00 00 00');
    const payload = vxlan(i + 1, f);
    ip.writeUInt16BE(28 + payload.length, 2);
    ip.writeUInt16BE(8 + payload.length, 24);
    f = cat(hex('02 00 00 00 00 02 02 00 00 00 00 01 81 00 00 05 08 00'), ip, payload);
  }
  return f;
})();

const GOOD_VXLAN = [cat(VXLAN_AWS, INNER_UDP4), cat(VXLAN_AWS, INNER_TCP6), cat(VXLAN_AWS, INNER_TCP4_PADDED), vxlan(77, NESTED)];
const GOOD_FRAMES = GOOD_VXLAN.map((p) => OUTER_IPV4(p));

/** Every field of the state, for "same as a fresh decode" comparisons. */
function snapshot(st: PacketState): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(st)) o[k] = v instanceof Uint16Array ? Array.from(v.subarray(0, st.vlanCount)) : v;
  return o;
}

function fresh(decode: (st: PacketState) => number): { code: number; snap: Record<string, unknown> } {
  const st = new PacketState();
  st.reset();
  const code = decode(st);
  return { code, snap: snapshot(st) };
}

/** Offsets the state hands out must stay inside the decoded input; returns what is wrong, or ''. */
function boundsProblem(st: PacketState, off: number, end: number): string {
  const inside = (o: number, len: number): boolean => o === -1 || (o >= off && o + len <= end);
  if (!inside(st.l3Off, 0)) return `l3Off ${st.l3Off}`;
  if (!inside(st.l4Off, 0)) return `l4Off ${st.l4Off}`;
  if (!inside(st.src6Off, 16) || !inside(st.dst6Off, 16)) return `src6Off/dst6Off ${st.src6Off}/${st.dst6Off}`;
  if (!inside(st.outerSrc6Off, 16)) return `outerSrc6Off ${st.outerSrc6Off}`;
  if (st.tunnelDepth > MAX_TUNNEL_DEPTH) return `tunnelDepth ${st.tunnelDepth}`;
  if (st.vlanCount > MAX_VLAN_DEPTH) return `vlanCount ${st.vlanCount}`;
  if (st.innerEnd > 0 && (st.innerOff < off || st.innerEnd > end || st.origLen < 0)) return `inner ${st.innerOff}-${st.innerEnd}`;
  return '';
}

/** A good packet with random bytes overwritten, then maybe cut short. */
const mutated = (goods: Buffer[]) =>
  fc
    .record({
      which: fc.nat({ max: goods.length - 1 }),
      edits: fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { minLength: 1, maxLength: 8 }),
      cut: fc.option(fc.nat(), { nil: undefined }),
    })
    .map(({ which, edits, cut }) => {
      const b = Buffer.from(goods[which]!);
      for (const [at, v] of edits) b[at % b.length] = v;
      return cut === undefined ? b : b.subarray(0, cut % (b.length + 1));
    });

const junkAround = (bytes: fc.Arbitrary<Buffer | Uint8Array>) =>
  fc.tuple(fc.uint8Array({ maxLength: 16 }), bytes, fc.uint8Array({ maxLength: 16 })).map(([a, b, c]) => ({
    buf: cat(a, b, c),
    off: a.length,
    end: a.length + b.length,
  }));

describe('decoders never throw and recover', () => {
  const st = new PacketState();
  const filter = compileFilter('(tcp and port 22) or (udp and not port 53) or host 10.0.0.1 or net 2001:db8::/32 or vlan 5');
  const goodVxlan = GOOD_VXLAN.map((p) => fresh((s) => decodeVxlan(p, 0, p.length, s, false)));
  const goodFrames = GOOD_FRAMES.map((p) => fresh((s) => decodeCapturedFrame(p, 0, p.length, LINKTYPE.ETHERNET, s)));
  const goodVxlanJson = goodVxlan.map((g) => JSON.stringify(g.snap));
  const goodFramesJson = goodFrames.map((g) => JSON.stringify(g.snap));

  it('the good packets decode (sanity for the recovery checks)', () => {
    for (const g of [...goodVxlan, ...goodFrames]) expect(g.code).toBe(0);
    expect(goodVxlan[3]!.snap.tunnelDepth).toBe(MAX_TUNNEL_DEPTH);
  });

  function recover(i: number): void {
    const p = GOOD_VXLAN[i]!;
    // reset() clears what the inner decoders set; the outer fields belong to decodeOuter (resetOuter).
    st.reset();
    st.resetOuter();
    expect(decodeVxlan(p, 0, p.length, st, false)).toBe(0);
    expect(JSON.stringify(snapshot(st))).toBe(goodVxlanJson[i]);
    const f = GOOD_FRAMES[i]!;
    expect(decodeCapturedFrame(f, 0, f.length, LINKTYPE.ETHERNET, st)).toBe(0);
    expect(JSON.stringify(snapshot(st))).toBe(goodFramesJson[i]);
  }

  const inputs = fc.oneof(
    junkAround(fc.uint8Array({ maxLength: 200 })),
    junkAround(mutated(GOOD_VXLAN)),
    junkAround(mutated(GOOD_FRAMES)),
  );

  it('decodeVxlan and decodeInnerFrame over random and mutated input', () => {
    fc.assert(
      fc.property(inputs, fc.boolean(), fc.nat({ max: GOOD_VXLAN.length - 1 }), ({ buf, off, end }, strict, g) => {
        st.reset();
        const code = decodeVxlan(buf, off, end, st, strict);
        expect(code >= 0 && code < DROP_COUNT).toBe(true);
        expect(boundsProblem(st, off, end)).toBe('');
        st.reset();
        decodeInnerFrame(buf, off, end, st);
        expect(boundsProblem(st, off, end)).toBe('');
        filter.matches(buf, off, end);
        recover(g);
      }),
      { numRuns: 2000 },
    );
  });

  it('decodeCapturedFrame over random and mutated frames, every link type', () => {
    const linktypes = [...SUPPORTED_LINKTYPES, 127, 0xffff];
    fc.assert(
      fc.property(inputs, fc.constantFrom(...linktypes), fc.boolean(), fc.nat({ max: GOOD_VXLAN.length - 1 }), ({ buf, off, end }, lt, strict, g) => {
        const code = decodeCapturedFrame(buf, off, end, lt, st, strict);
        expect(code >= 0 && code < DROP_COUNT).toBe(true);
        expect(boundsProblem(st, off, end)).toBe('');
        recover(g);
      }),
      { numRuns: 2000 },
    );
  });

  it('a good packet decodes the same inside any junk', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ maxLength: 64 }), fc.nat({ max: GOOD_FRAMES.length - 1 }), (a, c, i) => {
        const g = GOOD_FRAMES[i]!;
        const buf = cat(a, g, c);
        expect(decodeCapturedFrame(buf, a.length, a.length + g.length, LINKTYPE.ETHERNET, st)).toBe(0);
        const s = snapshot(st);
        const want = goodFrames[i]!.snap;
        for (const k of ['innerOff', 'innerEnd', 'l3Off', 'l4Off', 'vxlanOff', 'vxlanEnd', 'src6Off', 'dst6Off']) {
          const w = want[k] as number;
          expect(s[k]).toBe(w === -1 ? -1 : w + a.length);
        }
        expect([s.vni, s.srcPort, s.dstPort, s.src4, s.weird, s.origLen, s.tunnelDepth]).toEqual([
          want.vni, want.srcPort, want.dstPort, want.src4, want.weird, want.origLen, want.tunnelDepth,
        ]);
      }),
      { numRuns: 500 },
    );
  });
});
