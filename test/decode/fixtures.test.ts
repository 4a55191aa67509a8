/**
 * The decoders over the shared third-party captures (../shared/fixtures/pcap, provenance in its
 * SOURCES.md): the VNIs SOURCES.md lists, the edge cases it calls out (BIG TCP zero lengths, non-zero
 * reserved fields, nesting, other tunnels and ports), and a per-frame comparison with tshark's
 * dissection. The pcap reader proper lives in src/pcap; a tiny classic-pcap parse is enough here.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { innerSourceToString, ipv4ToString, outerSourceToString } from '../../src/decode/addr.js';
import { DROP, DROP_NAMES, WEIRD } from '../../src/outcomes.js';
import { decodeCapturedFrame } from '../../src/decode/outer.js';
import { AF_INET, AF_INET6, PacketState } from '../../src/decode/packet-state.js';
import { describeWithFixtures, fixture } from '../helpers/fixtures.js';
import { describeNeeds } from '../helpers/needs.js';
import { tsharkFields } from '../helpers/oracles.js';
import { makeTmpDir } from '../helpers/tmp.js';

interface Capture {
  linktype: number;
  frames: { buf: Buffer; off: number; end: number }[];
}

/** Classic libpcap: 24-byte header (magic, version, zone, sigfigs, snaplen, linktype), 16-byte records. */
function readClassicPcap(file: string): Capture {
  const buf = readFileSync(file);
  const magic = buf.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!le && magic !== 0xd4c3b2a1 && magic !== 0x4d3cb2a1) throw new Error(`${file}: not classic pcap`);
  const u32 = (o: number): number => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const frames: Capture['frames'] = [];
  for (let p = 24; p + 16 <= buf.length; ) {
    const incl = u32(p + 8);
    frames.push({ buf, off: p + 16, end: p + 16 + incl });
    p += 16 + incl;
  }
  return { linktype: u32(20) & 0xffff, frames };
}

interface Result {
  code: number;
  vni: number;
  weird: number;
  st: PacketState;
  buf: Buffer;
}

function decodeFile(name: string, strict = false, port = 4789): Result[] {
  const cap = readClassicPcap(fixture('pcap', name));
  return cap.frames.map(({ buf, off, end }) => {
    const st = new PacketState();
    const code = decodeCapturedFrame(buf, off, end, cap.linktype, st, strict, port);
    return { code, vni: st.vni, weird: st.weird, st, buf };
  });
}

/** "VNI xN" counts of the frames that decoded, plus the drop counter names of the rest. */
function tally(results: Result[]): Record<string, number> {
  const t: Record<string, number> = {};
  for (const r of results) {
    const k = r.code === DROP.OK ? `vni ${r.vni}` : DROP_NAMES[r.code]!;
    t[k] = (t[k] ?? 0) + 1;
  }
  return t;
}

