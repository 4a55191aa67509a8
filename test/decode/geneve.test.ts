import { describe, expect, it } from 'vitest';
import { DROP, WEIRD } from '../../src/outcomes.js';
import { decodeGeneve, gwlbAttachmentIdString, gwlbEndpointIdString } from '../../src/decode/geneve.js';
import { decodeOuter, LINKTYPE } from '../../src/decode/outer.js';
import { PacketState } from '../../src/decode/packet-state.js';
import { decodeVxlan } from '../../src/decode/vxlan.js';
import { cat, embed, hex, slice16 } from './bytes.js';
import { INNER_TCP6, INNER_UDP4, vxlan } from './frames.js';
import {
  ATTACHMENT_ID_TEXT,
  awsOptions,
  ENDPOINT_ID_TEXT,
  FLOW_COOKIE,
  geneve,
  GWLB_GENEVE_IPV4,
  gwlbMirror,
  ipv4Udp,
  ipv6Udp,
} from './geneve-frames.js';

function decode(bytes: Uint8Array, vxlanPort = 4789, genevePort = 6081) {
  const { buf, off, end } = embed(bytes);
  const st = new PacketState();
  st.resetGeneve();
  st.weird = 0;
  const code = decodeGeneve(buf, off, end, st, vxlanPort, genevePort);
  return { code, st, buf, off, end };
}

