import { describe, expect, it } from 'vitest';
import { DROP, WEIRD } from '../../src/outcomes.js';
import { MAX_FRAME_BYTES } from '../../src/decode/inner.js';
import { PacketState } from '../../src/decode/packet-state.js';
import { decodeVxlan, VXLAN_HEADER_BYTES } from '../../src/decode/vxlan.js';
import { cat, embed, hex } from './bytes.js';
import { INNER_UDP4, VXLAN_AWS, vxlan } from './frames.js';

function decode(bytes: Uint8Array, strict = false): { code: number; st: PacketState; off: number; end: number } {
  const { buf, off, end } = embed(bytes);
  const st = new PacketState();
  st.reset();
  return { code: decodeVxlan(buf, off, end, st, strict), st, off, end };
}

describe('decodeVxlan (RFC 7348 section 5)', () => {
  it('decodes the AWS header: I flag only, 24-bit VNI, inner frame bounds', () => {
    const { code, st, off, end } = decode(cat(VXLAN_AWS, INNER_UDP4));
    expect(code).toBe(DROP.OK);
    expect(VXLAN_HEADER_BYTES).toBe(8);
    expect(st.vxlanFlags).toBe(0x08);
    expect(st.vni).toBe(5569041);
    expect(st.innerOff).toBe(off + 8);
    expect(st.innerEnd).toBe(end);
    expect(st.origLen).toBe(60);
    expect(st.weird).toBe(0);
    // and the inner frame was decoded
    expect(st.srcPort).toBe(50000);
    expect(st.dstPort).toBe(53);
  });

  it('reads the whole 24-bit VNI range', () => {
    expect(decode(vxlan(0, INNER_UDP4)).st.vni).toBe(0);
    expect(decode(vxlan(0xffffff, INNER_UDP4)).st.vni).toBe(16777215);
    expect(decode(vxlan(0x010203, INNER_UDP4)).st.vni).toBe(0x010203);
  });

  it('drops fewer than 8 bytes as VXLAN_TOO_SHORT', () => {
    expect(decode(hex('08 00 00 00 00 00 01')).code).toBe(DROP.VXLAN_TOO_SHORT);
    expect(decode(hex('')).code).toBe(DROP.VXLAN_TOO_SHORT);
  });

  it('drops a header without the I flag as VXLAN_NO_I_FLAG, in both modes', () => {
    const noI = hex(`
      00          # flags: I clear, so the VNI is not valid
      00 00 00    # reserved
      00 00 2a    # VNI 42 (to be ignored)
      00          # reserved
    `);
    expect(decode(cat(noI, INNER_UDP4)).code).toBe(DROP.VXLAN_NO_I_FLAG);
    expect(decode(cat(noI, INNER_UDP4), true).code).toBe(DROP.VXLAN_NO_I_FLAG);
    // VXLAN-GPE style flags without I (0x04 = P bit) are also not a valid VNI
    expect(decode(vxlan(42, INNER_UDP4, 0x04)).code).toBe(DROP.VXLAN_NO_I_FLAG);
  });

  // Each reserved position on its own: permissive keeps the frame and flags it, strict drops it.
  const reservedCases: [string, string][] = [
    ['another flag bit (0x80)', '88 00 00 00 00 00 0b 00'],
    ['the low flag bit (0x01)', '09 00 00 00 00 00 0b 00'],
    ['reserved byte 1', '08 01 00 00 00 00 0b 00'],
    ['reserved byte 3', '08 00 00 80 00 00 0b 00'],
    ['the reserved byte after the VNI', '08 00 00 00 00 00 0b 01'],
    ['all of them (suricata-verify vxlan-non-zero-reserved-fields)', 'ff 01 d1 f2 00 00 0b 00'],
  ];
  for (const [what, header] of reservedCases) {
    it(`non-zero ${what}: weird in permissive mode, VXLAN_RESERVED_BITS in strict mode`, () => {
      const permissive = decode(cat(hex(header), INNER_UDP4));
      expect(permissive.code).toBe(DROP.OK);
      expect(permissive.st.vni).toBe(11);
      expect(permissive.st.weird).toBe(1 << WEIRD.VXLAN_RESERVED_BITS);
      expect(decode(cat(hex(header), INNER_UDP4), true).code).toBe(DROP.VXLAN_RESERVED_BITS);
    });
  }

  it('accepts the AWS header in strict mode', () => {
    const { code, st } = decode(cat(VXLAN_AWS, INNER_UDP4), true);
    expect(code).toBe(DROP.OK);
    expect(st.weird).toBe(0);
  });

  it('passes the inner frame drops through', () => {
    expect(decode(cat(VXLAN_AWS, INNER_UDP4.subarray(0, 13))).code).toBe(DROP.INNER_TOO_SHORT);
    expect(decode(VXLAN_AWS).code).toBe(DROP.INNER_TOO_SHORT);
    const huge = Buffer.alloc(MAX_FRAME_BYTES + 1);
    INNER_UDP4.copy(huge);
    expect(decode(cat(VXLAN_AWS, huge)).code).toBe(DROP.INNER_TOO_LONG);
  });

  it('reads nothing outside [off, end)', () => {
    // The same header at offset 0 of a tight buffer and inside 0xff junk decodes the same.
    const bytes = cat(VXLAN_AWS, INNER_UDP4);
    const tight = new PacketState();
    tight.reset();
    expect(decodeVxlan(bytes, 0, bytes.length, tight, true)).toBe(DROP.OK);
    const { st, off } = decode(bytes, true);
    expect(st.vni).toBe(tight.vni);
    expect(st.innerOff - off).toBe(tight.innerOff);
    expect(st.src4).toBe(tight.src4);
    expect(st.weird).toBe(0);
    // A 7-byte window into a buffer that has more bytes after it is still too short.
    const e = embed(bytes);
    const s = new PacketState();
    s.reset();
    expect(decodeVxlan(e.buf, e.off, e.off + 7, s, false)).toBe(DROP.VXLAN_TOO_SHORT);
  });
});
