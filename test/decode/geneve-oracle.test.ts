/**
 * GENEVE as a Gateway Load Balancer sends it, crafted by scapy, with tshark's GENEVE and VXLAN
 * dissectors as the oracle: for every frame, what tshark makes of it (GENEVE VNI and protocol, the
 * options and their critical bits, the IP packet that carries the VXLAN, the VXLAN VNI, malformed or
 * not) must be what decodeOuter -> decodeGeneve -> decodeVxlan make of it, at a non-zero offset.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { canonicalIp, ipv4ToString, ipv6ToString } from '../../src/decode/addr.js';
import { DROP, DROP_NAMES } from '../../src/outcomes.js';
import { decodeGeneve } from '../../src/decode/geneve.js';
import { decodeOuter, LINKTYPE } from '../../src/decode/outer.js';
import { PacketState } from '../../src/decode/packet-state.js';
import { decodeVxlan } from '../../src/decode/vxlan.js';
import { describeNeeds } from '../helpers/needs.js';
import { scapy, tsharkFields } from '../helpers/oracles.js';
import { makeTmpDir } from '../helpers/tmp.js';
import { embed } from './bytes.js';

const SCRIPT = String.raw`
import json, sys
from scapy.all import *
from scapy.layers.vxlan import VXLAN
from scapy.contrib.geneve import GENEVE, GeneveOptions

def aws(endpoint="0a1b2c3d4e5f6071", attachment="1122334455667788", cookie="deadbeef"):
    return [GeneveOptions(classid=0x0108, type=1, data=bytes.fromhex(endpoint)),
            GeneveOptions(classid=0x0108, type=2, data=bytes.fromhex(attachment)),
            GeneveOptions(classid=0x0108, type=3, data=bytes.fromhex(cookie))]

def mirrored(src="172.31.0.238", vni=5569041, dport=4789, v6=False):
    ip = IPv6(src="2001:db8::238", dst="2001:db8::50") if v6 else IP(src=src, dst="10.0.0.50")
    inner = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")/IP(src="10.1.1.1", dst="10.2.2.2")/TCP(sport=40000, dport=22, flags="PA")/Raw(b"x"*40)
    return ip/UDP(sport=65408, dport=dport)/VXLAN(flags=0x08, vni=vni)/inner

def geneve(options, proto, **kw):
    # optionlen explicitly: scapy 2.5 gets it wrong for a 64-byte option (it writes 0).
    optionlen = sum(4 + len(o.data) for o in options) // 4
    return GENEVE(options=options, optionlen=optionlen, proto=proto, **kw)

def gwlb(payload, options=None, v6=False, proto=None, **kw):
    g = geneve(aws() if options is None else options, proto if proto is not None else (0x86dd if isinstance(payload, IPv6) else 0x0800), **kw)
    outer = IPv6(src="fd00::99", dst="fd00::5") if v6 else IP(src="10.0.9.9", dst="10.0.1.5")
    return Ether(src="02:aa:00:00:00:01", dst="02:aa:00:00:00:02")/outer/UDP(sport=51234, dport=6081, chksum=0)/g/payload

cases = []
def add(name, pkt, cut=None):
    b = bytes(pkt)
    if cut is not None:
        b = b[:cut]
    cases.append((name, b))

add("aws options, IPv4", gwlb(mirrored()))
add("no options", gwlb(mirrored(src="172.31.5.5", vni=42), options=[]))
add("unknown non-critical option first", gwlb(mirrored(), options=[GeneveOptions(classid=0xff72, type=0x01, data=b"\0"*60)] + aws()))
add("unknown critical option", gwlb(mirrored(), options=aws() + [GeneveOptions(classid=0x0000, type=0x80, data=b"\0"*4)], critical=1))
add("IPv6 outer", gwlb(mirrored(src="172.31.7.7", vni=7), v6=True))
add("IPv6 mirror packet in IPv6 outer", gwlb(mirrored(v6=True, vni=8), v6=True))
# The option area says 32 bytes; the datagram ends 10 bytes into it.
add("truncated options", gwlb(mirrored()), cut=14 + 20 + 8 + 8 + 10)
add("GENEVE inside GENEVE", gwlb(IP(src="192.0.2.1", dst="192.0.2.2")/UDP(sport=1, dport=6081)/geneve(aws("1111111111111111"), 0x0800)/mirrored(src="172.31.9.9", vni=99)))
add("inner VXLAN on another port", gwlb(mirrored(dport=8472, vni=100)))
add("Ethernet payload (0x6558)", gwlb(Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b")/mirrored(vni=65), proto=0x6558))

wrpcap(sys.argv[1], [Ether(b) for _, b in cases])
print(json.dumps([n for n, _ in cases]))
`;

interface TsharkView {
  protocols: string[];
  geneveVnis: number[];
  geneveProto: number;
  optionClasses: number[];
  optionTypes: number[];
  critical: boolean[];
  /** The source of the IP packet right before UDP/VXLAN (the mirror source), canonical text. */
  mirrorSource: string | null;
  vxlanVni: number | null;
  malformed: boolean;
}