describe('decodeGeneve (RFC 8926 section 3)', () => {
  it('decodes what a GWLB sends: AWS options, the IPv4 source of the mirror packet, the VXLAN payload', () => {
    const { code, st, buf, off, end } = decode(GWLB_GENEVE_IPV4);
    expect(code).toBe(DROP.OK);
    expect(st.geneveDepth).toBe(1);
    expect(st.geneveProto).toBe(0x0800);
    expect(st.geneveVni).toBe(0);
    expect(gwlbEndpointIdString(buf, st.gwlbEndpointOff)).toBe(ENDPOINT_ID_TEXT);
    expect(gwlbAttachmentIdString(buf, st.gwlbAttachmentOff)).toBe(ATTACHMENT_ID_TEXT);
    expect(st.gwlbFlowCookie).toBe(FLOW_COOKIE);
    expect(st.mirrorFamily).toBe(4);
    expect(st.mirrorSrc4).toBe(0xac1f00ee);
    // 8 header + 32 options + 20 IPv4 + 8 UDP
    expect(st.vxlanOff).toBe(off + 68);
    expect(st.vxlanEnd).toBe(end);
    expect(st.weird).toBe(0);
    // ... and the VXLAN packet inside decodes as it would when sent directly.
    st.reset();
    expect(decodeVxlan(buf, st.vxlanOff, st.vxlanEnd, st, true)).toBe(DROP.OK);
    expect(st.vni).toBe(5569041);
    expect(st.dstPort).toBe(53);
  });

  it('the builder and the annotated bytes agree', () => {
    expect(gwlbMirror('172.31.0.238', 5569041).subarray(0, 60)).toEqual(GWLB_GENEVE_IPV4.subarray(0, 60));
  });

  it('decodes GENEVE without options; flags it as not from an AWS GWLB', () => {
    const { code, st } = decode(geneve(ipv4Udp('10.9.8.7', '10.0.0.50', 1, 4789, vxlan(42, INNER_UDP4)), { options: [] }));
    expect(code).toBe(DROP.OK);
    expect(st.gwlbEndpointOff).toBe(-1);
    expect(st.gwlbAttachmentOff).toBe(-1);
    expect(st.gwlbFlowCookie).toBe(-1);
    expect(st.mirrorSrc4).toBe(0x0a090807);
    expect(st.weird).toBe(1 << WEIRD.GENEVE_NO_GWLB_OPTIONS);
  });

  it('decodes an IPv6 mirror packet inside GENEVE', () => {
    const src = '20010db8000000000000000000000001';
    const { code, st, buf } = decode(geneve(ipv6Udp(src, '20010db8000000000000000000000002', 1, 4789, vxlan(7, INNER_TCP6)), { proto: 0x86dd }));
    expect(code).toBe(DROP.OK);
    expect(st.mirrorFamily).toBe(6);
    expect(slice16(buf, st.mirrorSrc6Off)).toBe(src);
  });

  it('decodes Ethernet (protocol 0x6558) then IP', () => {
    const eth = hex('02 00 00 00 00 02 02 00 00 00 00 01 81 00 00 05 08 00'); // one VLAN tag
    const { code, st } = decode(geneve(cat(eth, ipv4Udp('10.1.2.3', '10.0.0.50', 1, 4789, vxlan(9, INNER_UDP4))), { proto: 0x6558 }));
    expect(code).toBe(DROP.OK);
    expect(st.mirrorSrc4).toBe(0x0a010203);
  });

  it('skips unknown non-critical options, drops unknown critical ones (section 3.5)', () => {
    const payload = ipv4Udp('10.1.2.3', '10.0.0.50', 1, 4789, vxlan(9, INNER_UDP4));
    const other = { cls: 0xff72, type: 0x01, data: Buffer.alloc(60) };
    expect(decode(geneve(payload, { options: [other, ...awsOptions()] })).code).toBe(DROP.OK);
    const critical = { cls: 0x0000, type: 0x80, data: Buffer.alloc(4) };
    expect(decode(geneve(payload, { options: [...awsOptions(), critical], flags: 0x40 })).code).toBe(DROP.GENEVE_CRITICAL_OPTION);
    // An AWS option of a type we do not know with the critical bit is just as unknown.
    expect(decode(geneve(payload, { options: [{ cls: 0x0108, type: 0x84, data: Buffer.alloc(4) }] })).code).toBe(DROP.GENEVE_CRITICAL_OPTION);
  });

  it('ignores an AWS option with the wrong length and flags it', () => {
    const payload = ipv4Udp('10.1.2.3', '10.0.0.50', 1, 4789, vxlan(9, INNER_UDP4));
    const { code, st } = decode(geneve(payload, { options: [{ cls: 0x0108, type: 1, data: Buffer.alloc(4) }] }));
    expect(code).toBe(DROP.OK);
    expect(st.gwlbEndpointOff).toBe(-1);
    expect(st.weird & (1 << WEIRD.GENEVE_AWS_OPTION_LENGTH)).not.toBe(0);
  });

  it('drops bad headers by name', () => {
    const good = gwlbMirror('10.1.2.3', 9);
    expect(decode(good.subarray(0, 7)).code).toBe(DROP.GENEVE_TOO_SHORT);
    const v1 = Buffer.from(good);
    v1[0]! |= 0x40;
    expect(decode(v1).code).toBe(DROP.GENEVE_VERSION);
    const oam = Buffer.from(good);
    oam[1] = 0x80;
    expect(decode(oam).code).toBe(DROP.GENEVE_CONTROL);
    const arp = Buffer.from(good);
    arp.writeUInt16BE(0x0806, 2);
    expect(decode(arp).code).toBe(DROP.GENEVE_PROTOCOL);
    const reserved = Buffer.from(good);
    reserved[7] = 1;
    expect(decode(reserved).st.weird & (1 << WEIRD.GENEVE_RESERVED_BITS)).not.toBe(0);
  });

  it('drops truncated options: the option area past the datagram, an option past the option area', () => {
    const good = gwlbMirror('10.1.2.3', 9);
    expect(decode(good.subarray(0, 8 + 20)).code).toBe(DROP.GENEVE_OPTIONS_TRUNCATED);
    // Option length 1 word, but the option claims 31 words of data.
    expect(decode(hex('01 00 08 00 00 00 00 00   01 08 01 1f')).code).toBe(DROP.GENEVE_OPTIONS_TRUNCATED);
    // Option length 1 word holding half an option header is impossible: the header is 4 bytes, so
    // option length 2 with 4 + 2 bytes of a second header.
    expect(decode(hex('02 00 08 00 00 00 00 00   ff 00 01 00   ff 00')).code).toBe(DROP.GENEVE_OPTIONS_TRUNCATED);
  });

  it('drops what is not a mirrored packet: not UDP, UDP to another port, a fragment, a cut header', () => {
    const frame = vxlan(9, INNER_UDP4);
    expect(decode(geneve(ipv4Udp('10.1.2.3', '10.0.0.50', 1, 8472, frame))).code).toBe(DROP.GENEVE_NOT_MIRROR);
    // ... unless that is the configured VXLAN port
    expect(decode(geneve(ipv4Udp('10.1.2.3', '10.0.0.50', 1, 8472, frame)), 8472).code).toBe(DROP.OK);
    const tcp = geneve(ipv4Udp('10.1.2.3', '10.0.0.50', 1, 4789, frame));
    tcp[40 + 9] = 6;
    expect(decode(tcp).code).toBe(DROP.GENEVE_NOT_MIRROR);
    const frag = geneve(ipv4Udp('10.1.2.3', '10.0.0.50', 1, 4789, frame));
    frag[40 + 7] = 0x10;
    expect(decode(frag).code).toBe(DROP.GENEVE_INNER_FRAGMENT);
    expect(decode(geneve(ipv4Udp('10.1.2.3', '10.0.0.50', 1, 4789, frame)).subarray(0, 40 + 24)).code).toBe(DROP.GENEVE_INNER_TRUNCATED);
    expect(decode(geneve(INNER_UDP4.subarray(14), { options: [] })).code).toBe(DROP.GENEVE_NOT_MIRROR); // IP/UDP 53 directly
  });

  it('follows GENEVE inside GENEVE once, keeping the outer AWS options and the inner mirror source', () => {
    const inner = gwlbMirror('10.1.2.3', 9, INNER_UDP4, awsOptions(Buffer.alloc(8, 0xee)));
    const nested = geneve(ipv4Udp('192.0.2.1', '192.0.2.2', 1, 6081, inner));
    const { code, st, buf } = decode(nested);
    expect(code).toBe(DROP.OK);
    expect(st.geneveDepth).toBe(2);
    expect(gwlbEndpointIdString(buf, st.gwlbEndpointOff)).toBe(ENDPOINT_ID_TEXT);
    // The session's source is the IP packet that carries the VXLAN, the innermost.
    expect(st.mirrorSrc4).toBe(0x0a010203);
    const triple = geneve(ipv4Udp('192.0.2.9', '192.0.2.2', 1, 6081, nested));
    expect(decode(triple).code).toBe(DROP.GENEVE_NESTING_DEPTH);
  });

  it('is reached from a captured frame on UDP 6081 when the GENEVE port is given', () => {
    const frame = cat(hex('02 00 00 00 00 0b 02 00 00 00 00 0a 08 00'), ipv4Udp('172.31.5.5', '172.31.0.9', 40000, 6081, gwlbMirror('172.31.0.238', 5)));
    const st = new PacketState();
    expect(decodeOuter(frame, 0, frame.length, LINKTYPE.ETHERNET, st)).toBe(DROP.OUTER_NOT_VXLAN_PORT);
    expect(decodeOuter(frame, 0, frame.length, LINKTYPE.ETHERNET, st, 4789, 6081)).toBe(DROP.OK);
    expect(st.outerDstPort).toBe(6081);
    st.resetGeneve();
    expect(decodeGeneve(frame, st.vxlanOff, st.vxlanEnd, st, 4789, 6081)).toBe(DROP.OK);
    expect(st.mirrorSrc4).toBe(0xac1f00ee);
  });

  it('never throws and never reads outside [off, end) on random input, and still decodes afterwards', () => {
    let seed = 14;
    const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 16) & 255;
    const good = gwlbMirror('10.1.2.3', 9);
    for (let i = 0; i < 20_000; i++) {
      const b = Buffer.from(good.subarray(0, rnd() % good.length));
      const n = 1 + (rnd() % 6);
      for (let k = 0; k < n && b.length; k++) b[rnd() % b.length] = rnd();
      const { code, st, off, end } = decode(b);
      if (code === DROP.OK) {
        expect(st.vxlanOff).toBeGreaterThanOrEqual(off);
        expect(st.vxlanEnd).toBeLessThanOrEqual(end);
      }
    }
    expect(decode(good).code).toBe(DROP.OK);
  });
});