describeWithFixtures('decoding the shared fixture captures', () => {
  // VNI counts as SOURCES.md lists them (tshark's counts, except where it says tshark cannot decode).
  const expected: [string, Record<string, number>][] = [
    ['suricata-verify-vxlan-decoder-03-aws-traffic-mirror.pcap', { 'vni 5569041': 100 }],
    ['zeek-vxlan.pcap', { 'vni 123': 10 }],
    ['zeek-vxlan-encapsulated-http.pcap', { 'vni 1': 12 }],
    ['zeek-vxlan-encapsulated-igmp-v2.pcap', { 'vni 4242': 3 }],
    // 14 frames without encapsulation (TCP to port 80), 14 in VNI 4242, 14 in VNI 4711
    ['zeek-vxlan-overlapping-http-get.pcap', { 'vni 4242': 14, 'vni 4711': 14, 'decode.outer.not_udp': 14 }],
    ['zeek-vxlan-triple-v2.pcap', { 'vni 1': 1 }],
    ['zeek-vxlan-inner-tcp-bad-checksum.pcap', { 'vni 42': 1 }],
    // frame 1 is VXLAN; frames 2-3 are plain DNS over UDP
    ['suricata-verify-vxlan-decoder-01.pcap', { 'vni 37': 1, 'decode.outer.not_vxlan_port': 2 }],
    ['suricata-verify-vxlan-decoder-02-tcpdump-vxlan.pcap', { 'vni 100': 10 }],
    ['suricata-verify-vxlan-arp.pcap', { 'vni 100': 2 }],
    ['suricata-verify-vxlan-non-zero-reserved-fields.pcap', { 'vni 11': 10 }],
    ['tcpdump-gso-ipv4-vxlan-ipv4.pcap', { 'vni 5001': 1 }],
    ['tcpdump-gso-ipv4-vxlan-ipv6.pcap', { 'vni 5001': 1 }],
    ['tcpdump-gso-ipv6-vxlan-ipv4.pcap', { 'vni 5001': 1 }],
    ['tcpdump-gso-ipv6-vxlan-ipv6.pcap', { 'vni 5001': 1 }],
    // tshark cannot decode it (UDP length 0); tcpdump's expected output says VNI 5001
    ['tcpdump-bigtcp-ipv4-vxlan-ipv4.pcap', { 'vni 5001': 1 }],
    // not VXLAN on 4789: Linux's 8472, VXLAN-GPE on 4790, GENEVE on 6081, and VXLAN inside GRE/ERSPAN
    ['tcpdump-vxlan_port_8472.pcap', { 'decode.outer.not_vxlan_port': 10 }],
    ['tcpdump-nsh-over-vxlan-gpe.pcap', { 'decode.outer.not_vxlan_port': 1 }],
    ['zeek-geneve-vxlan-dns-truncated.pcap', { 'decode.outer.not_vxlan_port': 2 }],
    ['zeek-geneve.pcap', { 'decode.outer.not_vxlan_port': 6 }],
    ['suricata-verify-geneve-decoder.pcap', { 'decode.outer.not_vxlan_port': 10 }],
    ['arkime-gre-erspan-vxlan.pcap', { 'decode.outer.not_udp': 7 }],
  ];
  for (const [file, counts] of expected) {
    it(`${file}: ${Object.entries(counts).map(([k, n]) => `${k} x${n}`).join(', ')}`, () => {
      expect(tally(decodeFile(file))).toEqual(counts);
    });
  }

  it('no GENEVE or VXLAN-GPE capture decodes as VXLAN', () => {
    const files = readdirSync(fixture('pcap')).filter((f) => f.endsWith('.pcap') && (f.includes('geneve') || f.includes('gpe')));
    expect(files.length).toBeGreaterThanOrEqual(6);
    for (const f of files) {
      for (const r of decodeFile(f)) expect([f, r.code === DROP.OK]).toEqual([f, false]);
    }
  });

  it('the Linux 8472 capture decodes when the port is configured', () => {
    expect(tally(decodeFile('tcpdump-vxlan_port_8472.pcap', false, 8472))).toEqual({ 'vni 100': 10 });
  });

  it('the real AWS capture: one mirror source, AWS flags, the documented source ports, nothing odd', () => {
    const rs = decodeFile('suricata-verify-vxlan-decoder-03-aws-traffic-mirror.pcap', true);
    expect(new Set(rs.map((r) => outerSourceToString(r.st, r.buf)))).toEqual(new Set(['172.31.0.238']));
    expect(new Set(rs.map((r) => r.st.vxlanFlags))).toEqual(new Set([0x08]));
    const sports = new Set(rs.map((r) => r.st.outerSrcPort));
    for (const p of [65408, 65465, 65466, 65474, 65525]) expect(sports.has(p)).toBe(true);
    expect(rs.filter((r) => r.weird !== 0).length).toBe(0);
    // Inner traffic per SOURCES.md: SSH with 18.196.145.224, DNS to 172.31.0.2, NTP.
    const ports = new Set(rs.flatMap((r) => [r.st.srcPort, r.st.dstPort]));
    for (const p of [22, 53, 123]) expect(ports.has(p)).toBe(true);
  });

  it('BIG TCP: IPv4 total length 0 and UDP length 0 still give VNI 5001 and the whole frame', () => {
    const cap = readClassicPcap(fixture('pcap', 'tcpdump-bigtcp-ipv4-vxlan-ipv4.pcap'));
    const { buf, off, end } = cap.frames[0]!;
    expect(buf.readUInt16BE(off + 16)).toBe(0); // outer IPv4 total length, as SOURCES.md says
    expect(buf.readUInt16BE(off + 38)).toBe(0); // outer UDP length
    const st = new PacketState();
    expect(decodeCapturedFrame(buf, off, end, cap.linktype, st)).toBe(DROP.OK);
    expect(st.vni).toBe(5001);
    expect(st.innerEnd).toBe(end);
    expect(st.origLen).toBe(end - off - 50);
    expect(st.origLen).toBeGreaterThan(80000);
    expect(st.truncated).toBe(false);
    expect(st.ipProto).toBe(6);
  });

  it('non-zero reserved fields: permissive keeps VNI 11 with the weird flag, strict drops every frame', () => {
    const permissive = decodeFile('suricata-verify-vxlan-non-zero-reserved-fields.pcap');
    for (const r of permissive) {
      expect(r.vni).toBe(11);
      expect(r.st.vxlanFlags).toBe(0xff);
      expect(r.weird & (1 << WEIRD.VXLAN_RESERVED_BITS)).not.toBe(0);
    }
    expect(tally(decodeFile('suricata-verify-vxlan-non-zero-reserved-fields.pcap', true))).toEqual({ 'decode.vxlan.reserved_bits': 10 });
  });

  it('triple nesting: the outer VNI names the session, the innermost packet is the DNS query', () => {
    const [r] = decodeFile('zeek-vxlan-triple-v2.pcap');
    expect(r!.vni).toBe(1);
    expect(r!.st.tunnelDepth).toBe(3);
    expect(innerSourceToString(r!.st, r!.buf)).toBe('4.4.4.4');
    expect(r!.st.dstPort).toBe(53);
    // Its VXLAN headers carry flags 0x0c (I plus the reserved 0x04 bit): flagged for the outer header;
    // nested headers' reserved bits are ignored.
    expect(r!.st.vxlanFlags).toBe(0x0c);
    expect(r!.weird).toBe(1 << WEIRD.VXLAN_RESERVED_BITS);
  });

  describeNeeds(['mergecap', 'tshark'], 'frame by frame against tshark', () => {
    const files = expected.map(([f]) => f);
    let tmp: { dir: string; remove: () => void };
    let rows: string[][] = [];
    beforeAll(() => {
      // One tshark run over all files, concatenated in order by mergecap (tshark starts slowly).
      tmp = makeTmpDir();
      const merged = join(tmp.dir, 'all.pcap');
      const m = spawnSync('mergecap', ['-a', '-F', 'pcap', '-w', merged, ...files.map((f) => fixture('pcap', f))], { encoding: 'utf8' });
      if (m.status !== 0) throw new Error(`mergecap failed: ${m.stderr}`);
      rows = tsharkFields(merged, ['vxlan.vni', 'ip.src', 'ipv6.src', 'tcp.srcport', 'udp.srcport', 'udp.dstport']);
    });
    afterAll(() => tmp?.remove());

    it('agrees on the outer VNI and the innermost source address and port', () => {
      const ours = files.flatMap((f) => decodeFile(f));
      expect(rows.length).toBe(ours.length);
      let compared = 0;
      ours.forEach((r, i) => {
        const [vnis, ip4, ip6, tcpSrc, udpSrc] = rows[i]!.map((s) => (s === '' ? [] : s.split(',')));
        if (r.code !== DROP.OK || vnis!.length === 0) return;
        // tshark decodes VXLAN inside GRE/GENEVE too; compare only frames we decoded.
        const last = (xs: string[]): string | undefined => xs[xs.length - 1];
        const got = {
          frame: i + 1,
          vni: r.vni,
          src: innerSourceToString(r.st, r.buf),
          port: r.st.srcPort,
        };
        const want = {
          frame: i + 1,
          vni: Number(vnis![0]),
          src: r.st.l3Family === AF_INET ? last(ip4!) : r.st.l3Family === AF_INET6 ? last(ip6!) : null,
          port: r.st.ipProto === 6 ? Number(last(tcpSrc!)) : r.st.ipProto === 17 ? Number(last(udpSrc!)) : -1,
        };
        expect(got).toEqual(want);
        compared++;
      });
      expect(compared).toBeGreaterThan(150);
    });
  });

  it('decodes the outer source as tshark does for the IPv6-outer GSO capture', () => {
    const [r] = decodeFile('tcpdump-gso-ipv6-vxlan-ipv4.pcap');
    expect(outerSourceToString(r!.st, r!.buf)).toBe('2604:1380:4091:ce00::b');
    expect(ipv4ToString(r!.st.src4)).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
  });
});
