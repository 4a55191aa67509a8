import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  canonicalIp,
  cidrToString,
  innerDestinationToString,
  innerSourceToString,
  ipv4InCidr,
  ipv4ToString,
  ipv6InCidr,
  ipv6ToString,
  outerSourceToString,
  parseCidr,
  parseIp,
} from '../../src/decode/addr.js';
import { LINKTYPE, decodeCapturedFrame } from '../../src/decode/outer.js';
import { PacketState } from '../../src/decode/packet-state.js';
import { cat, embed, hex } from './bytes.js';
import { INNER_TCP6, VXLAN_AWS } from './frames.js';

function v6(text: string): Uint8Array {
  const p = parseIp(text);
  if (p === null || p.family !== 6) throw new Error(`not IPv6: ${text}`);
  return p.v6;
}

describe('ipv4ToString', () => {
  it('formats unsigned 32-bit numbers as dotted decimal', () => {
    expect(ipv4ToString(0)).toBe('0.0.0.0');
    expect(ipv4ToString(0xac1f00ee)).toBe('172.31.0.238');
    expect(ipv4ToString(0xffffffff)).toBe('255.255.255.255');
  });
});

describe('ipv6ToString (RFC 5952)', () => {
  // Examples from RFC 5952 sections 4.1-4.3 and 5, written in non-canonical forms.
  const cases: [string, string][] = [
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'], // 4.1 no leading zeros, 4.2.1 longest run
    ['2001:db8:0:0:0:0:2:1', '2001:db8::2:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // 4.2.2 one zero group is not shortened
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], // 4.2.3 the longest run
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // 4.2.3 the first of equal runs
    ['2001:DB8::AB:CD', '2001:db8::ab:cd'], // 4.3 lowercase
    ['0:0:0:0:0:0:0:0', '::'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['1:0:0:0:0:0:0:0', '1::'],
    ['::ffff:192.0.2.1', '::ffff:192.0.2.1'], // 5: IPv4-mapped keeps the dotted quad
    ['0:0:0:0:0:ffff:c000:0201', '::ffff:192.0.2.1'],
    ['fe80:0:0:0:0:0:0:1', 'fe80::1'],
  ];
  for (const [input, want] of cases) {
    it(`${input} -> ${want}`, () => {
      expect(ipv6ToString(v6(input), 0)).toBe(want);
      expect(canonicalIp(input)).toBe(want);
    });
  }

  it('reads the 16 bytes at an offset inside a bigger buffer', () => {
    const { buf, off } = embed(v6('2600:1f18::1'));
    expect(ipv6ToString(buf, off)).toBe('2600:1f18::1');
  });

  it('agrees with the WHATWG URL serializer for random addresses (outside ::ffff:0:0/96)', () => {
    const group = fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 0xffff }));
    fc.assert(
      fc.property(fc.array(group, { minLength: 8, maxLength: 8 }), (g) => {
        fc.pre(!(g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff));
        const bytes = new Uint8Array(16);
        g.forEach((x, i) => {
          bytes[2 * i] = x >> 8;
          bytes[2 * i + 1] = x & 255;
        });
        const text = ipv6ToString(bytes, 0);
        expect(`[${text}]`).toBe(new URL(`http://[${g.map((x) => x.toString(16)).join(':')}]/`).hostname);
        expect(Array.from(v6(text))).toEqual(Array.from(bytes));
      }),
      { numRuns: 500 },
    );
  });

  it('refuses ambiguous forms a manifest could not rely on', () => {
    // Leading zeros are octal to inet_aton(3) and decimal elsewhere; zone IDs do not name a source.
    for (const t of ['010.0.0.1', 'fe80::1%eth0', '1::2::3']) expect([t, canonicalIp(t)]).toEqual([t, null]);
  });
});

describe('parseIp', () => {
  it('parses IPv4 with its mapped IPv6 form', () => {
    const p = parseIp('192.0.2.1');
    expect(p?.family).toBe(4);
    expect(p?.v4).toBe(0xc0000201);
    expect(Buffer.from(p!.v6).toString('hex')).toBe('00000000000000000000ffffc0000201');
  });

  it('parses IPv6 text forms (RFC 4291 section 2.2)', () => {
    expect(Buffer.from(v6('2001:db8::8:800:200c:417a')).toString('hex')).toBe('20010db8000000000008080020' + '0c417a');
    expect(Buffer.from(v6('::13.1.68.3')).toString('hex')).toBe('0000000000000000000000000d014403');
    expect(Buffer.from(v6('1:2:3:4:5:6:7::')).toString('hex')).toBe('00010002000300040005000600070000');
    expect(parseIp('::')?.family).toBe(6);
  });

  const invalid = [
    '',
    '1.2.3',
    '1.2.3.4.5',
    '256.0.0.1',
    '01.2.3.4', // leading zero: octal to inet_aton
    '1.2.3.-4',
    ' 1.2.3.4',
    '1:2:3:4:5:6:7:8:9',
    '1:2:3:4:5:6:7',
    '1::2::3',
    '1:2:3:4:5:6:7:8::', // :: must stand for at least one group
    '12345::',
    'g::1',
    'fe80::1%eth0', // zone IDs name a link, not an address on the wire
    '[::1]',
    '::1.2.3',
    '1.2.3.4::',
    'localhost',
  ];
  for (const t of invalid) {
    it(`refuses ${JSON.stringify(t)}`, () => {
      expect(parseIp(t)).toBeNull();
      expect(canonicalIp(t)).toBeNull();
    });
  }
});