const list = (s: string | undefined): string[] => (s ? s.split(',').filter((x) => x !== '') : []);
const num = (s: string): number => Number(s.startsWith('0x') ? parseInt(s, 16) : s);

function tsharkView(file: string, extra: string[] = []): TsharkView[] {
  const fields = ['frame.protocols', 'ip.src', 'ipv6.src', 'geneve.vni', 'geneve.proto_type', 'geneve.option.class', 'geneve.option.type', 'geneve.option.type.critical', 'vxlan.vni', '_ws.malformed', '_ws.expert', 'geneve.option.length.invalid'];
  return tsharkFields(file, fields, extra).map((r) => {
    const protocols = r[0]!.split(':');
    // Walk the layers: each ip / ipv6 takes the next address of its family; the one before udp:vxlan is the mirror's.
    const v4 = list(r[1]);
    const v6 = list(r[2]);
    let mirrorSource: string | null = null;
    for (let i = 0, a = 0, b = 0, last = ''; i < protocols.length; i++) {
      if (protocols[i] === 'ip') last = v4[a++]!;
      else if (protocols[i] === 'ipv6') last = v6[b++]!;
      else if (protocols[i] === 'vxlan') {
        mirrorSource = canonicalIp(last);
        break;
      }
    }
    return {
      protocols,
      geneveVnis: list(r[3]).map(num),
      geneveProto: list(r[4]).map(num)[0] ?? -1,
      optionClasses: list(r[5]).map(num),
      optionTypes: list(r[6]).map(num),
      critical: list(r[7]).map((x) => x === '1' || x === 'True'),
      mirrorSource,
      vxlanVni: list(r[8]).map(num)[0] ?? null,
      malformed: (r[9] ?? '') !== '' || (r[10] ?? '') !== '' || (r[11] ?? '') !== '',
    };
  });
}

