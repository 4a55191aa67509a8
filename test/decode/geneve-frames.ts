/**
 * GENEVE as a Gateway Load Balancer sends it to a target (RFC 8926; AWS GWLB docs, "GENEVE TLV options"),
 * built in TypeScript for ordinary tests. Scapy builds the same shapes only in the oracle test.
 *
 *   GENEVE (class 0x0108 options: endpoint id, attachment id, flow cookie)
 *     / IPv4 or IPv6, source = the mirror source ENI's primary IP / UDP -> 4789 / VXLAN / mirrored frame
 */
import { hex } from './bytes.js';
import { INNER_UDP4, VXLAN_AWS, vxlan } from './frames.js';

/** The endpoint id bytes 0x0a1b2c3d4e5f6071 render as `vpce-00a1b2c3d4e5f6071`. */
export const ENDPOINT_ID = Buffer.from('0a1b2c3d4e5f6071', 'hex');
export const ENDPOINT_ID_TEXT = 'vpce-00a1b2c3d4e5f6071';
export const ATTACHMENT_ID = Buffer.from('1122334455667788', 'hex');
export const ATTACHMENT_ID_TEXT = '1122334455667788';
export const FLOW_COOKIE = 0xdeadbeef;

/** One GWLB packet byte by byte: the three AWS options, IPv4 172.31.0.238 -> 10.0.0.50, UDP 4789, VXLAN 5569041. */
export const GWLB_GENEVE_IPV4 = hex(`
  08                  # version 0, option length 8 words (32 bytes)
  00                  # O 0, C 0, reserved
  08 00               # protocol type IPv4
  00 00 00 00         # VNI 0, reserved
  01 08 01 02         # option class 0x0108 (AWS), type 1 (endpoint id), length 2 words
  0a 1b 2c 3d 4e 5f 60 71
  01 08 02 02         # AWS type 2 (attachment id), 2 words
  11 22 33 44 55 66 77 88
  01 08 03 01         # AWS type 3 (flow cookie), 1 word
  de ad be ef
  45 00 00 60         # IPv4, IHL 5, total length 96 = 20 + UDP 8 + VXLAN 8 + frame 60
  00 00 40 00 40 11 00 00
  ac 1f 00 ee         # source 172.31.0.238: the mirror source ENI
  0a 00 00 32         # destination 10.0.0.50: the mirror target (the GWLB endpoint's side)
  ff 80 12 b5         # UDP 65408 -> 4789
  00 00 00 00         # UDP length 0 (to the end), checksum 0
  ${VXLAN_AWS.toString('hex')}
  ${INNER_UDP4.toString('hex')}
`);

export function ipv4Udp(src: string, dst: string, sport: number, dport: number, payload: Uint8Array): Buffer {
  const h = Buffer.alloc(28);
  h[0] = 0x45;
  h.writeUInt16BE(28 + payload.length, 2);
  h[6] = 0x40; // DF
  h[8] = 64;
  h[9] = 17;
  src.split('.').forEach((o, i) => (h[12 + i] = Number(o)));
  dst.split('.').forEach((o, i) => (h[16 + i] = Number(o)));
  h.writeUInt16BE(sport, 20);
  h.writeUInt16BE(dport, 22);
  h.writeUInt16BE(8 + payload.length, 24);
  return Buffer.concat([h, payload]);
}

/** IPv6 with 16-byte addresses given as 32 hex digits. */
export function ipv6Udp(src: string, dst: string, sport: number, dport: number, payload: Uint8Array): Buffer {
  const h = Buffer.alloc(48);
  h[0] = 0x60;
  h.writeUInt16BE(8 + payload.length, 4);
  h[6] = 17;
  h[7] = 64;
  Buffer.from(src, 'hex').copy(h, 8);
  Buffer.from(dst, 'hex').copy(h, 24);
  h.writeUInt16BE(sport, 40);
  h.writeUInt16BE(dport, 42);
  h.writeUInt16BE(8 + payload.length, 44);
  return Buffer.concat([h, payload]);
}

export interface GeneveOption {
  cls: number;
  type: number;
  data: Uint8Array;
}

export function awsOptions(endpoint: Uint8Array = ENDPOINT_ID, attachment: Uint8Array = ATTACHMENT_ID, cookie = FLOW_COOKIE): GeneveOption[] {
  const c = Buffer.alloc(4);
  c.writeUInt32BE(cookie >>> 0);
  return [
    { cls: 0x0108, type: 1, data: endpoint },
    { cls: 0x0108, type: 2, data: attachment },
    { cls: 0x0108, type: 3, data: c },
  ];
}

/** A GENEVE header with options, then `payload`. */
export function geneve(payload: Uint8Array, opts: { options?: GeneveOption[]; proto?: number; vni?: number; flags?: number } = {}): Buffer {
  const options = opts.options ?? awsOptions();
  const optBytes = Buffer.concat(
    options.map((o) => {
      const h = Buffer.alloc(4);
      h.writeUInt16BE(o.cls, 0);
      h[2] = o.type;
      h[3] = (o.data.length / 4) & 0x1f;
      return Buffer.concat([h, o.data]);
    }),
  );
  const h = Buffer.alloc(8);
  h[0] = (optBytes.length / 4) & 0x3f;
  h[1] = opts.flags ?? 0;
  h.writeUInt16BE(opts.proto ?? 0x0800, 2);
  const vni = opts.vni ?? 0;
  h[4] = (vni >> 16) & 255;
  h[5] = (vni >> 8) & 255;
  h[6] = vni & 255;
  return Buffer.concat([h, optBytes, payload]);
}

/** What a GWLB delivers for one mirrored frame: GENEVE / IPv4 src / UDP 4789 / VXLAN vni / frame. */
export function gwlbMirror(src: string, vni: number, frame: Uint8Array = INNER_UDP4, options?: GeneveOption[]): Buffer {
  return geneve(ipv4Udp(src, '10.0.0.50', 65408, 4789, vxlan(vni, frame)), options ? { options } : {});
}