describe('parseCidr', () => {
  it('parses IPv4 and IPv6 networks, clearing and reporting host bits', () => {
    const a = parseCidr('10.0.0.0/8')!;
    expect([a.family, a.prefix, a.v4, a.mask4, a.hostBitsSet]).toEqual([4, 8, 0x0a000000, 0xff000000, false]);
    const b = parseCidr('10.1.2.3/8')!;
    expect([b.v4, b.hostBitsSet]).toEqual([0x0a000000, true]);
    const c = parseCidr('2001:db8:abcd::/33')!;
    expect(cidrToString(c)).toBe('2001:db8:8000::/33');
    expect(c.hostBitsSet).toBe(true);
    expect(cidrToString(parseCidr('2001:db8::/32')!)).toBe('2001:db8::/32');
    expect(parseCidr('2001:db8::/32')!.hostBitsSet).toBe(false);
  });

  it('treats a bare address as /32 or /128, and /0 as everything', () => {
    expect(parseCidr('192.0.2.7')!.prefix).toBe(32);
    expect(parseCidr('::1')!.prefix).toBe(128);
    const all = parseCidr('0.0.0.0/0')!;
    expect(ipv4InCidr(0xffffffff, all)).toBe(true);
    expect(ipv6InCidr(v6('ffff::1'), 0, parseCidr('::/0')!)).toBe(true);
  });

  it('refuses malformed prefixes', () => {
    for (const t of ['10.0.0.0/33', '::/129', '10.0.0.0/', '10.0.0.0/08', '10.0.0.0/-1', 'x/8', '10.0.0.0/8/8']) {
      expect([t, parseCidr(t)]).toEqual([t, null]);
    }
  });

  it('matches addresses against networks without allocating', () => {
    const n = parseCidr('172.16.0.0/12')!;
    expect(ipv4InCidr(0xac100001, n)).toBe(true);
    expect(ipv4InCidr(0xac1fffff, n)).toBe(true);
    expect(ipv4InCidr(0xac200000, n)).toBe(false);
    const m = parseCidr('2001:db8:8000::/33')!;
    const { buf, off } = embed(v6('2001:db8:8000::1'));
    expect(ipv6InCidr(buf, off, m)).toBe(true);
    expect(ipv6InCidr(v6('2001:db8:7fff::1'), 0, m)).toBe(false);
    // families never cross
    expect(ipv4InCidr(0, parseCidr('::/0')!)).toBe(false);
    expect(ipv6InCidr(v6('::'), 0, parseCidr('0.0.0.0/0')!)).toBe(false);
  });
});

describe('state to text', () => {
  it('outer and inner addresses of a decoded frame', () => {
    const outer = hex(`
      60 00 00 00 00 5a 11 40     # IPv6, payload length 90, UDP, hop limit 64
      26 00 1f 18 00 00 00 00 00 00 00 00 00 00 00 0a   # source 2600:1f18::a
      26 00 1f 18 00 00 00 00 00 00 00 00 00 00 00 0b   # destination 2600:1f18::b
      c0 00 12 b5 00 5a 00 00     # UDP -> 4789, length 90
    `);
    const frame = cat(outer, VXLAN_AWS, INNER_TCP6);
    const { buf, off, end } = embed(frame);
    const st = new PacketState();
    expect(decodeCapturedFrame(buf, off, end, LINKTYPE.IPV6, st)).toBe(0);
    expect(outerSourceToString(st, buf)).toBe('2600:1f18::a');
    expect(innerSourceToString(st, buf)).toBe('2001:db8::1');
    expect(innerDestinationToString(st, buf)).toBe('2001:db8::2');
    st.reset();
    st.resetOuter();
    expect(outerSourceToString(st, buf)).toBeNull();
    expect(innerSourceToString(st, buf)).toBeNull();
    st.outerFamily = 4;
    st.outerSrc4 = 0x0a000001;
    expect(outerSourceToString(st, buf)).toBe('10.0.0.1');
  });
});