describeNeeds(['scapy', 'tshark'], 'GENEVE: scapy-crafted GWLB packets, tshark as the oracle', () => {
  let names: string[] = [];
  let frames: Buffer[] = [];
  let view: TsharkView[] = [];
  let viewAt8472: TsharkView[] = [];
  let file = '';
  const tmp = makeTmpDir('mg-geneve-oracle-');

  beforeAll(() => {
    file = join(tmp.dir, 'gwlb.pcap');
    names = JSON.parse(scapy(SCRIPT, [file])) as string[];
    view = tsharkView(file);
    viewAt8472 = tsharkView(file, ['-d', 'udp.port==8472,vxlan']);
    // The frames as scapy wrote them (classic little-endian pcap: 24-byte header, 16-byte record headers).
    const buf = readFileSync(file);
    frames = [];
    for (let off = 24; off < buf.length; ) {
      const caplen = buf.readUInt32LE(off + 8);
      frames.push(buf.subarray(off + 16, off + 16 + caplen));
      off += 16 + caplen;
    }
    return () => tmp.remove();
  });

  function ours(frame: Buffer, vxlanPort = 4789) {
    const { buf, off, end } = embed(frame);
    const st = new PacketState();
    let code = decodeOuter(buf, off, end, LINKTYPE.ETHERNET, st, vxlanPort, 6081);
    if (code !== DROP.OK) return { code, st, buf };
    expect(st.outerDstPort).toBe(6081);
    st.resetGeneve();
    code = decodeGeneve(buf, st.vxlanOff, st.vxlanEnd, st, vxlanPort, 6081);
    if (code !== DROP.OK) return { code, st, buf };
    const mirror = st.mirrorFamily === 4 ? ipv4ToString(st.mirrorSrc4) : ipv6ToString(buf, st.mirrorSrc6Off);
    st.reset();
    code = decodeVxlan(buf, st.vxlanOff, st.vxlanEnd, st, true);
    return { code, st, buf, mirror };
  }

  it('crafted every case, and tshark dissects each as GENEVE on 6081', () => {
    expect(names.length).toBe(10);
    expect(frames.length).toBe(names.length);
    expect(view.length).toBe(names.length);
    for (const v of view) expect(v.protocols).toContain('geneve');
  });

  it('agrees with tshark frame by frame: the mirror session (source, VNI), GENEVE VNI and protocol, or the reason to drop', () => {
    const rows = names.map((name, i) => {
      const t = view[i]!;
      const o = ours(frames[i]!);
      // What tshark's view implies we must do.
      const unknownCritical = t.critical.some((c, k) => c && !(t.optionClasses[k] === 0x0108 && t.optionTypes[k]! <= 3));
      let want: string;
      if (t.malformed && t.vxlanVni === null) want = 'decode.geneve.options_truncated';
      else if (unknownCritical) want = 'decode.geneve.critical_option';
      else if (t.vxlanVni === null) want = 'decode.geneve.not_mirror';
      else want = `written ${t.mirrorSource}|${t.vxlanVni} geneve ${t.geneveVnis[0]} proto 0x${t.geneveProto.toString(16)} depth ${t.geneveVnis.length}`;
      const got =
        o.code === DROP.OK
          ? `written ${o.mirror}|${o.st.vni} geneve ${o.st.geneveVni} proto 0x${o.st.geneveProto.toString(16)} depth ${o.st.geneveDepth}`
          : DROP_NAMES[o.code]!;
      return { name, want, got };
    });
    expect(rows.map((r) => `${r.name}: ${r.got}`)).toEqual(rows.map((r) => `${r.name}: ${r.want}`));
    // And the cases mean what their names say (the oracle is not vacuous).
    const by = Object.fromEntries(rows.map((r) => [r.name, r.got]));
    expect(by['aws options, IPv4']).toBe('written 172.31.0.238|5569041 geneve 0 proto 0x800 depth 1');
    expect(by['unknown critical option']).toBe('decode.geneve.critical_option');
    expect(by['truncated options']).toBe('decode.geneve.options_truncated');
    expect(by['GENEVE inside GENEVE']).toBe('written 172.31.9.9|99 geneve 0 proto 0x800 depth 2');
    expect(by['inner VXLAN on another port']).toBe('decode.geneve.not_mirror');
    expect(by['IPv6 mirror packet in IPv6 outer']).toBe('written 2001:db8::238|8 geneve 0 proto 0x86dd depth 1');
  });

  it('reads the AWS options tshark lists, and only from GWLB-shaped frames', () => {
    names.forEach((name, i) => {
      const t = view[i]!;
      const o = ours(frames[i]!);
      if (o.code !== DROP.OK) return;
      const awsTypes = t.optionTypes.filter((_, k) => t.optionClasses[k] === 0x0108);
      // Nested GENEVE: only the outermost header's options count; tshark lists both headers'.
      const outerAws = t.geneveVnis.length > 1 ? awsTypes.slice(0, 3) : awsTypes;
      expect(o.st.gwlbEndpointOff >= 0, name).toBe(outerAws.includes(1));
      expect(o.st.gwlbAttachmentOff >= 0, name).toBe(outerAws.includes(2));
      expect(o.st.gwlbFlowCookie >= 0, name).toBe(outerAws.includes(3));
      if (outerAws.includes(1)) expect(Buffer.from(o.buf.subarray(o.st.gwlbEndpointOff, o.st.gwlbEndpointOff + 8)).toString('hex'), name).toBe('0a1b2c3d4e5f6071');
      if (outerAws.includes(3)) expect(o.st.gwlbFlowCookie, name).toBe(0xdeadbeef);
    });
  });

  it('decodes the inner VXLAN on 8472 when that is the VXLAN port, as tshark does when told', () => {
    const i = names.indexOf('inner VXLAN on another port');
    const t = viewAt8472[i]!;
    expect(t.vxlanVni).toBe(100);
    const o = ours(frames[i]!, 8472);
    expect(o.code).toBe(DROP.OK);
    expect(`${o.mirror}|${o.st.vni}`).toBe(`${t.mirrorSource}|${t.vxlanVni}`);
  });
});
